"""Test plugin: `!ping` answers "pong", `!echo <text>` repeats the text, `!seq <n>` answers
`seq <n> #<k>` for the k-th `!seq` it handled."""

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class EchoBot(Plugin):
    handled = 0

    @command.new("ping", help="Answer pong")
    async def ping(self, evt: MessageEvent) -> None:
        self.log.info("ping from %s", evt.sender)
        await evt.reply("pong")

    @command.new("echo", help="Repeat a message")
    @command.argument("text", pass_raw=True)
    async def echo(self, evt: MessageEvent, text: str) -> None:
        await evt.respond(text)

    @command.new("seq", help="Number the message in the order handled")
    @command.argument("n")
    async def seq(self, evt: MessageEvent, n: str) -> None:
        self.handled += 1
        await evt.reply(f"seq {n} #{self.handled}")
