"""Test plugin: sends "welcome <user ID>" when someone other than the bot joins a room."""

from mautrix.client import InternalEventType
from mautrix.types import StateEvent

from maubot import Plugin
from maubot.handlers import event


class MembersBot(Plugin):
    @event.on(InternalEventType.JOIN)
    async def joined(self, evt: StateEvent) -> None:
        if evt.state_key == self.client.mxid:
            return
        await self.client.send_notice(evt.room_id, f"welcome {evt.state_key}")
