"""JSON lines over the worker's Unix socket (docs/python-host-protocol.md).

Every incoming request runs in its own task, so a slow handler holds up nothing else. asyncio
keeps only weak references to tasks: the connection keeps strong ones until they finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import traceback
from typing import Any, Awaitable, Callable

log = logging.getLogger("maubot.host.rpc")

# A line may carry a whole media file as base64.
MAX_LINE = 256 * 1024 * 1024

RequestHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class RPCError(Exception):
    """An `error` answer: `message` is for people, `details` a traceback."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConnectionClosed(Exception):
    """The server closed the socket before it answered."""


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._handlers: dict[str, RequestHandler] = {}
        self._pending: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task] = set()
        self.closed = False

    def on(self, method: str, handler: RequestHandler) -> None:
        self._handlers[method] = handler

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._reader, self._writer = await asyncio.open_unix_connection(
            sock=self._sock, limit=MAX_LINE
        )

    def _write(self, message: dict[str, Any]) -> None:
        if self.closed or self._writer is None:
            return
        line = json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n"
        self._writer.write(line.encode("utf-8"))

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; safe from any thread (log records arrive from threads too)."""
        if self._loop is not None and threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._write, message)
        else:
            self._write(message)

    async def _drain(self) -> None:
        if self._writer is not None and not self.closed:
            try:
                await self._writer.drain()
            except ConnectionError:
                pass

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"method": method, "params": params})

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Ask the server; the result, or `RPCError` with the server's message."""
        if self.closed:
            raise ConnectionClosed("the server closed the connection")
        self._next_id += 1
        request_id = self._next_id
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._write({"id": request_id, "method": method, "params": params})
            await self._drain()
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def serve(self) -> None:
        """Read messages until end-of-file."""
        assert self._reader is not None
        while True:
            try:
                line = await self._reader.readline()
            except ConnectionError as e:
                log.error(f"Reading from the server failed: {e}")
                break
            except ValueError as e:
                # Longer than MAX_LINE: the reader dropped it; what follows is parsed afresh.
                log.error(f"Dropped a message from the server: {e}")
                continue
            if not line:
                break
            try:
                message = json.loads(line)
            except ValueError:
                log.error(f"Ignoring a line that is not JSON: {line[:200]!r}")
                continue
            if not isinstance(message, dict):
                log.error(f"Ignoring a message that is not an object: {line[:200]!r}")
                continue
            self._receive(message)
        self._close()

    def _receive(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        message_id = message.get("id")
        if method is not None and message_id is not None:
            task = asyncio.create_task(self._answer(message_id, method, message.get("params")))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif method is not None:
            log.warning(f"Ignoring unknown notification {method}")
        elif message_id in self._pending:
            future = self._pending[message_id]
            if future.done():
                return
            if "error" in message:
                error = message["error"] or {}
                future.set_exception(RPCError(str(error.get("message")), error.get("traceback")))
            else:
                future.set_result(message.get("result"))
        else:
            log.warning(f"Ignoring a response to unknown request {message_id}")

    async def _answer(self, message_id: Any, method: str, params: Any) -> None:
        handler = self._handlers.get(method)
        try:
            if handler is None:
                raise RPCError(f"Unknown method {method}")
            result = await handler(params if isinstance(params, dict) else {})
            response = {"id": message_id, "result": result if result is not None else {}}
        except RPCError as e:
            response = {"id": message_id, "error": {"message": e.message, "traceback": e.details}}
        except Exception as e:
            response = {
                "id": message_id,
                "error": {
                    "message": f"{type(e).__name__}: {e}",
                    "traceback": traceback.format_exc(),
                },
            }
        except asyncio.CancelledError:
            self._write({"id": message_id, "error": {"message": "Cancelled", "traceback": None}})
            raise
        try:
            self._write(response)
        except (TypeError, ValueError) as e:
            message = f"{method} returned a value that is not JSON: {e}"
            self._write({"id": message_id, "error": {"message": message, "traceback": None}})
        await self._drain()

    def _close(self) -> None:
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed("the server closed the connection"))
        self._pending.clear()

    async def finish(self, timeout: float) -> None:
        """Wait a little for requests still being answered (their answers go nowhere)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        if self._writer is not None:
            self._writer.close()
