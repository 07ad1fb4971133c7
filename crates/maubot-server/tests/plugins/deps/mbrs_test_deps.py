"""Test plugin: imports a package the plugin host does not have (python-dateutil, listed under
`dependencies`); `!when <date>` answers the date in ISO form."""

from dateutil import parser

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class DepsBot(Plugin):
    @command.new("when", help="Read a date")
    @command.argument("text", pass_raw=True)
    async def when(self, evt: MessageEvent, text: str) -> None:
        await evt.reply(parser.parse(text).date().isoformat())
