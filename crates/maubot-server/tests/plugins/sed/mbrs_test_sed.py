"""Test plugin: sed-style corrections of one's previous message, kept in memory.

Every message is remembered as its sender's latest in the room. A message `s/old/new/` (or
`s|old|new|`; a trailing `g` replaces every match, else the first) is applied to the sender's
previous message and answered "<sender> meant: <corrected text>"; it is not remembered itself.
`old` is a regular expression, `new` is inserted as written.

The shape is the one real plugins have: an `@event.on(ROOM_MESSAGE)` handler that keeps the
history and calls a method made of two stacked `@command.passive`s under `@event.off` (so the
passives are not registered themselves) directly, as `await self.handler(evt)`.
"""

import re
from typing import Dict, Tuple

from mautrix.types import EventType, MessageType, RoomID, UserID

from maubot import MessageEvent, Plugin
from maubot.handlers import command, event

SLASH = r"^s/((?:[^/\\]|\\.)+)/((?:[^/\\]|\\.)*)/(g?)$"
PIPE = r"^s\|((?:[^|\\]|\\.)+)\|((?:[^|\\]|\\.)*)\|(g?)$"


class SedBot(Plugin):
    history: Dict[Tuple[RoomID, UserID], str]

    async def start(self) -> None:
        self.history = {}

    @event.off
    @command.passive(SLASH)
    @command.passive(PIPE)
    async def substitute(self, evt: MessageEvent, match: Tuple[str, str, str, str]) -> None:
        _, pattern, replacement, flags = match
        previous = self.history.get((evt.room_id, evt.sender))
        if previous is None:
            return
        try:
            corrected = re.sub(
                pattern,
                lambda _: replacement.replace("\\/", "/").replace("\\|", "|"),
                previous,
                count=0 if flags == "g" else 1,
            )
        except re.error as e:
            await evt.reply(f"bad pattern: {e}")
            return
        if corrected == previous:
            return
        # The correction becomes the latest message, so corrections can be chained.
        self.history[(evt.room_id, evt.sender)] = corrected
        await evt.reply(f"{evt.sender} meant: {corrected}", markdown=False)

    @event.on(EventType.ROOM_MESSAGE)
    async def on_message(self, evt: MessageEvent) -> None:
        if evt.sender == self.client.mxid or evt.content.msgtype not in (
            MessageType.TEXT,
            MessageType.EMOTE,
        ):
            return
        # Every message goes through the passives; only a substitution matches them.
        await self.substitute(evt)
        body = evt.content.body
        if not (re.match(SLASH, body) or re.match(PIPE, body)):
            self.history[(evt.room_id, evt.sender)] = body
