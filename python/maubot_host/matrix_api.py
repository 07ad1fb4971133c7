"""mautrix's HTTP layer, sent over the `matrix` RPC instead of to the homeserver.

`HTTPAPI.request()` builds the URL, body and headers, logs, retries and then calls `_send()`;
only `_send()` is replaced (and request logging skipped when its logger would drop it), so
everything built on `request()` works unchanged. The worker never sees the bot's access token:
the server adds it.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
from typing import Any, Mapping

from aiohttp import ClientSession
from mautrix.api import HTTPAPI, Method, PathBuilder
from mautrix.errors import MatrixConnectionError, make_request_error
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .rpc import Connection, ConnectionClosed, RPCError

JSON_TYPE = "application/json"


class RPCResponse:
    """Enough of aiohttp's `ClientResponse` for mautrix and for plugins that inspect it."""

    def __init__(
        self,
        method: str,
        url: URL,
        status: int,
        body: Any,
        raw: bytes | None,
        content_type: str | None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.reason = ""
        self.body = body
        self.raw = raw
        self.content_type = content_type or (
            JSON_TYPE if raw is None else "application/octet-stream"
        )
        self.headers = CIMultiDictProxy(CIMultiDict({"Content-Type": self.content_type}))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    async def read(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body).encode("utf-8")

    async def text(self, encoding: str = "utf-8", **_: Any) -> str:
        return (await self.read()).decode(encoding, errors="replace")

    async def json(self, **_: Any) -> Any:
        if self.raw is not None:
            return json.loads(self.raw)
        return self.body

    def error(self) -> Exception:
        """The mautrix exception for an unsuccessful answer."""
        body = self.body if isinstance(self.body, dict) else {}
        text = json.dumps(self.body) if self.raw is None else self.raw.decode("utf-8", "replace")
        return make_request_error(
            http_status=self.status,
            text=text,
            errcode=body.get("errcode"),
            message=body.get("error"),
            unstable_errcode=body.get("org.matrix.msc3848.unstable.errcode"),
        )


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _body_bytes(content: Any) -> bytes:
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if inspect.isasyncgen(content) or hasattr(content, "__aiter__"):
        return b"".join([bytes(chunk) async for chunk in content])
    raise TypeError(f"Unsupported request body {type(content).__name__}")


class RPCHTTPAPI(HTTPAPI):
    """`HTTPAPI` for one instance: requests become `matrix` RPC calls to the server."""

    def __init__(
        self,
        base_url: URL | str,
        *,
        rpc: Connection,
        instance_id: str,
        client_session: ClientSession,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, token="", client_session=client_session, **kwargs)
        self.rpc = rpc
        self.instance_id = instance_id

    def _log_request(self, method: Method, url: URL, *args: Any) -> None:
        # mautrix builds the message (URL strings, the body) before the logger drops it; its
        # levels are TRACE (5) and DEBUG (10), so nothing passes a logger DEBUG leaves out.
        if self.log and self.log.isEnabledFor(logging.DEBUG):
            super()._log_request(method, url, *args)

    def _log_request_done(self, path: PathBuilder | str, *args: Any) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            super()._log_request_done(path, *args)

    def _relative_path(self, url: URL) -> str:
        """`/_matrix/...` percent-encoded, without the homeserver URL's own path prefix."""
        path = url.raw_path
        prefix = self.base_url.raw_path.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        return path

    async def send_rpc(
        self,
        method: Method | str,
        url: URL,
        content: Any = None,
        query_params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> RPCResponse:
        """Perform one request through the server, whatever its answer's status."""
        content_type = (headers or {}).get("Content-Type")
        body: Any = None
        body_base64: str | None = None
        if content is not None:
            data = await _body_bytes(content)
            if content_type == JSON_TYPE:
                try:
                    body = json.loads(data) if data else {}
                except ValueError:
                    body_base64 = base64.b64encode(data).decode("ascii")
            else:
                body_base64 = base64.b64encode(data).decode("ascii")
        params = {
            "instance_id": self.instance_id,
            "method": str(method),
            "path": self._relative_path(url),
            "query": {k: _query_value(v) for k, v in (query_params or {}).items() if v is not None},
            "body": body,
            "body_base64": body_base64,
            "content_type": content_type,
        }
        try:
            result = await self.rpc.request("matrix", params)
        except (ConnectionClosed, RPCError) as e:
            raise MatrixConnectionError(f"maubot-rs did not perform the request: {e}") from e
        if not isinstance(result, dict) or not isinstance(result.get("status"), int):
            raise MatrixConnectionError(f"maubot-rs answered the request with {result!r}")
        raw = result.get("body_base64")
        return RPCResponse(
            method=str(method),
            url=url,
            status=result["status"],
            body=result.get("body"),
            raw=base64.b64decode(raw) if raw is not None else None,
            content_type=result.get("content_type"),
        )

    # Answers with the server's response to the RPC, where mautrix has aiohttp's.
    async def _send(  # type: ignore[override]
        self,
        method: Method,
        url: URL,
        content: Any,
        query_params: dict[str, str],
        headers: dict[str, str],
    ) -> tuple[Any, RPCResponse]:
        response = await self.send_rpc(method, url, content, query_params, headers)
        if not response.ok:
            raise response.error()
        return await response.json(), response
