"""Plugin web apps over the protocol: a `web_request` becomes an aiohttp request and back.

The server owns the HTTP listener. It forwards each request under an instance's web app prefix as
a `web_request` (the path below the prefix, the raw query string, the headers, the body); the
worker builds a real `aiohttp.web.Request` from it, runs it through the instance's `PluginWebApp`
(routing, middlewares, handler) and answers with the response's status, headers and body.

Responses are collected by a stream writer that keeps what aiohttp would have written to the
socket, so `web.Response`, `web.json_response`, streamed `StreamResponse`s (`prepare` + `write`)
and `FileResponse`s (read in chunks: `__main__` sets `AIOHTTP_NOSENDFILE`) all work. The whole
body is buffered until the handler finishes; a response that never ends never answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import zlib
from http import HTTPStatus
from typing import Any

from aiohttp import EMPTY_PAYLOAD, StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from maubot.plugin_server import PluginWebApp

from .rpc import RPCError

# As maubot's own web server (docs/compatibility.md, "Plugin web apps"): request bodies up to
# 100 MiB.
CLIENT_MAX_SIZE = 100 * 1024 * 1024

# Headers the server frames or sets itself: the hop-by-hop ones, the body's length (the server
# knows it from body_base64), and the Date and Server headers aiohttp adds to every response.
DROPPED_RESPONSE_HEADERS = frozenset(
    name.lower()
    for name in (
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "Transfer-Encoding",
        "TE",
        "Trailer",
        "Upgrade",
        "Content-Length",
        "Date",
        "Server",
    )
)

INTERNAL_ERROR_TEXT = (
    f"{HTTPStatus.INTERNAL_SERVER_ERROR.value} {HTTPStatus.INTERNAL_SERVER_ERROR.phrase}\n\n"
    f"{HTTPStatus.INTERNAL_SERVER_ERROR.description}"
)


class _Connection:
    """What aiohttp's `Request` and `StreamReader` ask of the connection a request came on.

    A request that arrived over the protocol has no socket: no transport, no TLS, no local
    address; the peer's address is what the server passed as `remote`, if anything.
    """

    ssl_context = None
    sockname = None
    transport = None
    max_field_size = 8190
    max_headers = 128
    connected = True
    _reading_paused = False

    def __init__(self, peername: str | None) -> None:
        self.peername = peername

    # The whole body is in the reader before the handler runs: there is nothing to pause.
    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


class ResponseCollector(AbstractStreamWriter):
    """A payload writer that keeps the status line, headers and body instead of sending them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.status_line: str | None = None
        self.headers: list[tuple[str, str]] | None = None
        self.body = bytearray()
        self.eof = False
        self.buffer_size = 0
        self.output_size = 0
        self.length = None
        self._compressor: Any = None

    def _append(self, data: bytes) -> None:
        self.body += data
        self.output_size += len(data)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        data = bytes(chunk)
        if self._compressor is not None:
            data = self._compressor.compress(data)
        self._append(data)

    async def write_eof(self, chunk: bytes = b"") -> None:
        if self.eof:
            return
        if chunk:
            await self.write(chunk)
        if self._compressor is not None:
            self._append(self._compressor.flush())
        self.eof = True

    async def drain(self) -> None:
        pass

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        # A StreamResponse with enable_compression(): aiohttp leaves compressing to the writer.
        if encoding == "gzip":
            wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            wbits = zlib.MAX_WBITS
        else:
            raise RuntimeError(f"Unsupported content coding {encoding}")
        self._compressor = zlib.compressobj(
            wbits=wbits, strategy=zlib.Z_DEFAULT_STRATEGY if strategy is None else strategy
        )

    def enable_chunking(self) -> None:
        # Chunked framing is the server's business; the body is sent whole.
        pass

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        self.status_line = status_line
        self.headers = list(headers.items())


def _headers(raw: Any) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RPCError("web_request headers must be a list of [name, value] pairs")
    headers = []
    for pair in raw:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise RPCError(f"Invalid header in web_request: {pair!r}")
        headers.append((pair[0], pair[1]))
    return headers


