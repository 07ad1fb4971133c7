"""HostedMatrixClient.dispatch_and_wait: every handler runs as mautrix would run it."""

from __future__ import annotations

import asyncio
import unittest
from typing import Any
from unittest import mock

from mautrix.client import SyncStream
from mautrix.client.state_store import MemoryStateStore
from mautrix.types import EventType, StateEvent

from maubot.handlers import command

from .test_matrix import FakeRPC, make_client, message

TIMELINE = SyncStream.JOINED_ROOM | SyncStream.TIMELINE


class Bot:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    @command.new("a")
    async def a(self, evt: Any) -> None:
        self.calls.append("a")

    @command.new("b", aliases=("bee",))
    async def b(self, evt: Any) -> None:
        self.calls.append("b")


class DispatchTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.client = make_client(FakeRPC())
        self.addAsyncCleanup(self.client.api.session.close)
        self.bot = Bot(self.client)

    def add(self, handler: Any, event_type: EventType = EventType.ROOM_MESSAGE) -> None:
        self.client.add_event_handler(event_type, handler)

    async def dispatch(self, body: str) -> Any:
        evt = message(self.client, {"body": body})
        await self.client.dispatch_and_wait(evt, TIMELINE)
        return evt

    async def test_commands_it_does_not_call_cost_no_task(self) -> None:
        self.add(self.bot.a)
        self.add(self.bot.b)
        with mock.patch("asyncio.create_task", wraps=asyncio.create_task) as create_task:
            await self.dispatch("!bee")
        self.assertEqual(self.bot.calls, ["b"])
        # Neither the client's state update (not a state event) nor `!a` needed a task.
        self.assertEqual(create_task.call_count, 1)
        await self.dispatch("!nothing")
        self.assertEqual(self.bot.calls, ["b"])

    async def test_handlers_see_what_earlier_handlers_did_to_the_event(self) -> None:
        async def rewrite(evt: Any) -> None:
            evt.content.body = "!b"

        self.add(rewrite)
        self.add(self.bot.a)
        self.add(self.bot.b)
        await self.dispatch("!a")
        self.assertEqual(self.bot.calls, ["b"])

    async def test_state_events_still_update_the_state_store(self) -> None:
        self.client.state_store = MemoryStateStore()
        evt = StateEvent.deserialize(
            {
                "type": "m.room.power_levels",
                "room_id": "!room:example.org",
                "event_id": "$p",
                "sender": "@alice:example.org",
                "origin_server_ts": 1,
                "state_key": "",
                "content": {"users": {"@alice:example.org": 100}},
            }
        )
        seen: list[Any] = []

        async def power_levels(e: Any) -> None:
            seen.append(e.content.users)

        self.add(power_levels, EventType.ROOM_POWER_LEVELS)
        await self.client.dispatch_and_wait(evt, TIMELINE)
        self.assertEqual(seen, [{"@alice:example.org": 100}])
        # mautrix's own handler of every event, `Client._update_state`, ran for this one.
        levels = await self.client.state_store.get_power_levels(evt.room_id)
        self.assertEqual(levels.users, {"@alice:example.org": 100})

    async def test_waits_for_everything_and_survives_failing_handlers(self) -> None:
        done: list[str] = []

        nested_type = EventType.find("org.example.nested", EventType.Class.MESSAGE)

        async def nested(data: Any) -> None:
            await asyncio.sleep(0.01)
            done.append(data)

        async def slow(evt: Any) -> None:
            await asyncio.sleep(0.01)
            self.client.dispatch_manual_event(nested_type, "nested")
            done.append("slow")

        async def failing(evt: Any) -> None:
            raise ValueError("boom")

        async def cancelled(evt: Any) -> None:
            raise asyncio.CancelledError

        self.add(nested, nested_type)
        self.add(slow)
        self.add(failing)
        self.add(cancelled)
        with self.assertLogs(self.client.log, "ERROR"):
            await self.dispatch("hello")
        self.assertEqual(done, ["slow", "nested"])

    async def test_cancelling_the_dispatch_cancels_the_handlers(self) -> None:
        started = asyncio.Event()
        cancelled: list[str] = []

        async def forever(name: str, evt: Any) -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        self.add(lambda evt: forever("one", evt))
        self.add(lambda evt: forever("two", evt))
        dispatch = asyncio.create_task(self.dispatch("hello"))
        await started.wait()
        dispatch.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await dispatch
        await asyncio.sleep(0)
        self.assertEqual(sorted(cancelled), ["one", "two"])


if __name__ == "__main__":
    unittest.main()
