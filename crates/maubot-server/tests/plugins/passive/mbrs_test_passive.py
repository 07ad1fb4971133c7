"""Test plugin: answers "hi there" to any message containing the word "hello"."""

from typing import Tuple

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class PassiveBot(Plugin):
    @command.passive(r"\bhello\b", case_insensitive=True)
    async def hello(self, evt: MessageEvent, match: Tuple[str]) -> None:
        await evt.reply("hi there")
