"""Test plugin: a web hook that stores what it receives (`database_type: asyncpg`, the same SQL
on SQLite and PostgreSQL) and posts it to a room.

`POST /push` with JSON `{"room_id": ..., "text": ...}` stores the message, sends the text to the
room as a notice and answers `{"event_id": ..., "count": <stored messages>}`; a body without
both is answered 400. `GET /count` answers `{"count": <n>}`, and `!hooks` "hooks: <n>".
"""

from aiohttp import web as aioweb
from mautrix.types import RoomID
from mautrix.util.async_db import Connection, Scheme, UpgradeTable

from maubot import MessageEvent, Plugin
from maubot.handlers import command, web

upgrade_table = UpgradeTable()


@upgrade_table.register(description="Received messages")
async def upgrade_v1(conn: Connection, scheme: Scheme) -> None:
    id_type = "INTEGER" if scheme == Scheme.SQLITE else "SERIAL"
    await conn.execute(
        f"""CREATE TABLE hook_message (
            id      {id_type} PRIMARY KEY,
            room_id TEXT NOT NULL,
            text    TEXT NOT NULL
        )"""
    )


class HooksBot(Plugin):
    @classmethod
    def get_db_upgrade_table(cls) -> UpgradeTable:
        return upgrade_table

    async def count(self) -> int:
        return await self.database.fetchval("SELECT COUNT(*) FROM hook_message")

    @web.post("/push")
    async def push(self, request: aioweb.Request) -> aioweb.Response:
        try:
            data = await request.json()
            room_id, text = RoomID(data["room_id"]), str(data["text"])
        except (ValueError, KeyError, TypeError):
            return aioweb.json_response({"error": "expected room_id and text"}, status=400)
        await self.database.execute(
            "INSERT INTO hook_message (room_id, text) VALUES ($1, $2)", room_id, text
        )
        event_id = await self.client.send_notice(room_id, text)
        return aioweb.json_response({"event_id": event_id, "count": await self.count()})

    @web.get("/count")
    async def get_count(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response({"count": await self.count()})

    @command.new("hooks", help="Count the messages received")
    async def hooks(self, evt: MessageEvent) -> None:
        await evt.reply(f"hooks: {await self.count()}")
