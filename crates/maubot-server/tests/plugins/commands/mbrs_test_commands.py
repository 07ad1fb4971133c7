"""Test plugin: subcommands, parsed arguments and an optional argument."""

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class CommandsBot(Plugin):
    @command.new("calc", help="Do arithmetic")
    async def calc(self, evt: MessageEvent) -> None:
        # Never called: a subcommand is required, and without one maubot answers the help.
        pass

    @calc.subcommand("add", help="Add two numbers")
    @command.argument("a", parser=int)
    @command.argument("b", parser=int)
    async def add(self, evt: MessageEvent, a: int, b: int) -> None:
        await evt.reply(str(a + b))

    @calc.subcommand("mul", help="Multiply two numbers", aliases=("times",))
    @command.argument("a", parser=int)
    @command.argument("b", parser=int)
    async def mul(self, evt: MessageEvent, a: int, b: int) -> None:
        await evt.reply(str(a * b))

    @command.new("greet", help="Say hello")
    @command.argument("name", required=False)
    async def greet(self, evt: MessageEvent, name: str) -> None:
        await evt.reply(f"Hello, {name or 'stranger'}!")
