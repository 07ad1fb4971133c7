"""The client of a hosted instance: Matrix over RPC, and dispatch that can be awaited."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Literal

from mautrix.api import Method
from mautrix.client import Client, InternalEventType, SyncStream
from mautrix.errors import MatrixResponseError
from mautrix.types import ContentURI, Event, EventType, SpecVersions, StateEvent
from mautrix.util import background_task

from maubot.handlers.command import BoundHandler
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
    # Set only while `dispatch_and_wait` hands a delivered event to mautrix's dispatch.
    _fresh_dispatch = False

    def _does_nothing(self, handler: Any, data: Any) -> bool:
        """Whether running `handler` for `data` certainly returns at once, with no effect."""
        try:
            if isinstance(handler, BoundHandler):
                return handler._mb_ignores(data)
            return (
                getattr(handler, "__func__", None) is Client._update_state
                and getattr(handler, "__self__", None) is self
                and not isinstance(data, StateEvent)
            )
        except Exception:
            return False

    def _dispatch_manual_event(
        self,
        event_type: EventType | InternalEventType,
        data: Any,
        include_global_handlers: bool,
        force_synchronous: bool,
        source: SyncStream | None,
    ) -> list[asyncio.Task]:
        # mautrix's own, except that a delivered event skips the handlers in front that would
        # return at once (the client's state update for a message, commands it does not call):
        # a task each is most of what dispatch costs. Only in front, and only for an event no
        # other code has seen yet: until the first handler runs, nothing can change the event
        # these checks read, so each skipped handler would have seen it as checked.
        skipping, self._fresh_dispatch = self._fresh_dispatch, False
        handlers: Iterable[tuple[Any, Any]] = self.event_handlers.get(event_type, {}).items()
        if include_global_handlers:
            handlers = itertools.chain(self.global_event_handlers.items(), handlers)
        tasks = []
        if source is None:
            source = getattr(data, "source", None)
        for handler, props in handlers:
            if (
                props.sync_stream is not None
                and source is not None
                and not props.sync_stream & source
            ):
                continue
            if skipping:
                if self._does_nothing(handler, data):
                    continue
                skipping = False
            if force_synchronous or props.wait_sync:
                tasks.append(asyncio.create_task(self._catch_errors(handler, data)))
            else:
                background_task.create(self._catch_errors(handler, data))
        return tasks

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
        self._fresh_dispatch = True
        try:
            self.dispatch_event(event, source)
        finally:
            self._fresh_dispatch = False
            _dispatch_tasks.reset(token)
        # Each task awaited itself rather than gathered: its end wakes this task directly, where
        # gather's would take one more turn of the loop. Tasks started by the ones awaited are
        # appended to `collected` meanwhile.
        current = asyncio.current_task()
        index = 0
        try:
            while index < len(collected):
                task = collected[index]
                index += 1
                if task.done():
                    continue
                try:
                    await task
                except (Exception, asyncio.CancelledError):
                    pass  # mautrix logs handler errors ("Failed to run handler")
                if current is not None and current.cancelling():
                    # This dispatch was cancelled (the awaited handler with it): as gather
                    # would, cancel the other handlers and end cancelled.
                    for other in collected[index:]:
                        other.cancel()
                    raise asyncio.CancelledError
        finally:
            # The handler tasks' contexts hold this list: emptied, the tasks are freed as soon as
            # they end instead of waiting, in a reference cycle, for the garbage collector.
            collected.clear()

    async def _download(
        self, url: ContentURI, kind: Literal["download", "thumbnail"], query: dict[str, Any]
    ) -> bytes:
        authenticated = bool((await self.versions()).supports(SpecVersions.V111))
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
