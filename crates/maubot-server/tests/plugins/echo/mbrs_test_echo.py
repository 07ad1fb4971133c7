"""Test plugin: `!ping` answers "pong", `!echo <text>` repeats the text."""

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class EchoBot(Plugin):
    @command.new("ping", help="Answer pong")
    async def ping(self, evt: MessageEvent) -> None:
        self.log.info("ping from %s", evt.sender)
        await evt.reply("pong")

    @command.new("echo", help="Repeat a message")
    @command.argument("text", pass_raw=True)
    async def echo(self, evt: MessageEvent, text: str) -> None:
        await evt.respond(text)
