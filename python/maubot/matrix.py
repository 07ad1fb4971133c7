"""The Matrix client plugins get, and the message events they receive.

`MaubotMatrixClient` is a full mautrix `Client`. Message events are handed to plugins as
`MaubotMessageEvent`, which knows its client and has the reply helpers of maubot 0.6.
"""

from __future__ import annotations

from html import escape
from typing import Any, Awaitable

import attr
from mautrix.client import Client
from mautrix.types import (
    BaseMessageEventContentFuncs,
    EventID,
    EventType,
    Format,
    MessageEvent,
    MessageEventContent,
    MessageType,
    RelatesTo,
    RelationType,
    RoomID,
    TextMessageEventContent,
)
from mautrix.util import markdown
from mautrix.util.formatter import EntityType, MarkdownString, MatrixParser

# A plaintext body longer than this is cut when the message is huge (see `parse_formatted`).
_PLAINTEXT_CUT = 100
_HUGE_MESSAGE = 40000


class _PlaintextString(MarkdownString):
    """Markdown-like plaintext where a link reads `text (url)`."""

    def format(self, entity_type: EntityType, **kwargs: Any) -> _PlaintextString:
        if entity_type == EntityType.URL:
            url = kwargs["url"]
            if url != self.text:
                self.text = f"{self.text} ({url})"
            return self
        super().format(entity_type, **kwargs)
        return self

    def split(self, separator: str, max_items: int = -1) -> list[_PlaintextString]:  # type: ignore[override]
        return [_PlaintextString(part) for part in self.text.split(separator, max_items)]


class _PlaintextParser(MatrixParser[_PlaintextString]):
    fs = _PlaintextString


async def parse_formatted(
    message: str, allow_html: bool = False, render_markdown: bool = True
) -> tuple[str, str]:
    """Turn `message` into `(plaintext body, HTML)`.

    With `render_markdown`, the message is CommonMark (raw HTML kept only with `allow_html`).
    Without it, the message is HTML if `allow_html`, else plain text (then the HTML is escaped).
    """
    if render_markdown:
        html = markdown.render(message, allow_html=allow_html)
    elif allow_html:
        html = message
    else:
        return message, escape(message)
    text = (await _PlaintextParser().parse(html)).text
    if len(text) > _PLAINTEXT_CUT and len(text) + len(html) > _HUGE_MESSAGE:
        text = text[:_PLAINTEXT_CUT] + "[long message cut off]"
    return text, html


