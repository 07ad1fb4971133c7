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
# The receive buffer's usual size, and the least room a read gets (else it grows).
_BUFFER_SIZE = 64 * 1024
_MIN_READ = 16 * 1024

RequestHandler = Callable[[dict[str, Any]], Awaitable[Any]]

# `json.dumps` with options builds an encoder per call.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class RPCError(Exception):
    """An `error` answer: `message` is for people, `details` a traceback."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConnectionClosed(Exception):
    """The server closed the socket before it answered."""


def _dropped() -> None:
    log.error(f"Dropped a message from the server: longer than {MAX_LINE} bytes")


class _LineProtocol(asyncio.BufferedProtocol):
    """Splits what the server sends into lines and hands each to the connection at once.

    Received into one reused buffer: asyncio's plain `recv()` allocates 256 KiB per read, which
    the allocator maps and unmaps again (three system calls and page faults per message).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._buf = bytearray(_BUFFER_SIZE)
        self._start = 0  # where the line being received begins
        self._scan = 0  # where the search for its end goes on
        self._end = 0  # how much of the buffer is filled
        self._dropping = False  # inside a line longer than MAX_LINE

    def get_buffer(self, sizehint: int) -> memoryview:
        buf = self._buf
        if self._start == self._end:
            self._start = self._scan = self._end = 0
            if len(buf) > _BUFFER_SIZE:
                buf = self._buf = bytearray(_BUFFER_SIZE)
        elif len(buf) - self._end < _MIN_READ:
            if self._start:
                # The incomplete line to the front (no view of the buffer is alive here).
                del buf[: self._start]
                self._scan -= self._start
                self._end -= self._start
                self._start = 0
            if len(buf) - self._end < _MIN_READ:
                buf.extend(bytes(len(buf)))
        return memoryview(buf)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        buf = self._buf
        while True:
            newline = buf.find(b"\n", self._scan, self._end)
            if newline < 0:
                break
            if self._dropping:
                self._dropping = False
            elif newline - self._start > MAX_LINE:
                _dropped()
            else:
                self.conn._line(buf[self._start : newline])
            self._start = self._scan = newline + 1
        self.conn._acknowledge_events()
        if self._dropping or self._end - self._start > MAX_LINE:
            if not self._dropping:
                _dropped()
                self._dropping = True
            # The rest of the line goes as it arrives; what follows its end is read afresh.
            self._start = self._end
        self._scan = self._end

    def eof_received(self) -> bool:
        self.conn._eof(None)
        # Half-closed: what is queued still goes out, and `Connection.finish` closes the socket.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn._eof(exc)
        self.conn._writable()

    def pause_writing(self) -> None:
        self.conn._paused = True

    def resume_writing(self) -> None:
        self.conn._writable()


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._handlers: dict[str, RequestHandler] = {}
        self._pending: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task] = set()
        self._ended: asyncio.Future | None = None
        # Notifications wait here for the next request or answer, or the end of the loop's turn:
        # a log record and the `matrix` request its handler makes next go out in one write.
        self._queued: list[bytes] = []
        self._flush_scheduled = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future] = []
        self.closed = False
        # The last `event` request read and not acknowledged yet (see `_acknowledge_events`).
        self._events_read: int | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the connection is not open"
        return self._loop

    def on(self, method: str, handler: RequestHandler) -> None:
        self._handlers[method] = handler

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._ended = self._running_loop().create_future()
        self._transport, _ = await self._loop.create_unix_connection(
            lambda: _LineProtocol(self), sock=self._sock
        )

    def _write(self, message: dict[str, Any], flush: bool = True) -> None:
        if self.closed or self._transport is None:
            return
        line = _encoder.encode(message) + "\n"
        self._queued.append(line.encode("utf-8"))
        if flush:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queued:
            return
        data = b"".join(self._queued) if len(self._queued) > 1 else self._queued[0]
        self._queued.clear()
        # Also after end-of-file: what was queued before goes out while the socket is open.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def _drain(self) -> None:
        """Wait while the server is slow to read what was written (errors are not ours)."""
        if self._paused and not self.closed:
            waiter = self._running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def _writable(self) -> None:
        self._paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """Queue a notification; safe from any thread (log records arrive from threads too)."""
        message = {"method": method, "params": params}
        if self._loop is not None and threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._write, message, False)
        else:
            self._write(message, flush=False)

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Ask the server; the result, or `RPCError` with the server's message."""
        if self.closed:
            raise ConnectionClosed("the server closed the connection")
        self._next_id += 1
        request_id = self._next_id
        future = self._running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._write({"id": request_id, "method": method, "params": params})
            await self._drain()
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def serve(self) -> None:
        """Answer messages until end-of-file."""
        assert self._ended is not None
        exc = await self._ended
        if exc is not None:
            log.error(f"Reading from the server failed: {exc}")
        self._close()

    def _line(self, line: bytearray) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.error(f"Ignoring a line that is not JSON: {bytes(line[:200])!r}")
            return
        if not isinstance(message, dict):
            log.error(f"Ignoring a message that is not an object: {bytes(line[:200])!r}")
            return
        self._receive(message)

    def _acknowledge_events(self) -> None:
        """Tell the server which events were read, before any of their handlers runs.

        Written at once, not queued: a handler that then blocks the event loop would keep a
        queued line from going out. If the worker dies, the server hands the events it never
        read to the next worker, and drops those it did (their handlers may have acted).
        """
        if self._events_read is None:
            return
        message = {"method": "events_read", "params": {"up_to": self._events_read}}
        self._events_read = None
        self._write(message)

    def _eof(self, exc: Exception | None) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(exc)

    def _receive(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        message_id = message.get("id")
        if method is not None and message_id is not None:
            if method == "event" and isinstance(message_id, int):
                self._events_read = message_id
            # `_answer` drops the task from `_tasks` itself: a done callback would cost the loop
            # one more turn per request.
            task = self._running_loop().create_task(
                self._answer(message_id, method, message.get("params"))
            )
            self._tasks.add(task)
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
        try:
            handler = self._handlers.get(method)
            try:
                if handler is None:
                    raise RPCError(f"Unknown method {method}")
                result = await handler(params if isinstance(params, dict) else {})
                response = {"id": message_id, "result": result if result is not None else {}}
            except RPCError as e:
                response = {
                    "id": message_id,
                    "error": {"message": e.message, "traceback": e.details},
                }
            except Exception as e:
                response = {
                    "id": message_id,
                    "error": {
                        "message": f"{type(e).__name__}: {e}",
                        "traceback": traceback.format_exc(),
                    },
                }
            except asyncio.CancelledError:
                self._write(
                    {"id": message_id, "error": {"message": "Cancelled", "traceback": None}}
                )
                raise
            try:
                self._write(response)
            except (TypeError, ValueError) as e:
                message = f"{method} returned a value that is not JSON: {e}"
                self._write({"id": message_id, "error": {"message": message, "traceback": None}})
            await self._drain()
        finally:
            self._tasks.discard(asyncio.current_task(self._loop))

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
        if self._transport is not None:
            self._flush()
            self._transport.close()
