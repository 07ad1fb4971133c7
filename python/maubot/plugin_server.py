"""`PluginWebApp`: the routes of a plugin instance's web app (`self.webapp`)."""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class PluginWebApp(web.UrlDispatcher):
    """An aiohttp router (`add_route`, `add_get`, ..., aiohttp path templates) plus middlewares.

    Routes are added at instance start (`@web.get(...)` handlers) and cleared at stop.
    """

    def __init__(self) -> None:
        super().__init__()
        self._middleware: list[Middleware] = []

    def add_middleware(self, middleware: Middleware) -> None:
        self._middleware.append(middleware)

    def remove_middleware(self, middleware: Middleware) -> None:
        self._middleware.remove(middleware)

    def clear(self) -> None:
        """Drop every route (middlewares stay)."""
        middleware = self._middleware
        super().__init__()
        self._middleware = middleware

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer `request` (its path relative to the instance's web app) through the routes."""
        match_info = await self.resolve(request)
        # Handlers may read request.app (in maubot, the server's application): an empty one.
        match_info.add_app(_application())
        match_info.freeze()
        request._match_info = match_info  # the handler reads request.match_info
        handler: Handler = match_info.handler
        for middleware in reversed(self._middleware):
            handler = _bind(middleware, handler)
        return await handler(request)


_APPLICATION: web.Application | None = None


def _application() -> web.Application:
    global _APPLICATION
    if _APPLICATION is None:
        _APPLICATION = web.Application()
        _APPLICATION.freeze()
    return _APPLICATION


def _bind(middleware: Middleware, handler: Handler) -> Handler:
    async def call(request: web.Request) -> web.StreamResponse:
        return await middleware(request, handler)

    return call
