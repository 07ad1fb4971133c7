"""`Plugin`, the base class of every maubot plugin."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import ClientSession
from yarl import URL

from .scheduler import BasicScheduler

if TYPE_CHECKING:
    from mautrix.util.async_db import Database, UpgradeTable
    from mautrix.util.config import BaseProxyConfig
    from mautrix.util.logging import TraceLogger

    from .loader import BasePluginLoader
    from .matrix import MaubotMatrixClient
    from .plugin_server import PluginWebApp


class Plugin:
    """The base class of a plugin's main class; the server makes one object per instance."""

    client: MaubotMatrixClient
    http: ClientSession
    id: str
    log: TraceLogger
    loop: asyncio.AbstractEventLoop
    loader: BasePluginLoader
    sched: BasicScheduler
    config: BaseProxyConfig | None
    database: Database | Any | None
    webapp: PluginWebApp | None
    webapp_url: URL | None

    def __init__(
        self,
        client: MaubotMatrixClient,
        loop: asyncio.AbstractEventLoop,
        http: ClientSession,
        instance_id: str,
        log: TraceLogger,
        config: BaseProxyConfig | None,
        database: Database | Any | None,
        webapp: PluginWebApp | None,
        webapp_url: str | URL | None,
        loader: BasePluginLoader,
    ) -> None:
        self.client = client
        self.loop = loop
        self.http = http
        self.id = instance_id
        self.log = log
        self.config = config
        self.database = database
        self.webapp = webapp
        self.webapp_url = URL(webapp_url) if webapp_url else None
        self.loader = loader
        self.sched = BasicScheduler(log=log.getChild("scheduler"))
        self._handlers_at_startup: list[tuple[Any, Callable]] = []
        self._web_handlers_at_startup: list[tuple[str, str, Callable, dict[str, Any]]] = []

    def register_handler_class(self, obj: Any) -> None:
        """Register the `@event.on`/`@command` handlers and `@web` routes found on `obj`.

        Everything registered here is removed again when the instance stops.
        """
        warned_no_webapp = False
        for name in dir(obj):
            try:
                val = getattr(obj, name)
            except Exception:
                continue
            if getattr(val, "__mb_event_handler__", False):
                for event_type in getattr(val, "__mb_event_types__", ()):
                    self.client.add_event_handler(event_type, val)
                    self._handlers_at_startup.append((event_type, val))
            web_handlers = getattr(val, "__mb_web_handler__", None)
            if web_handlers:
                if self.webapp is None:
                    if not warned_no_webapp:
                        self.log.warning(
                            f"{type(obj).__name__} has web handlers, but the webapp feature "
                            "isn't enabled in the plugin's maubot.yaml"
                        )
                        warned_no_webapp = True
                    continue
                for method, path, kwargs in web_handlers:
                    self.webapp.add_route(method=method, path=path, handler=val, **kwargs)
                    self._web_handlers_at_startup.append((method, path, val, kwargs))

    async def pre_start(self) -> None:
        pass

    async def internal_start(self) -> None:
        """What the server calls: `pre_start()`, the plugin's own handlers, then `start()`."""
        await self.pre_start()
        self.register_handler_class(self)
        await self.start()

    async def start(self) -> None:
        pass

    async def pre_stop(self) -> None:
        pass

    def _unregister_all(self) -> None:
        for event_type, handler in self._handlers_at_startup:
            self.client.remove_event_handler(event_type, handler)
        self._handlers_at_startup = []
        if self.webapp is not None:
            self.webapp.clear()
        self._web_handlers_at_startup = []
        self.sched.stop()

    async def internal_stop(self) -> None:
        """What the server calls: `pre_stop()`, remove handlers, routes and timers, `stop()`."""
        await self.pre_stop()
        self._unregister_all()
        await self.stop()

    async def stop(self) -> None:
        pass

    @classmethod
    def get_config_class(cls) -> type[BaseProxyConfig] | None:
        """The plugin's config class, if it has a config."""
        return None

    @classmethod
    def get_db_upgrade_table(cls) -> UpgradeTable | None:
        """The schema upgrades of a `database_type: asyncpg` database."""
        return None

    def on_external_config_update(self) -> Awaitable[None] | None:
        """Called when the config was changed through the API: reload and update it."""
        if self.config is not None:
            self.config.load_and_update()
        return None
