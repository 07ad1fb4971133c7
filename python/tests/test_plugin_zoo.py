"""The server's test plugins (crates/maubot-server/tests/plugins), run against fakes.

Each plugin is zipped from its folder as the server's tests zip it and loaded with the worker's
archive loader, then started as the worker starts it (config from `base-config.yaml`, a real
database from `maubot_host.database`, a real web app), on a client that records what the bot
sends. What needs the Matrix server end to end is left to the Rust tests; this checks each
plugin's logic and that it loads and runs on our `maubot` package.

Tests needing a package a plugin imports (SQLAlchemy, jinja2, semver, Pillow) skip without it;
those on PostgreSQL use $TEST_POSTGRES_URL as test_database.py does.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import logging
import os
import tempfile
import time
import unittest
import uuid
import zipfile
from pathlib import Path
from typing import Any

from mautrix.types import ContentURI, EventType, MediaMessageEventContent, MessageType
from ruamel.yaml import YAML

from maubot.loader import DatabaseType, PluginMeta, ZippedPluginLoader
from maubot.plugin_server import PluginWebApp
from maubot_host import web
from maubot_host.config import InstanceConfig
from maubot_host.database import PluginDatabase, open_database

from .handler_fakes import BOT, ROOM, USER, FakeClient, message
from .test_database import POSTGRES_MISSING, POSTGRES_URL

PLUGINS = Path(__file__).resolve().parents[2] / "crates" / "maubot-server" / "tests" / "plugins"
ZOO = ["reminder", "reminder-v2", "karma", "sed", "hooks", "hooks-v2", "templated", "imagebot"]
BOB = "@bob:example.org"


def has(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


def read_meta(folder: Path) -> PluginMeta:
    return PluginMeta.deserialize(YAML(typ="safe").load((folder / "maubot.yaml").read_text()))


class ZooClient(FakeClient):
    """A client that records what the bot sends and uploads."""

    def __init__(self) -> None:
        super().__init__(BOT)
        self.sent: list[tuple[str, str, Any]] = []
        self.uploads: list[tuple[bytes, str | None, str | None]] = []

    async def send_text(self, room_id: str, text: str, **_: Any) -> str:
        self.sent.append(("text", room_id, text))
        return f"$sent{len(self.sent)}"

    async def send_notice(self, room_id: str, text: str, **_: Any) -> str:
        self.sent.append(("notice", room_id, text))
        return f"$sent{len(self.sent)}"

    async def upload_media(
        self, data: bytes, mime_type: str | None = None, filename: str | None = None, **_: Any
    ) -> ContentURI:
        self.uploads.append((data, mime_type, filename))
        return ContentURI(f"mxc://example.org/upload{len(self.uploads)}")


class ZooTest(unittest.IsolatedAsyncioTestCase):
    """Loads plugins from their folders and starts instances of them."""

    async def asyncSetUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def load(self, name: str) -> tuple[type, ZippedPluginLoader]:
        """The plugin's main class, imported from its folder zipped as an `.mbp`."""
        folder = PLUGINS / name
        path = os.path.join(self.tmp, f"{name}-{uuid.uuid4().hex[:6]}.mbp")
        with zipfile.ZipFile(path, "w") as archive:
            for file in sorted(folder.rglob("*")):
                if file.is_file() and "__pycache__" not in file.parts:
                    archive.write(file, file.relative_to(folder).as_posix())
        loader = ZippedPluginLoader(path, read_meta(folder))
        cls = loader.load()
        self.addCleanup(loader.unload)
        return cls, loader

    async def start(
        self,
        cls: type,
        loader: ZippedPluginLoader,
        *,
        database: PluginDatabase | None = None,
        config: str = "",
        webapp: PluginWebApp | None = None,
    ) -> Any:
        """A started instance, as the worker makes it; stopped again at the end of the test."""
        config_object = None
        config_class = cls.get_config_class()
        if config_class is not None:
            base = loader.sync_read_file("base-config.yaml").decode("utf-8")
            self.config = InstanceConfig(config, base, lambda text: None)
            config_object = config_class(self.config.load, self.config.load_base, self.config.save)
        plugin = cls(
            client=ZooClient(),
            loop=asyncio.get_running_loop(),
            http=None,
            instance_id="zoo1",
            log=logging.getLogger("maubot.instance.zoo1"),
            config=config_object,
            database=database.value if database is not None else None,
            webapp=webapp,
            webapp_url="https://maubot.example.org/_matrix/maubot/plugin/zoo1/" if webapp else None,
            loader=loader,
        )
        await plugin.internal_start()
        self.addAsyncCleanup(self.stop, plugin)
        return plugin

    async def stop(self, plugin: Any) -> None:
        if not getattr(plugin, "_zoo_stopped", False):
            plugin._zoo_stopped = True
            await plugin.internal_stop()
            plugin.sched.stop()

    async def database(
        self, db_type: DatabaseType, cls: type, params: dict[str, Any] | None = None
    ) -> PluginDatabase:
        params = params or self.database_params()
        db = await open_database("zoo1", db_type, params, cls.get_db_upgrade_table())
        self.addAsyncCleanup(self.stop_database, db)
        return db

    async def stop_database(self, db: PluginDatabase) -> None:
        if not getattr(db, "_zoo_stopped", False):
            db._zoo_stopped = True
            await db.stop()

    def database_params(self) -> dict[str, Any]:
        """Where the instance database is: a file, unless a PostgreSQL test says otherwise."""
        return {"url": f"sqlite:{self.tmp}/zoo1.db"}

    async def say(self, plugin: Any, body: str, sender: str = USER) -> Any:
        evt = message(body, sender=sender, client=plugin.client)
        await plugin.client.dispatch(evt)
        return evt

    async def replies(self, plugin: Any, body: str, sender: str = USER) -> list[Any]:
        return (await self.say(plugin, body, sender)).replies


