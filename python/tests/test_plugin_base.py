"""`Plugin` handler registration, `BasicScheduler` and the archive loader's file access."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import unittest
import zipfile
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from mautrix.types import EventType

from maubot import Plugin, PluginWebApp
from maubot.handlers import event
from maubot.loader import PluginMeta, ZippedPluginLoader
from maubot.plugin_base import BasicScheduler


class FakeClient:
    def __init__(self) -> None:
        self.handlers: list[tuple[Any, Any]] = []

    def add_event_handler(self, event_type: Any, handler: Any) -> None:
        self.handlers.append((event_type, handler))

    def remove_event_handler(self, event_type: Any, handler: Any) -> None:
        self.handlers.remove((event_type, handler))


def web_handler(method: str, path: str):
    def decorator(func):
        func.__mb_web_handler__ = [*getattr(func, "__mb_web_handler__", []), (method, path, {})]
        return func

    return decorator


class Bot(Plugin):
    @event.on(EventType.ROOM_MESSAGE)
    @event.on(EventType.REACTION)
    async def on_message(self, evt: Any) -> None:
        pass

    @event.off
    @event.on(EventType.ROOM_MEMBER)
    async def disabled(self, evt: Any) -> None:
        pass

    @web_handler("GET", "/hello/{name}")
    async def hello(self, request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.match_info['name']}")

    @web_handler("POST", "/hook")
    async def hook(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    @property
    def broken(self) -> Any:
        raise RuntimeError("properties may fail before start")


def make_bot(webapp: PluginWebApp | None) -> Bot:
    return Bot(
        client=FakeClient(),
        loop=asyncio.get_running_loop(),
        http=None,
        instance_id="bot1",
        log=logging.getLogger("maubot.instance.bot1"),
        config=None,
        database=None,
        webapp=webapp,
        webapp_url=(
            "https://maubot.example.org/_matrix/maubot/plugin/bot1/" if webapp is not None else None
        ),
        loader=None,
    )


class PluginTest(unittest.IsolatedAsyncioTestCase):
    async def test_handlers_are_registered_at_start_and_removed_at_stop(self) -> None:
        bot = make_bot(None)
        with self.assertLogs("maubot.instance.bot1", logging.WARNING) as logs:
            await bot.internal_start()
        # Two web handlers, one warning.
        self.assertEqual(len(logs.records), 1)
        self.assertIn("webapp", logs.records[0].getMessage())
        self.assertEqual(
            sorted(str(t) for t, _ in bot.client.handlers), ["m.reaction", "m.room.message"]
        )
        self.assertTrue(all(h == bot.on_message for _, h in bot.client.handlers))
        await bot.internal_stop()
        self.assertEqual(bot.client.handlers, [])

    async def test_web_handlers_become_routes(self) -> None:
        webapp = PluginWebApp()
        bot = make_bot(webapp)
        self.assertEqual(
            str(bot.webapp_url), "https://maubot.example.org/_matrix/maubot/plugin/bot1/"
        )
        await bot.internal_start()
        response = await webapp.handle(make_mocked_request("GET", "/hello/world"))
        self.assertEqual(response.text, "hello world")
        await bot.internal_stop()
        with self.assertRaises(web.HTTPNotFound):
            await webapp.handle(make_mocked_request("GET", "/hello/world"))


class SchedulerTest(unittest.IsolatedAsyncioTestCase):
    async def test_run_later_and_periodically_until_stopped(self) -> None:
        sched = BasicScheduler(logging.getLogger("test.sched"))
        calls: list[str] = []

        async def tick() -> None:
            calls.append("tick")

        async def later() -> None:
            calls.append("later")

        sched.run_periodically(0.01, tick)
        sched.run_later(0.03, later())
        await asyncio.sleep(0.1)
        self.assertIn("later", calls)
        self.assertGreaterEqual(calls.count("tick"), 3)
        sched.stop()
        await asyncio.sleep(0)
        count = len(calls)
        await asyncio.sleep(0.05)
        self.assertEqual(len(calls), count)

    async def test_errors_are_logged_and_the_period_goes_on(self) -> None:
        sched = BasicScheduler(logging.getLogger("test.sched"))
        calls = 0

        async def fail() -> None:
            nonlocal calls
            calls += 1
            raise ValueError("boom")

        with self.assertLogs("test.sched", logging.ERROR):
            sched.run_periodically(0.01, fail)
            await asyncio.sleep(0.06)
        sched.stop()
        self.assertGreaterEqual(calls, 2)

    async def test_a_cancelled_run_later_never_starts_its_coroutine(self) -> None:
        sched = BasicScheduler(logging.getLogger("test.sched"))
        ran = False

        async def later() -> None:
            nonlocal ran
            ran = True

        task = sched.run_later(10, later())
        await asyncio.sleep(0)
        sched.stop()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertFalse(ran)


class LoaderFilesTest(unittest.IsolatedAsyncioTestCase):
    async def test_read_and_list_files(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "p.mbp")
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("maubot.yaml", "id: p")
                archive.writestr("templates/a.html", "A")
                archive.writestr("templates/b.html", "B")
                archive.writestr("templates/sub/c.html", "C")
            meta = PluginMeta(
                {"id": "p", "version": "1.0", "modules": ["p"], "main_class": "P", "unknown": 1}
            )
            loader = ZippedPluginLoader(path, meta)
            self.assertEqual(loader.source, path)
            self.assertEqual(
                sorted(await loader.list_files("templates")),
                ["templates/a.html", "templates/b.html"],
            )
            self.assertEqual(
                loader.sync_list_files("templates/"), loader.sync_list_files("templates")
            )
            self.assertEqual(await loader.read_file("templates/sub/c.html"), b"C")
            with self.assertRaises(KeyError):
                loader.sync_read_file("missing.txt")

    def test_meta_defaults(self) -> None:
        meta = PluginMeta(
            {
                "id": "p",
                "version": "1.0",
                "modules": ["p"],
                "main_class": "P",
                "license": None,
                "x": 1,
            }
        )
        self.assertEqual(str(meta.version), "1.0")
        self.assertEqual(meta.database_type.value, "sqlalchemy")
        self.assertEqual(meta.license, "")
        self.assertFalse(meta.database)
        self.assertEqual(meta.unrecognized_, {"x": 1})
        self.assertEqual(meta.serialize()["x"], 1)


if __name__ == "__main__":
    unittest.main()
