"""The client of a hosted instance: Matrix over RPC, and dispatch that can be awaited."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any, Literal

from mautrix.api import Method
from mautrix.client import InternalEventType, SyncStream
from mautrix.errors import MatrixResponseError
from mautrix.types import ContentURI, Event, EventType, SpecVersions

from maubot.matrix import MaubotMatrixClient

from .matrix_api import RPCHTTPAPI

# Set while the worker dispatches one delivered event: every handler task started for it, also
# by dispatches nested inside handlers (the membership dispatcher's JOIN, INVITE, ...), is added
# here so that the worker can answer once all of them have finished.
_dispatch_tasks: ContextVar[list[asyncio.Task] | None] = ContextVar(
    "maubot_host_dispatch_tasks", default=None
)


class HostedMatrixClient(MaubotMatrixClient):
    api: RPCHTTPAPI

    def dispatch_manual_event(
        self,
        event_type: EventType | InternalEventType,
        data: Any,
        include_global_handlers: bool = False,
        force_synchronous: bool = False,
        source: SyncStream | None = None,
    ) -> list[asyncio.Task]:
        collected = _dispatch_tasks.get()
        if collected is None:
            return super().dispatch_manual_event(
                event_type, data, include_global_handlers, force_synchronous, source
            )
        # mautrix runs handlers as untracked background tasks unless forced synchronous.
        tasks = super().dispatch_manual_event(
            event_type, data, include_global_handlers, True, source
        )
        collected.extend(tasks)
        return tasks

    async def dispatch_and_wait(self, event: Event, source: SyncStream) -> None:
        """Run every handler for `event` and return when all of them (and what they set off) ended.

        Handler errors are logged by mautrix ("Failed to run handler"), not raised.
        """
        collected: list[asyncio.Task] = []
        token = _dispatch_tasks.set(collected)
        try:
            self.dispatch_event(event, source)
        finally:
            _dispatch_tasks.reset(token)
        awaited = 0
        while awaited < len(collected):
            batch = collected[awaited:]
            awaited = len(collected)
            await asyncio.gather(*batch, return_exceptions=True)

    async def _download(
        self, url: ContentURI, kind: Literal["download", "thumbnail"], query: dict[str, Any]
    ) -> bytes:
        authenticated = (await self.versions()).supports(SpecVersions.V111)
        full_url = self.api.get_download_url(url, download_type=kind, authenticated=authenticated)
        response = await self.api.send_rpc(
            Method.GET, full_url, None, {"allow_redirect": "true", **query}
        )
        if not response.ok:
            raise response.error()
        if response.raw is None:
            raise MatrixResponseError("maubot-rs did not return the media's bytes")
        return response.raw

    async def download_media(self, url: ContentURI, timeout_ms: int | None = None) -> bytes:
        """Download through the server, which adds the bot's token (authenticated media)."""
        return await self._download(url, "download", {"timeout_ms": timeout_ms})

    async def download_thumbnail(
        self,
        url: ContentURI,
        width: int | None = None,
        height: int | None = None,
        resize_method: Literal["crop", "scale"] | None = None,
        allow_remote: bool | None = None,
        timeout_ms: int | None = None,
    ) -> bytes:
        query = {
            "width": width,
            "height": height,
            "method": resize_method,
            "allow_remote": allow_remote,
            "timeout_ms": timeout_ms,
        }
        return await self._download(url, "thumbnail", query)