class OnPostgres(ZooTest):
    """The instance database in a throwaway schema of $TEST_POSTGRES_URL."""

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        if POSTGRES_MISSING:
            self.skipTest(POSTGRES_MISSING)
        # Legacy plugins use their engine synchronously, on the event loop: over the network
        # that takes longer than asyncio's debug mode (on in these tests) likes.
        asyncio.get_running_loop().slow_callback_duration = 1.0
        import asyncpg

        self.schema = f"mbp_zoo_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(f'CREATE SCHEMA "{self.schema}"')
        await admin.close()
        self.addAsyncCleanup(self.drop_schema)

    async def drop_schema(self) -> None:
        import asyncpg

        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        await admin.close()

    def database_params(self) -> dict[str, Any]:
        return {"url": POSTGRES_URL, "schema": self.schema, "max_conns": 2}


class ShapesTest(unittest.TestCase):
    def test_every_plugin_compiles_and_has_its_meta(self) -> None:
        for name in ZOO:
            with self.subTest(name):
                folder = PLUGINS / name
                meta = read_meta(folder)
                base = name.removesuffix("-v2")
                self.assertEqual(meta.id, f"xyz.maubot-rs.test.{base}")
                self.assertEqual(str(meta.version), "2.0.0" if name.endswith("-v2") else "1.0.0")
                self.assertEqual(meta.modules, [f"mbrs_test_{base}"])
                source = (folder / f"mbrs_test_{base}.py").read_text()
                # Compiled without writing bytecode next to the plugin.
                code = compile(source, str(folder / f"mbrs_test_{base}.py"), "exec")
                self.assertIn(meta.main_class, code.co_names)
                if (folder / "base-config.yaml").exists():
                    self.assertIn("base-config.yaml", meta.extra_files)
                for extra in meta.extra_files:
                    self.assertTrue((folder / extra).is_file(), extra)

    def test_database_kinds(self) -> None:
        kinds = {name: read_meta(PLUGINS / name) for name in ZOO}
        for name in ("reminder", "reminder-v2", "karma"):
            self.assertTrue(kinds[name].database)
            self.assertEqual(kinds[name].database_type, DatabaseType.SQLALCHEMY)
        for name in ("hooks", "hooks-v2"):
            self.assertTrue(kinds[name].database)
            self.assertEqual(kinds[name].database_type, DatabaseType.ASYNCPG)
            self.assertTrue(kinds[name].webapp)
        self.assertEqual(kinds["templated"].soft_dependencies, ["semver>=2.10"])
        self.assertEqual(kinds["templated"].dependencies, [])
        self.assertEqual(kinds["imagebot"].dependencies, [])


