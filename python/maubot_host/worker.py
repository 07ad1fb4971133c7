"""The worker: one plugin, all its instances, answering the server's requests."""

from __future__ import annotations

import asyncio
import gc
import logging
import platform
import socket
import zipfile
import zipimport
from typing import Any

import mautrix

from maubot.__meta__ import __version__
from maubot.loader import PluginLoadError, PluginMeta, ZippedPluginLoader

from . import logs
from .instance import Instance
from .rpc import Connection, RPCError

PROTOCOL_VERSION = 1
# How long the instances still running at end-of-file get to stop.
SHUTDOWN_TIMEOUT = 5.0

log = logging.getLogger("maubot.host")


def _instance_id(params: dict[str, Any]) -> str:
    """The instance a request is about. What runs for it from here on (in this request's task
    and the tasks it creates) logs under that instance."""
    instance_id = params.get("instance_id")
    if not isinstance(instance_id, str) or not instance_id:
        raise RPCError("instance_id is missing")
    logs.current_instance.set(instance_id)
    return instance_id


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.loader: ZippedPluginLoader | None = None
        self.instances: dict[str, Instance] = {}
        for method in (
            "load",
            "start",
            "stop",
            "event",
            "config_updated",
            "web_request",
            "ping",
        ):
            conn.on(method, getattr(self, method))

    def _running(self, params: dict[str, Any]) -> Instance:
        instance_id = _instance_id(params)
        instance = self.instances.get(instance_id)
        if instance is None:
            raise RPCError(f"Instance {instance_id} is not running")
        return instance

    async def load(self, params: dict[str, Any]) -> dict[str, Any]:
        """Import the plugin's modules from the archive and check its main class."""
        path = params.get("path")
        if not isinstance(path, str) or not isinstance(params.get("meta"), dict):
            raise RPCError("load needs path and meta")
        try:
            meta = PluginMeta(params["meta"])
        except (ValueError, TypeError) as e:
            raise RPCError(f"Invalid plugin metadata: {e}") from e
        if self.loader is not None:
            if self.instances:
                if self.loader.path == path:
                    return {}
                raise RPCError("Another plugin file is loaded and has running instances")
            self.loader.unload()
            self.loader = None
        loader = ZippedPluginLoader(path, meta)
        try:
            loader.load()
        except PluginLoadError as e:
            loader.unload()
            raise RPCError(e.message, e.details) from e
        except (OSError, zipfile.BadZipFile, zipimport.ZipImportError) as e:
            loader.unload()
            raise RPCError(f"Failed to read plugin file {path}: {e}") from e
        self.loader = loader
        return {}

    async def start(self, params: dict[str, Any]) -> dict[str, Any]:
        instance_id = _instance_id(params)
        if self.loader is None:
            raise RPCError("No plugin is loaded")
        if instance_id in self.instances:
            raise RPCError(f"Instance {instance_id} is already running")
        instance = Instance(instance_id, self.conn, self.loader)
        self.instances[instance_id] = instance
        logs.known_instances.add(instance_id)
        try:
            result = await instance.start(params)
        except BaseException:
            self.instances.pop(instance_id, None)
            logs.known_instances.discard(instance_id)
            raise
        # The plugin's modules and the instance are kept as long as it runs: leaving them out of
        # the collector's full passes spares a running bot pauses of many milliseconds.
        gc.freeze()
        return result

    async def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        instance_id = _instance_id(params)
        instance = self.instances.pop(instance_id, None)
        if instance is not None:
            await instance.stop()
            logs.known_instances.discard(instance_id)
            # What the stopped instance leaves in reference cycles must be collectable again;
            # the next start freezes what is still alive.
            gc.unfreeze()
        return {}

    async def event(self, params: dict[str, Any]) -> dict[str, Any]:
        event = params.get("event")
        if not isinstance(event, dict):
            raise RPCError("event is missing")
        await self._running(params).event(event)
        return {}

    async def config_updated(self, params: dict[str, Any]) -> dict[str, Any]:
        await self._running(params).config_updated(params.get("config") or "")
        return {}

    async def web_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request to the instance's web app; its response."""
        return await self._running(params).web_request(params)

    async def ping(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def shutdown(self) -> None:
        """Stop the instances still running (the server went away without stopping them)."""
        instances = list(self.instances.values())
        self.instances.clear()
        if not instances:
            return
        stops = [asyncio.create_task(instance.stop()) for instance in instances]
        _, pending = await asyncio.wait(stops, timeout=SHUTDOWN_TIMEOUT)
        for task in pending:
            task.cancel()


async def run(sock: socket.socket) -> int:
    conn = Connection(sock)
    await conn.open()
    logs.setup(conn)
    worker = Worker(conn)
    conn.notify(
        "hello",
        {
            "protocol": PROTOCOL_VERSION,
            "python": platform.python_version(),
            "mautrix": mautrix.__version__,
            "maubot": __version__,
        },
    )
    await conn.serve()
    await worker.shutdown()
    await conn.finish(timeout=1.0)
    return 0
