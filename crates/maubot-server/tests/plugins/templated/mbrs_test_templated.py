"""Test plugin: packages a plugin imports without declaring them. jinja2 is in maubot's own
environment, so plugins import it unlisted; semver is a `soft_dependencies` entry. Both are
imported at module level, so the plugin does not load without them.

`!render <name>` renders `templates/greeting.txt.j2`, a file of the archive read with
`self.loader.read_file`, and answers "Hello, <name>!"; `!bump <version>` answers the next patch
version (`!bump 1.2.3` → "1.2.4"), or "not a version: <text>".
"""

import jinja2
import semver

from maubot import MessageEvent, Plugin
from maubot.handlers import command

TEMPLATE = "templates/greeting.txt.j2"


class TemplatedBot(Plugin):
    greeting: jinja2.Template

    async def start(self) -> None:
        source = (await self.loader.read_file(TEMPLATE)).decode("utf-8")
        env = jinja2.Environment(autoescape=False, keep_trailing_newline=False)
        self.greeting = env.from_string(source)

    @command.new("render", help="Greet someone with the template")
    @command.argument("name")
    async def render(self, evt: MessageEvent, name: str) -> None:
        await evt.reply(self.greeting.render(name=name or "world"), markdown=False)

    @command.new("bump", help="The next patch version")
    @command.argument("version")
    async def bump(self, evt: MessageEvent, version: str) -> None:
        try:
            parsed = semver.VersionInfo.parse(version)
        except (ValueError, TypeError):
            await evt.reply(f"not a version: {version}", markdown=False)
            return
        await evt.reply(str(parsed.bump_patch()), markdown=False)