# ------------------------------------------------------------------------------------------------
# sed: @event.on calling @event.off over two stacked passives


class SedTest(ZooTest):
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        cls, loader = self.load("sed")
        self.bot = await self.start(cls, loader)

    async def test_only_the_event_handler_is_registered(self) -> None:
        self.assertEqual(
            [(t, h.__name__) for t, h in self.bot.client.handlers],
            [(EventType.ROOM_MESSAGE, "on_message")],
        )

    async def test_corrects_the_senders_previous_message(self) -> None:
        self.assertEqual(await self.replies(self.bot, "hello wrold"), [])
        await self.say(self.bot, "something else", sender=BOB)
        self.assertEqual(
            await self.replies(self.bot, "s/wrold/world/"), [f"{USER} meant: hello world"]
        )
        # The correction is the latest message now; the other delimiter and `g`.
        self.assertEqual(await self.replies(self.bot, "s|o|0|g"), [f"{USER} meant: hell0 w0rld"])
        self.assertEqual(
            await self.replies(self.bot, "s/else/entirely/", sender=BOB),
            [f"{BOB} meant: something entirely"],
        )

    async def test_nothing_to_correct(self) -> None:
        self.assertEqual(await self.replies(self.bot, "s/a/b/"), [])
        await self.say(self.bot, "abc")
        self.assertEqual(await self.replies(self.bot, "s/x/y/"), [])
        # A substitution is not remembered as a message.
        self.assertEqual(await self.replies(self.bot, "s/a/A/"), [f"{USER} meant: Abc"])
        self.assertEqual(await self.replies(self.bot, "s/bc/BC/"), [f"{USER} meant: ABC"])

    async def test_the_bots_own_messages_are_ignored(self) -> None:
        await self.say(self.bot, "from the bot", sender=BOT)
        self.assertEqual(await self.replies(self.bot, "s/bot/me/", sender=BOT), [])
        self.assertEqual(self.bot.history, {})


# ------------------------------------------------------------------------------------------------
# karma: declarative ORM, stacked passives


class KarmaMixin:
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        cls, loader = self.load("karma")
        self.db = await self.database(DatabaseType.SQLALCHEMY, cls)
        self.bot = await self.start(cls, loader, database=self.db)

    async def test_plus_plus_and_minus_minus(self) -> None:
        self.assertEqual(await self.replies(self.bot, "alice++"), ["karma alice: 1"])
        self.assertEqual(await self.replies(self.bot, "thanks alice++ !"), ["karma alice: 2"])
        self.assertEqual(await self.replies(self.bot, "bob--"), ["karma bob: -1"])
        # Both passives match: each runs once.
        self.assertEqual(
            sorted(await self.replies(self.bot, "carol++ dave--")),
            ["karma carol: 1", "karma dave: -1"],
        )
        self.assertEqual(await self.replies(self.bot, "!karma alice"), ["alice has karma 2"])
        self.assertEqual(await self.replies(self.bot, "!karma bob"), ["bob has karma -1"])
        self.assertEqual(await self.replies(self.bot, "!karma nobody"), ["nobody has karma 0"])
        self.assertEqual(await self.replies(self.bot, "no change here"), [])

    async def test_stored_in_the_instance_database(self) -> None:
        await self.say(self.bot, "alice++")
        rows = self.db.value.execute("SELECT name, value FROM karma").fetchall()
        self.assertEqual([tuple(row) for row in rows], [("alice", 1)])


@unittest.skipUnless(has("sqlalchemy"), "SQLAlchemy is not installed")
class KarmaOnSQLiteTest(KarmaMixin, ZooTest):
    pass


@unittest.skipUnless(has("sqlalchemy", "pg8000"), "SQLAlchemy or pg8000 is not installed")
class KarmaOnPostgresTest(KarmaMixin, OnPostgres):
    pass


# ------------------------------------------------------------------------------------------------
# reminder: legacy database, config, background loop; version 2 adds a column


