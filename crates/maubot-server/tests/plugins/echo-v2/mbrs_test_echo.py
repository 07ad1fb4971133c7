"""Test plugin, version 2 of the echo plugin: `!ping` answers "pong v2"."""

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class EchoBot(Plugin):
    @command.new("ping", help="Answer pong")
    async def ping(self, evt: MessageEvent) -> None:
        await evt.reply("pong v2")

    @command.new("echo", help="Repeat a message")
    @command.argument("text", pass_raw=True)
    async def echo(self, evt: MessageEvent, text: str) -> None:
        await evt.respond(text)
