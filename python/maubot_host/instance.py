"""One running plugin instance: its client, config, database and plugin object."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from typing import TYPE_CHECKING, Any, cast

from aiohttp import ClientSession
from mautrix.api import HTTPAPI
from mautrix.client import MembershipEventDispatcher, SyncStream
from mautrix.client.state_store import MemoryStateStore
from mautrix.types import (
    JSON,
    Event,
    EventType,
    GenericEvent,
    Membership,
    SerializerError,
    StateEvent,
)
from mautrix.util.logging import TraceLogger
from yarl import URL

from maubot.__meta__ import __version__
from maubot.loader import ZippedPluginLoader
from maubot.plugin_base import Plugin

from .client import HostedMatrixClient
from .database import PluginDatabase, open_database
from .matrix_api import RPCHTTPAPI
from .rpc import Connection, RPCError

# What only some plugins use is imported when one does (a database, a config, a web app):
# mautrix's database layer (asyncpg, aiosqlite), SQLAlchemy, ruamel.yaml and aiohttp's server
# are several MiB of the worker's memory that an echo bot never needs.
if TYPE_CHECKING:
    from maubot.plugin_server import PluginWebApp

    from .config import InstanceConfig

USER_AGENT = f"maubot/{__version__} {HTTPAPI.default_ua}"


class Instance:
    def __init__(self, instance_id: str, conn: Connection, loader: ZippedPluginLoader) -> None:
        self.id = instance_id
        self.conn = conn
        self.loader = loader
        # mautrix makes `TraceLogger` the logger class when it is imported.
        self.log = cast(TraceLogger, logging.getLogger(f"maubot.instance.{instance_id}"))
        self.client: HostedMatrixClient | None = None
        self.http: ClientSession | None = None
        self.database: PluginDatabase | None = None
        self.config: InstanceConfig | None = None
        self.plugin: Plugin | None = None
        self.webapp: PluginWebApp | None = None
        self.started = False

    async def start(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._start(params)
        except BaseException:
            await self._close_resources()
            raise

    async def _start(self, params: dict[str, Any]) -> dict[str, Any]:
        cls = self.loader.load()
        meta = self.loader.meta
        client_info = params.get("client") or {}
        if not client_info.get("user_id") or not client_info.get("homeserver"):
            raise RPCError("start needs client.user_id and client.homeserver")

        if meta.database:
            self.database = await open_database(
                self.id, meta.database_type, params.get("database"), cls.get_db_upgrade_table()
            )

        config = None
        base_config = None
        config_class = cls.get_config_class()
        if config_class is not None:
            try:
                base_text = self.loader.sync_read_file("base-config.yaml").decode("utf-8")
            except KeyError:
                base_text = None
            from .config import InstanceConfig

            self.config = InstanceConfig(params.get("config"), base_text, self._config_saved)
            base_config = self.config.base_text
            config = config_class(self.config.load, self.config.load_base, self.config.save)

        self.http = ClientSession(headers={"User-Agent": USER_AGENT})
        user_id = client_info["user_id"]
        api = RPCHTTPAPI(
            client_info["homeserver"],
            rpc=self.conn,
            instance_id=self.id,
            client_session=self.http,
            log=logging.getLogger(f"maubot.client.{user_id}"),
        )
        self.client = HostedMatrixClient(
            mxid=user_id,
            device_id=client_info.get("device_id") or "",
            api=api,
            state_store=MemoryStateStore(),
        )
        self.client.add_dispatcher(MembershipEventDispatcher)

        webapp_url = params.get("webapp_url")
        webapp = None
        if meta.webapp and webapp_url:
            from maubot.plugin_server import PluginWebApp

            webapp = PluginWebApp()
        try:
            self.plugin = cls(
                client=self.client,
                loop=asyncio.get_running_loop(),
                http=self.http,
                instance_id=self.id,
                log=self.log,
                config=config,
                database=self.database.value if self.database is not None else None,
                webapp=webapp,
                webapp_url=URL(webapp_url) if webapp is not None and webapp_url else None,
                loader=self.loader,
            )
            await self.plugin.internal_start()
            self.webapp = webapp
        except Exception as e:
            self.log.exception("Failed to start instance")
            if self.plugin is not None:
                self.plugin._unregister_all()
                self.plugin = None
            raise RPCError(
                f"Failed to start instance: {type(e).__name__}: {e}", traceback.format_exc()
            ) from e
        self.started = True
        return {"base_config": base_config}

    def _config_saved(self, text: str) -> None:
        self.conn.notify("config_save", {"instance_id": self.id, "config": text})

    async def stop(self) -> None:
        self.started = False
        self.webapp = None
        plugin, self.plugin = self.plugin, None
        if plugin is not None:
            try:
                await plugin.internal_stop()
            except Exception:
                self.log.exception("Failed to stop instance")
            finally:
                plugin.sched.stop()
        await self._close_resources()

    async def _close_resources(self) -> None:
        database, self.database = self.database, None
        if database is not None:
            try:
                await database.stop()
            except Exception:
                self.log.exception("Failed to stop instance database")
        http, self.http = self.http, None
        if http is not None:
            await http.close()

    async def event(self, raw: dict[str, Any]) -> None:
        client = self.client
        if not self.started or client is None:
            raise RPCError(f"Instance {self.id} is not running")
        event = _deserialize(raw)
        if isinstance(event, StateEvent) and client.state_store is not None:
            await client.state_store.update_state(event)
        await client.dispatch_and_wait(event, _source(event, client.mxid))

    async def web_request(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.started or self.plugin is None:
            raise RPCError(f"Instance {self.id} is not running")
        if self.webapp is None:
            raise RPCError(f"Instance {self.id} has no web app")
        from . import web

        return await web.handle(self.webapp, params, self.log)

    async def config_updated(self, text: str) -> None:
        if self.config is not None:
            self.config.text = text or ""
        if not self.started or self.plugin is None:
            raise RPCError(f"Instance {self.id} is not running")
        result = self.plugin.on_external_config_update()
        if inspect.isawaitable(result):
            await result


def _deserialize(raw: dict[str, Any]) -> Event:
    """As mautrix's sync does: state events as `StateEvent`, others by type, else generic."""
    event_class: Any = Event
    if raw.get("state_key") is not None:
        event_class = StateEvent
        # Invites may come as stripped state; mautrix's sync fills these in too.
        raw.setdefault("event_id", None)
        raw.setdefault("origin_server_ts", int(time.time() * 1000))
    try:
        return cast(Event, event_class.deserialize(cast(JSON, raw)))
    except SerializerError as e:
        logging.getLogger("maubot.host").warning(
            f"Failed to deserialize event {raw.get('event_id')} ({e}), passing it on as generic"
        )
        try:
            return cast(Event, GenericEvent.deserialize(cast(JSON, raw)))
        except SerializerError as e2:
            raise RPCError(f"The event could not be deserialized: {e2}") from e2


def _source(event: Event, own_id: str) -> SyncStream:
    """The sync section the event would have come in (handlers may filter on it)."""
    if (
        isinstance(event, StateEvent)
        and event.type == EventType.ROOM_MEMBER
        and event.state_key == own_id
        and getattr(event.content, "membership", None) == Membership.INVITE
    ):
        return SyncStream.INVITED_ROOM | SyncStream.STATE
    return SyncStream.JOINED_ROOM | SyncStream.TIMELINE