class ReminderMixin:
    async def wait_sent(self, bot: Any, count: int, timeout: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(bot.client.sent) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return bot.client.sent

    async def test_remind_and_count(self) -> None:
        cls, loader = self.load("reminder")
        db = await self.database(DatabaseType.SQLALCHEMY, cls)
        bot = await self.start(cls, loader, database=db)
        self.assertEqual(await self.replies(bot, "!remind 3600 later"), ["ok, reminding in 3600s"])
        self.assertEqual(await self.replies(bot, "!remind 0 now"), ["ok, reminding in 0s"])
        self.assertEqual(await self.wait_sent(bot, 1), [("text", ROOM, "reminder: now")])
        self.assertEqual(await self.replies(bot, "!reminders"), ["reminders: 1"])
        self.assertEqual(await self.replies(bot, "!remind -1 x"), ["that is in the past"])

    async def test_the_config_prefix(self) -> None:
        cls, loader = self.load("reminder")
        db = await self.database(DatabaseType.SQLALCHEMY, cls)
        bot = await self.start(cls, loader, database=db, config="prefix: note\n")
        await self.say(bot, "!remind 0 tea")
        self.assertEqual(await self.wait_sent(bot, 1), [("text", ROOM, "note: tea")])
        # load_and_update() kept the user's prefix and filled in the rest from the base.
        self.assertIn("poll_interval", self.config.text)

    async def test_survives_a_restart_and_the_upgrade_to_v2(self) -> None:
        cls, loader = self.load("reminder")
        db = await self.database(DatabaseType.SQLALCHEMY, cls)
        bot = await self.start(cls, loader, database=db)
        await self.say(bot, "!remind 3600 later")
        await self.stop(bot)
        self.assertIsNone(bot.poll_task)

        bot = await self.start(cls, loader, database=db)
        self.assertEqual(await self.replies(bot, "!reminders"), ["reminders: 1"])
        await self.stop(bot)
        loader.unload()

        cls2, loader2 = self.load("reminder-v2")
        self.assertIsNot(cls2, cls)
        bot = await self.start(cls2, loader2, database=db)
        self.assertEqual(await self.replies(bot, "!reminders"), ["reminders: 1 (v2, 0 yours)"])
        await self.say(bot, "!remind 3600 mine")
        await self.say(bot, "!remind 3600 bobs", sender=BOB)
        self.assertEqual(await self.replies(bot, "!reminders"), ["reminders: 3 (v2, 1 yours)"])
        rows = db.value.execute("SELECT text, sender FROM reminder ORDER BY id").fetchall()
        self.assertEqual(
            [tuple(row) for row in rows], [("later", None), ("mine", USER), ("bobs", BOB)]
        )
        # A second start of version 2 finds the column there.
        await self.stop(bot)
        bot = await self.start(cls2, loader2, database=db)
        self.assertEqual(await self.replies(bot, "!reminders"), ["reminders: 3 (v2, 1 yours)"])

    async def test_a_reminder_due_while_stopped_is_sent_at_start(self) -> None:
        cls, loader = self.load("reminder")
        db = await self.database(DatabaseType.SQLALCHEMY, cls)
        bot = await self.start(cls, loader, database=db)
        await self.say(bot, "!remind 1 meanwhile")
        await self.stop(bot)
        await asyncio.sleep(1.1)
        bot = await self.start(cls, loader, database=db)
        self.assertEqual(await self.wait_sent(bot, 1), [("text", ROOM, "reminder: meanwhile")])
        self.assertEqual(await self.replies(bot, "!reminders"), ["reminders: 0"])


@unittest.skipUnless(has("sqlalchemy"), "SQLAlchemy is not installed")
class ReminderOnSQLiteTest(ReminderMixin, ZooTest):
    pass


@unittest.skipUnless(has("sqlalchemy", "pg8000"), "SQLAlchemy or pg8000 is not installed")
class ReminderOnPostgresTest(ReminderMixin, OnPostgres):
    pass


# ------------------------------------------------------------------------------------------------
# hooks: asyncpg-type database on SQLite and PostgreSQL, web app; version 2 adds a column


class HooksMixin:
    """Both versions of `hooks`, on the database `database_params` gives."""

    async def web(self, bot: Any, method: str, path: str, data: Any = None) -> tuple[int, Any]:
        body = json.dumps(data).encode() if data is not None else b""
        params = {
            "method": method,
            "path": path,
            "query_string": "",
            "headers": [["Content-Type", "application/json"]],
            "body_base64": base64.b64encode(body).decode(),
        }
        result = await web.handle(bot.webapp, params, bot.log)
        return result["status"], json.loads(base64.b64decode(result["body_base64"]))

    async def start_hooks(self, name: str) -> Any:
        cls, loader = self.load(name)
        db = await self.database(DatabaseType.ASYNCPG, cls)
        self.dbs.append(db)
        return await self.start(cls, loader, database=db, webapp=PluginWebApp()), loader

    async def test_push_count_and_upgrade(self) -> None:
        self.dbs: list[PluginDatabase] = []
        bot, loader = await self.start_hooks("hooks")
        self.assertEqual(await self.replies(bot, "!hooks"), ["hooks: 0"])
        status, answer = await self.web(bot, "POST", "/push", {"room_id": ROOM, "text": "hi"})
        self.assertEqual((status, answer), (200, {"event_id": "$sent1", "count": 1}))
        self.assertEqual(bot.client.sent, [("notice", ROOM, "hi")])
        self.assertEqual(await self.web(bot, "GET", "/count"), (200, {"count": 1}))
        self.assertEqual(await self.replies(bot, "!hooks"), ["hooks: 1"])
        status, answer = await self.web(bot, "POST", "/push", {"text": "no room"})
        self.assertEqual(status, 400)

        await self.stop(bot)
        await self.stop_database(self.dbs[0])
        loader.unload()
        bot, _ = await self.start_hooks("hooks-v2")
        self.assertEqual(await self.replies(bot, "!hooks"), ["hooks: 1 (v2, 0 dated)"])
        status, answer = await self.web(bot, "POST", "/push", {"room_id": ROOM, "text": "v2"})
        self.assertEqual((status, answer["count"]), (200, 2))
        self.assertEqual(await self.web(bot, "GET", "/count"), (200, {"count": 2, "dated": 1}))
        self.assertEqual(await self.replies(bot, "!hooks"), ["hooks: 2 (v2, 1 dated)"])
        self.assertEqual(await self.dbs[1].value.fetchval("SELECT version FROM version"), 2)


class HooksOnSQLiteTest(HooksMixin, ZooTest):
    pass


class HooksOnPostgresTest(HooksMixin, OnPostgres):
    pass


# ------------------------------------------------------------------------------------------------
# templated and imagebot: packages imported without declaring them


@unittest.skipUnless(has("jinja2", "semver"), "jinja2 or semver is not installed")
class TemplatedTest(ZooTest):
    async def test_render_and_bump(self) -> None:
        cls, loader = self.load("templated")
        bot = await self.start(cls, loader)
        self.assertEqual(await self.replies(bot, "!render alice"), ["Hello, alice!"])
        self.assertEqual(await self.replies(bot, "!bump 1.2.3"), ["1.2.4"])
        self.assertEqual(await self.replies(bot, "!bump banana"), ["not a version: banana"])


@unittest.skipUnless(has("PIL"), "Pillow is not installed")
class ImageBotTest(ZooTest):
    async def test_image_is_uploaded_and_sent(self) -> None:
        from PIL import Image

        cls, loader = self.load("imagebot")
        bot = await self.start(cls, loader)
        evt = await self.say(bot, "!image")
        [(data, mime_type, filename)] = bot.client.uploads
        self.assertEqual((mime_type, filename), ("image/png", "square.png"))
        with Image.open(io.BytesIO(data)) as image:
            self.assertEqual((image.format, image.size), ("PNG", (64, 64)))
        [content] = evt.responses
        self.assertIsInstance(content, MediaMessageEventContent)
        self.assertEqual(content.msgtype, MessageType.IMAGE)
        self.assertEqual(content.body, "square.png")
        self.assertEqual(content.url, "mxc://example.org/upload1")
        self.assertEqual(
            (content.info.mimetype, content.info.size, content.info.width),
            ("image/png", len(data), 64),
        )


if __name__ == "__main__":
    unittest.main()