def _body(params: dict[str, Any]) -> bytes:
    encoded = params.get("body_base64")
    if not encoded:
        return b""
    if not isinstance(encoded, str):
        raise RPCError("web_request body_base64 must be a string")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RPCError(f"web_request body_base64 is not valid base64: {e}") from e


def build_request(params: dict[str, Any]) -> tuple[web.Request, ResponseCollector]:
    """The aiohttp request a plugin's handler sees, and the writer its response goes to."""
    method = params.get("method")
    if not isinstance(method, str) or not method:
        raise RPCError("web_request needs a method")
    path = params.get("path") or "/"
    if not isinstance(path, str) or not path.startswith("/"):
        raise RPCError(f"web_request path must start with /: {path!r}")
    query_string = params.get("query_string") or ""
    if not isinstance(query_string, str):
        raise RPCError("web_request query_string must be a string")
    remote = params.get("remote")
    headers = _headers(params.get("headers"))
    body = _body(params)

    loop = asyncio.get_running_loop()
    connection = _Connection(remote if isinstance(remote, str) and remote else None)
    if body:
        payload: StreamReader = StreamReader(connection, 2**16, loop=loop)  # type: ignore[arg-type]
        payload.feed_data(body)
        payload.feed_eof()
    else:
        payload = EMPTY_PAYLOAD
    target = path + ("?" + query_string if query_string else "")
    message = RawRequestMessage(
        method=method.upper(),
        path=target,
        version=HttpVersion11,
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        raw_headers=tuple((name.encode(), value.encode()) for name, value in headers),
        should_close=False,
        compression=None,
        upgrade=False,
        chunked=False,
        url=URL.build(path=path, query_string=query_string, encoded=True),
    )
    writer = ResponseCollector()
    request = web.Request(
        message,
        payload,
        connection,  # type: ignore[arg-type]
        writer,
        asyncio.current_task(),  # type: ignore[arg-type]
        loop,
        client_max_size=CLIENT_MAX_SIZE,
    )
    return request, writer


async def _send(
    response: web.StreamResponse, request: web.Request, writer: ResponseCollector
) -> dict[str, Any]:
    await response.prepare(request)
    await response.write_eof()
    if writer.headers is None or not writer.eof:
        raise RuntimeError("the response was not written out")
    return {
        "status": response.status,
        "headers": [
            [name, value]
            for name, value in writer.headers
            if name.lower() not in DROPPED_RESPONSE_HEADERS
        ],
        "body_base64": base64.b64encode(bytes(writer.body)).decode("ascii"),
    }


async def _internal_error(request: web.Request, writer: ResponseCollector) -> dict[str, Any]:
    writer.reset()
    return await _send(web.Response(status=500, text=INTERNAL_ERROR_TEXT), request, writer)


async def handle(
    webapp: PluginWebApp, params: dict[str, Any], log: logging.Logger
) -> dict[str, Any]:
    """Answer one `web_request` through `webapp`; the `web_request` result."""
    request, writer = build_request(params)
    # Without the query string: webhooks often carry a secret there.
    what = f"{request.method} {request.rel_url.raw_path}"
    try:
        response = await webapp.handle(request)
    except web.HTTPException as e:
        # Routing's 404/405 and a handler's raise web.HTTPFound(...) and the like: a response.
        # Whatever a streamed response had written before is dropped.
        writer.reset()
        response = e
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(f"Error handling web request {what}")
        return await _internal_error(request, writer)
    if not isinstance(response, web.StreamResponse):
        log.error(
            f"Web handler for {what} returned {type(response).__name__}, not an aiohttp response"
        )
        return await _internal_error(request, writer)
    try:
        return await _send(response, request, writer)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(
            f"The response to web request {what} ({type(response).__name__}) could not be "
            "sent over the plugin host protocol"
        )
        return await _internal_error(request, writer)
