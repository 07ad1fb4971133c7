"""Small stand-ins for the client and events the handlers see, recording what the bot answers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeVar

from mautrix.types import (
    EventType,
    MessageType,
    ReactionEventContent,
    RelatesTo,
    RelationType,
    TextMessageEventContent,
)

P = TypeVar("P")

BOT = "@bot:example.org"
USER = "@alice:example.org"
ROOM = "!room:example.org"


class FakeClient:
    """The client a plugin gets: its mxid, and the handlers ``register_handler_class`` adds."""

    def __init__(self, mxid: str = BOT) -> None:
        self.mxid = mxid
        self.handlers: list[tuple[Any, Any]] = []

    def add_event_handler(self, event_type: Any, handler: Any, wait_sync: bool = False) -> None:
        self.handlers.append((event_type, handler))

    def remove_event_handler(self, event_type: Any, handler: Any) -> None:
        self.handlers.remove((event_type, handler))

    def handlers_for(self, event_type: Any) -> list[Any]:
        return [handler for registered, handler in self.handlers if registered == event_type]

    async def dispatch(self, evt: FakeEvent) -> None:
        """Hand ``evt`` to its handlers one after the other, as mautrix's client would."""
        for event_type in (evt.type, EventType.ALL):
            for handler in self.handlers_for(event_type):
                await handler(evt)


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
    body: str,
    *,
    msgtype: MessageType = MessageType.TEXT,
    sender: str = USER,
    client: FakeClient | None = None,
) -> FakeEvent:
    return FakeEvent(
        TextMessageEventContent(msgtype=msgtype, body=body), sender=sender, client=client
    )


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


def make_plugin(cls: type[P], webapp: Any = None) -> P:
    """An instance of the plugin class ``cls`` as the host makes it, on a ``FakeClient``."""
    return cls(
        client=FakeClient(),
        loop=None,
        http=None,
        instance_id="bot1",
        log=logging.getLogger("maubot.instance.bot1"),
        config=None,
        database=None,
        webapp=webapp,
        webapp_url="https://maubot.example.org/_matrix/maubot/plugin/bot1/" if webapp else None,
        loader=None,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)
