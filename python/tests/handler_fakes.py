"""Small stand-ins for the client and events the handlers see, recording what the bot answers."""

from __future__ import annotations

import asyncio
from typing import Any

from mautrix.types import (
    EventType,
    MessageType,
    ReactionEventContent,
    RelatesTo,
    RelationType,
    TextMessageEventContent,
)

BOT = "@bot:example.org"
USER = "@alice:example.org"
ROOM = "!room:example.org"


class FakeClient:
    def __init__(self, mxid: str = BOT) -> None:
        self.mxid = mxid


class FakeEvent:
    """A message event as maubot's handlers receive it: mautrix content plus ``reply``."""

    _counter = 0

    def __init__(
        self,
        content: Any,
        *,
        sender: str = USER,
        event_type: EventType = EventType.ROOM_MESSAGE,
        client: FakeClient | None = None,
    ) -> None:
        FakeEvent._counter += 1
        self.content = content
        self.sender = sender
        self.type = event_type
        self.room_id = ROOM
        self.event_id = f"$event{FakeEvent._counter}"
        self.client = client or FakeClient()
        self.replies: list[str] = []
        self.responses: list[str] = []

    async def reply(self, content: Any, markdown: bool = True, **_: Any) -> str:
        self.replies.append(content)
        return "$reply"

    async def respond(self, content: Any, markdown: bool = True, **_: Any) -> str:
        self.responses.append(content)
        return "$response"


def message(
    body: str, *, msgtype: MessageType = MessageType.TEXT, sender: str = USER
) -> FakeEvent:
    return FakeEvent(TextMessageEventContent(msgtype=msgtype, body=body), sender=sender)


def reaction(key: str, *, sender: str = USER) -> FakeEvent:
    content = ReactionEventContent(
        relates_to=RelatesTo(rel_type=RelationType.ANNOTATION, event_id="$target", key=key)
    )
    return FakeEvent(content, sender=sender, event_type=EventType.REACTION)


class Registry:
    """What ``Plugin.register_handler_class`` does with an object, against a fake client."""

    def __init__(self) -> None:
        self.handlers: dict[Any, list[Any]] = {}

    def register(self, obj: Any) -> None:
        for name in dir(obj):
            val = getattr(obj, name)
            if getattr(val, "__mb_event_handler__", False):
                for event_type in val.__mb_event_types__:
                    self.handlers.setdefault(event_type, []).append(val)

    async def dispatch(self, evt: FakeEvent) -> None:
        for event_type in (evt.type, EventType.ALL):
            for handler in self.handlers.get(event_type, []):
                await handler(evt)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
