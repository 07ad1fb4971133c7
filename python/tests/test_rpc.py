"""maubot_host.rpc: lines cut from what the socket delivers, and what goes out in one write."""

from __future__ import annotations

import asyncio
import json
import socket
import unittest
from typing import Any
from unittest import mock

from maubot_host import rpc


class FakeConnection:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def _line(self, line: bytearray) -> None:
        self.lines.append(bytes(line))

    def _acknowledge_events(self) -> None:
        pass


def feed(protocol: rpc._LineProtocol, data: bytes) -> None:
    """What the transport does with `data`, in as many reads as the buffers take."""
    while data:
        buf = protocol.get_buffer(-1)
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        del buf
        protocol.buffer_updated(n)
        data = data[n:]


class LineProtocolTest(unittest.TestCase):
    def setUp(self) -> None:
        self.conn = FakeConnection()
        self.protocol = rpc._LineProtocol(self.conn)  # type: ignore[arg-type]

    def test_lines_across_and_within_reads(self) -> None:
        for chunk in (b'{"a":', b'1}\n{"b":2}\n{"c"', b":3}\n", b"\n"):
            feed(self.protocol, chunk)
        self.assertEqual(self.conn.lines, [b'{"a":1}', b'{"b":2}', b'{"c":3}', b""])

    def test_long_lines_grow_the_buffer_and_it_shrinks_again(self) -> None:
        big = b"x" * (5 * rpc._BUFFER_SIZE)
        feed(self.protocol, b"{}\n" + big[:1000])
        feed(self.protocol, big[1000:] + b"\nnext")
        self.assertEqual(self.conn.lines, [b"{}", big])
        feed(self.protocol, b"\n")
        self.assertEqual(self.conn.lines[-1], b"next")
        self.protocol.get_buffer(-1)
        self.assertEqual(len(self.protocol._buf), rpc._BUFFER_SIZE)

    def test_lines_over_the_limit_are_dropped_whole(self) -> None:
        with mock.patch.object(rpc, "MAX_LINE", 100), self.assertLogs(rpc.log, "ERROR") as logs:
            feed(self.protocol, b"a\n" + b"y" * 150)  # too long before its end arrives
            feed(self.protocol, b"y" * 150)
            feed(self.protocol, b"y\nb\n" + b"z" * 101 + b"\nc\n")  # too long, whole in one read
        self.assertEqual(self.conn.lines, [b"a", b"b", b"c"])
        self.assertEqual(len(logs.output), 2)


class ConnectionTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server = theirs
        self.server.setblocking(False)
        self.conn = rpc.Connection(ours)
        await self.conn.open()
        self.addAsyncCleanup(self.conn.finish, 0)
        self.addCleanup(self.server.close)

    async def read(self) -> list[Any]:
        data = await asyncio.get_running_loop().sock_recv(self.server, 65536)
        return [json.loads(line) for line in data.splitlines()]

    async def read_messages(self, count: int) -> list[Any]:
        messages: list[Any] = []
        while len(messages) < count:
            messages += await self.read()
        return messages

    async def test_notifications_go_out_with_the_next_request(self) -> None:
        async def handler(params: dict[str, Any]) -> dict[str, Any]:
            self.conn.notify("log", {"message": "first"})
            return {"answer": await self.conn.request("matrix", {"n": 1})}

        self.conn.on("event", handler)
        serving = asyncio.create_task(self.conn.serve())
        self.server.send(b'{"id":7,"method":"event","params":{}}\n')
        # The event's acknowledgement first (written before its handler ran), then the log
        # record with the request it preceded.
        self.assertEqual(
            await self.read_messages(3),
            [
                {"method": "events_read", "params": {"up_to": 7}},
                {"method": "log", "params": {"message": "first"}},
                {"id": 1, "method": "matrix", "params": {"n": 1}},
            ],
        )
        self.server.send(b'{"id":1,"result":{"ok":true}}\n')
        self.assertEqual(await self.read(), [{"id": 7, "result": {"answer": {"ok": True}}}])
        self.assertEqual(self.conn._tasks, set())
        self.server.shutdown(socket.SHUT_WR)
        await serving

    async def test_events_read_are_acknowledged_before_a_handler_runs(self) -> None:
        handled: list[int] = []

        async def handler(params: dict[str, Any]) -> dict[str, Any]:
            # What a handler that blocks the loop would keep from going out, had it been queued.
            self.assertEqual(self.conn._queued, [])
            handled.append(params["n"])
            return {}

        self.conn.on("event", handler)
        self.conn.on("ping", handler)
        serving = asyncio.create_task(self.conn.serve())
        # Two events and a ping in one read: one acknowledgement, for the last event.
        self.server.send(
            b'{"id":3,"method":"event","params":{"n":3}}\n'
            b'{"id":4,"method":"event","params":{"n":4}}\n'
            b'{"id":5,"method":"ping","params":{"n":5}}\n'
        )
        messages = await self.read_messages(4)
        self.assertEqual(messages[0], {"method": "events_read", "params": {"up_to": 4}})
        self.assertEqual(sorted(m["id"] for m in messages[1:]), [3, 4, 5])
        self.assertEqual(handled, [3, 4, 5])
        self.server.shutdown(socket.SHUT_WR)
        await serving

    async def test_a_lone_notification_is_not_held_back(self) -> None:
        self.conn.notify("log", {"message": "alone"})
        self.assertEqual(await self.read(), [{"method": "log", "params": {"message": "alone"}}])


if __name__ == "__main__":
    unittest.main()
