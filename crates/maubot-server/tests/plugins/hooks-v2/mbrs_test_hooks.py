"""Test plugin, version 2 of `hooks/`: the same web hook, and when each message arrived.

A second upgrade step adds a `received_at` column (milliseconds since the epoch) to the table
version 1 made, keeping its rows (their time stays unknown). `POST /push` with JSON
`{"room_id": ..., "text": ...}` stores and sends as version 1 does; `GET /count` answers
`{"count": <n>, "dated": <k>}` and `!hooks` "hooks: <n> (v2, <k> dated)", where k counts the
messages stored since the upgrade.
"""

import time

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


@upgrade_table.register(description="When each message arrived")
async def upgrade_v2(conn: Connection) -> None:
    await conn.execute("ALTER TABLE hook_message ADD COLUMN received_at BIGINT")


class HooksBot(Plugin):
    @classmethod
    def get_db_upgrade_table(cls) -> UpgradeTable:
        return upgrade_table

    async def counts(self) -> tuple:
        row = await self.database.fetchrow(
            "SELECT COUNT(*) AS count, COUNT(received_at) AS dated FROM hook_message"
        )
        return row["count"], row["dated"]

    @web.post("/push")
    async def push(self, request: aioweb.Request) -> aioweb.Response:
        try:
            data = await request.json()
            room_id, text = RoomID(data["room_id"]), str(data["text"])
        except (ValueError, KeyError, TypeError):
            return aioweb.json_response({"error": "expected room_id and text"}, status=400)
        await self.database.execute(
            "INSERT INTO hook_message (room_id, text, received_at) VALUES ($1, $2, $3)",
            room_id,
            text,
            int(time.time() * 1000),
        )
        event_id = await self.client.send_notice(room_id, text)
        count, _ = await self.counts()
        return aioweb.json_response({"event_id": event_id, "count": count})

    @web.get("/count")
    async def get_count(self, request: aioweb.Request) -> aioweb.Response:
        count, dated = await self.counts()
        return aioweb.json_response({"count": count, "dated": dated})

    @command.new("hooks", help="Count the messages received")
    async def hooks(self, evt: MessageEvent) -> None:
        count, dated = await self.counts()
        await evt.reply(f"hooks: {count} (v2, {dated} dated)")