class MaubotMessageEvent(MessageEvent):
    """A message event with helpers to answer it. Plugins import it as `maubot.MessageEvent`."""

    client: MaubotMatrixClient
    disable_reply: bool

    def __init__(self, base: MessageEvent, client: MaubotMatrixClient) -> None:
        super().__init__(
            **{field.name: getattr(base, field.name) for field in attr.fields(MessageEvent)}
        )
        unrecognized = getattr(base, "unrecognized_", None)
        if unrecognized:
            self.unrecognized_ = dict(unrecognized)
        source = getattr(base, "source", None)
        if source is not None:
            self.source = source
        self.client = client
        self.disable_reply = client.disable_replies

    def _in_thread(self) -> bool:
        return isinstance(self.content, BaseMessageEventContentFuncs) and bool(
            self.content.get_thread_parent()
        )

    async def respond(
        self,
        content: str | MessageEventContent,
        event_type: EventType = EventType.ROOM_MESSAGE,
        markdown: bool = True,
        allow_html: bool = False,
        reply: bool | str = False,
        in_thread: bool | None = None,
        edits: EventID | MessageEvent | None = None,
        extra_content: dict[str, Any] | None = None,
    ) -> EventID:
        """Send `content` to this event's room.

        A string becomes an `m.notice`, rendered from Markdown unless `markdown=False`. `reply`
        makes it a rich reply (`"force"` even when replies are disabled), `in_thread` puts it in
        this event's thread (default: if this event is in one), `edits` sends it as an edit.
        """
        if isinstance(content, str):
            content = TextMessageEventContent(msgtype=MessageType.NOTICE, body=content)
            if markdown or allow_html:
                content.format = Format.HTML
                content.body, content.formatted_body = await parse_formatted(
                    content.body, allow_html=allow_html, render_markdown=markdown
                )
        if edits:
            content.set_edit(edits)
        else:
            if in_thread or (in_thread is None and self._in_thread()):
                content.set_thread_parent(self)
            if reply:
                if reply != "force" and self.disable_reply:
                    self._prefix_sender(content)
                else:
                    content.set_reply(self)
                    if content.relates_to.rel_type == RelationType.THREAD:
                        # A real reply inside the thread, not the thread's fallback.
                        content.relates_to.is_falling_back = False
        if extra_content:
            for key, value in extra_content.items():
                content[key] = value
        return await self.client.send_message_event(self.room_id, event_type, content)

    def _prefix_sender(self, content: MessageEventContent) -> None:
        """The stand-in for a reply when replies are disabled: `<sender>: <message>`."""
        if not isinstance(content, TextMessageEventContent):
            return
        html = content.formatted(Format.HTML) or escape(content.body).replace("\n", "<br/>")
        pill = f'<a href="https://matrix.to/#/{self.sender}">{escape(self.sender)}</a>'
        content.body = f"{self.sender}: {content.body}"
        content.format = Format.HTML
        content.formatted_body = f"{pill}: {html}"

    def reply(
        self,
        content: str | MessageEventContent,
        event_type: EventType = EventType.ROOM_MESSAGE,
        markdown: bool = True,
        allow_html: bool = False,
        in_thread: bool | None = None,
        extra_content: dict[str, Any] | None = None,
    ) -> Awaitable[EventID]:
        """`respond(..., reply=True)`."""
        return self.respond(
            content,
            event_type=event_type,
            markdown=markdown,
            allow_html=allow_html,
            reply=True,
            in_thread=in_thread,
            extra_content=extra_content,
        )

    def edit(
        self,
        content: str | MessageEventContent,
        event_type: EventType = EventType.ROOM_MESSAGE,
        markdown: bool = True,
        allow_html: bool = False,
        extra_content: dict[str, Any] | None = None,
    ) -> Awaitable[EventID]:
        """Replace this event (one the bot sent) with `content`."""
        return self.respond(
            content,
            event_type=event_type,
            markdown=markdown,
            allow_html=allow_html,
            edits=self,
            extra_content=extra_content,
        )

    def react(self, key: str) -> Awaitable[EventID]:
        """Annotate this event with `key` (an `m.reaction`)."""
        return self.client.react(self.room_id, self.event_id, key)

    def redact(self, reason: str | None = None) -> Awaitable[EventID]:
        """Redact this event."""
        return self.client.redact(self.room_id, self.event_id, reason=reason)

    def mark_read(self) -> Awaitable[None]:
        """Send an `m.read` receipt for this event."""
        return self.client.send_receipt(self.room_id, self.event_id, "m.read")


class MaubotMatrixClient(Client):
    """The mautrix client a plugin gets as `self.client`."""

    disable_replies: bool = False
    """When set, `evt.reply()` prefixes the sender's ID instead of sending a rich reply."""

    async def send_markdown(
        self,
        room_id: RoomID,
        markdown: str,
        *,
        allow_html: bool = False,
        render_markdown: bool = True,
        msgtype: MessageType = MessageType.TEXT,
        edits: EventID | MessageEvent | None = None,
        relates_to: RelatesTo | None = None,
        extra_content: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> EventID:
        """Send a Markdown (or, with `render_markdown=False`, HTML or plain) message."""
        content = TextMessageEventContent(msgtype=msgtype, format=Format.HTML)
        content.body, content.formatted_body = await parse_formatted(
            markdown, allow_html=allow_html, render_markdown=render_markdown
        )
        if relates_to:
            if edits:
                raise ValueError("Can't use edits and relates_to at the same time.")
            content.relates_to = relates_to
        elif edits:
            content.set_edit(edits)
        if extra_content:
            for key, value in extra_content.items():
                content[key] = value
        return await self.send_message(room_id, content, **kwargs)

    def dispatch_event(self, event, source):
        """Message events reach handlers as `MaubotMessageEvent`."""
        if isinstance(event, MessageEvent) and not isinstance(event, MaubotMessageEvent):
            event = MaubotMessageEvent(event, self)
        return super().dispatch_event(event, source)

    async def get_event(self, room_id: RoomID, event_id: EventID):
        """The event (decrypted by the server); message events as `MaubotMessageEvent`."""
        event = await super().get_event(room_id, event_id)
        if isinstance(event, MessageEvent):
            return MaubotMessageEvent(event, self)
        return event


# maubot's names for the plaintext renderer `parse_formatted` uses.
HumanReadableString = _PlaintextString
MaubotHTMLParser = _PlaintextParser
