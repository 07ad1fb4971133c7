"""Test plugin: an instance database (`database_type: asyncpg`) with an upgrade table;
`!remember <text>` stores a note, `!recall` answers the latest one."""

from mautrix.util.async_db import Connection, UpgradeTable

from maubot import MessageEvent, Plugin
from maubot.handlers import command

upgrade_table = UpgradeTable()


@upgrade_table.register(description="Notes")
async def upgrade_v1(conn: Connection) -> None:
    await conn.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")


class StorageBot(Plugin):
    @classmethod
    def get_db_upgrade_table(cls) -> UpgradeTable:
        return upgrade_table

    @command.new("remember", help="Store a note")
    @command.argument("text", pass_raw=True)
    async def remember(self, evt: MessageEvent, text: str) -> None:
        await self.database.execute("INSERT INTO note (text) VALUES ($1)", text)
        await evt.reply("noted")

    @command.new("recall", help="The latest note")
    async def recall(self, evt: MessageEvent) -> None:
        text = await self.database.fetchval("SELECT text FROM note ORDER BY id DESC LIMIT 1")
        await evt.reply(f"latest: {text}")
