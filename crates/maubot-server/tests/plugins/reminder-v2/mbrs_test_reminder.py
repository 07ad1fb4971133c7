"""Test plugin, version 2 of `reminder/`: the same reminders, and who asked for each.

The reminder table gains a `sender` column; `start()` adds it to a table version 1 made,
keeping its rows (their sender stays unknown). `!remind <seconds> <text>` answers
"ok, reminding in <seconds>s" and later sends "<prefix>: <text>", as version 1 does;
`!reminders` answers "reminders: <n> (v2, <k> yours)", where k counts those the asker made.
"""

import asyncio
import time
from typing import Optional, Type

from mautrix.util.config import BaseProxyConfig, ConfigUpdateHelper
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, func, inspect, select

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class Config(BaseProxyConfig):
    def do_update(self, helper: ConfigUpdateHelper) -> None:
        helper.copy("prefix")
        helper.copy("poll_interval")


class ReminderBot(Plugin):
    reminder: Table
    poll_task: Optional["asyncio.Task[None]"] = None

    @classmethod
    def get_config_class(cls) -> Type[BaseProxyConfig]:
        return Config

    async def start(self) -> None:
        self.config.load_and_update()
        metadata = MetaData()
        self.reminder = Table(
            "reminder",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("room_id", String(255), nullable=False),
            Column("due", Float, nullable=False),
            Column("text", Text, nullable=False),
            Column("sender", String(255), nullable=True),
        )
        metadata.create_all(self.database)
        self.migrate()
        self.poll_task = asyncio.ensure_future(self.poll_loop())

    def migrate(self) -> None:
        """Bring a table made by version 1 up to date: `create_all` leaves existing tables as
        they are."""
        columns = {column["name"] for column in inspect(self.database).get_columns("reminder")}
        if "sender" not in columns:
            self.database.execute("ALTER TABLE reminder ADD COLUMN sender VARCHAR(255)")
            self.log.info("Added the sender column to the reminder table")

    async def stop(self) -> None:
        if self.poll_task is not None:
            self.poll_task.cancel()
            try:
                await self.poll_task
            except asyncio.CancelledError:
                pass
            self.poll_task = None

    async def poll_loop(self) -> None:
        while True:
            try:
                await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("Failed to send due reminders")
            await asyncio.sleep(self.config["poll_interval"])

    async def send_due(self) -> None:
        table = self.reminder
        rows = self.database.execute(
            table.select().where(table.c.due <= time.time()).order_by(table.c.due, table.c.id)
        ).fetchall()
        for row in rows:
            # Deleted first: a room the bot cannot send to must not get it again every poll.
            self.database.execute(table.delete().where(table.c.id == row["id"]))
            try:
                await self.client.send_text(
                    row["room_id"], f"{self.config['prefix']}: {row['text']}"
                )
            except Exception:
                self.log.exception(f"Failed to send reminder {row['id']} to {row['room_id']}")

    @command.new("remind", help="Remind the room of something in a number of seconds")
    @command.argument("seconds", parser=int)
    @command.argument("text", pass_raw=True)
    async def remind(self, evt: MessageEvent, seconds: int, text: str) -> None:
        if seconds < 0:
            await evt.reply("that is in the past")
            return
        if not text.strip():
            await evt.reply("remind you of what?")
            return
        self.database.execute(
            self.reminder.insert().values(
                room_id=evt.room_id,
                due=time.time() + seconds,
                text=text.strip(),
                sender=evt.sender,
            )
        )
        await evt.reply(f"ok, reminding in {seconds}s")

    @command.new("reminders", help="Count the reminders not sent yet")
    async def reminders(self, evt: MessageEvent) -> None:
        table = self.reminder
        count = self.database.execute(select([func.count()]).select_from(table)).scalar()
        yours = self.database.execute(
            select([func.count()]).select_from(table).where(table.c.sender == evt.sender)
        ).scalar()
        await evt.reply(f"reminders: {count} (v2, {yours} yours)")
