"""Web handlers: ``@web.get("/path")`` and friends, served on the instance's web app.

maubot-rs's own implementation of maubot 0.6's ``maubot.handlers.web``. Each decorator appends
``(method, path, kwargs)`` to the function's ``__mb_web_handler__`` list;
``Plugin.register_handler_class`` adds those routes to ``self.webapp`` at start, in that list's
order. The handler receives an aiohttp ``Request`` and returns a ``Response``.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar

__all__ = [
    "WebHandler",
    "WebHandlerDecorator",
    "delete",
    "get",
    "handle",
    "head",
    "options",
    "patch",
    "post",
    "put",
    "view",
]

# The type names maubot's module offers for annotations (request in, response out). Written
# without aiohttp's types: importing ``aiohttp.web`` here would load its server side for every
# plugin, web app or not.
WebHandler = Callable[..., Awaitable[Any]]
WebHandlerDecorator = Callable[[WebHandler], WebHandler]

Handler = TypeVar("Handler", bound=Callable[..., Any])

# aiohttp's wildcard method, as used by ``aiohttp.web.view``.
ANY_METHOD = "*"


def handle(method: str, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    """Serve ``method`` requests to ``path`` (relative to the instance's web app)."""

    def decorator(func: Handler) -> Handler:
        routes = getattr(func, "__mb_web_handler__", None)
        if routes is None:
            routes = []
            func.__mb_web_handler__ = routes  # type: ignore[attr-defined]
        # Decorators run bottom-up, so the lowest one's route comes first, as in maubot: it
        # matters when two paths overlap, aiohttp taking the first route added.
        routes.append((method, path, kwargs))
        return func

    return decorator


def get(path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    return handle("GET", path, **kwargs)


def post(path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    return handle("POST", path, **kwargs)


def put(path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    return handle("PUT", path, **kwargs)


def patch(path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    return handle("PATCH", path, **kwargs)


def delete(path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    return handle("DELETE", path, **kwargs)


def head(path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    return handle("HEAD", path, **kwargs)


def options(path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    return handle("OPTIONS", path, **kwargs)


def view(path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    """A class-based aiohttp view: every method goes to the view."""
    return handle(ANY_METHOD, path, **kwargs)
