"""`MaubotMessageEvent` helpers and `MaubotMatrixClient`; Matrix requests captured at the RPC."""

from __future__ import annotations

import asyncio
import base64
import unittest
from typing import Any

from mautrix.errors import MNotFound
from mautrix.types import MessageEvent, MessageType, StateEvent, TextMessageEventContent

from maubot.matrix import MaubotMessageEvent, parse_formatted
from maubot_host.client import HostedMatrixClient
from maubot_host.matrix_api import RPCHTTPAPI

ROOM = "!room:example.org"
ROOM_PATH = "%21room%3Aexample.org"


class FakeRPC:
    """Answers every `matrix` request with the next queued result (default: an event ID)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        assert method == "matrix"
        self.requests.append(params)
        if self.results:
            return self.results.pop(0)
        return {"status": 200, "body": {"event_id": "$sent"}}


def make_client(rpc: FakeRPC) -> HostedMatrixClient:
    api = RPCHTTPAPI("https://hs.example.org", rpc=rpc, instance_id="i1", client_session=None)
    return HostedMatrixClient(mxid="@bot:example.org", api=api)


def message(client: HostedMatrixClient, content: dict[str, Any]) -> MaubotMessageEvent:
    raw = {
        "type": "m.room.message",
        "room_id": ROOM,
        "event_id": "$ev",
        "sender": "@alice:example.org",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "hi", **content},
    }
    return MaubotMessageEvent(MessageEvent.deserialize(raw), client)


class MessageEventTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.rpc = FakeRPC()
        self.client = make_client(self.rpc)
        self.addAsyncCleanup(self.client.api.session.close)
        self.evt = message(self.client, {})
        self.thread_evt = message(
            self.client, {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
        )

    def sent(self) -> dict[str, Any]:
        request = self.rpc.requests[-1]
        self.assertEqual(request["method"], "PUT")
        self.assertTrue(
            request["path"].startswith(
                f"/_matrix/client/v3/rooms/{ROOM_PATH}/send/m.room.message/"
            ),
            request["path"],
        )
        return request["body"]

    async def test_respond_renders_markdown_as_a_notice(self) -> None:
        self.assertEqual(await self.evt.respond("**hi** <b>x</b>"), "$sent")
        self.assertEqual(
            self.sent(),
            {
                "msgtype": "m.notice",
                "body": "**hi** <b>x</b>",
                "format": "org.matrix.custom.html",
                "formatted_body": "<p><strong>hi</strong> &lt;b&gt;x&lt;/b&gt;</p>\n",
            },
        )

    async def test_respond_allow_html_keeps_raw_html(self) -> None:
        await self.evt.respond("<b>x</b>", allow_html=True)
        self.assertEqual(self.sent()["formatted_body"], "<p><b>x</b></p>\n")

    async def test_respond_html_without_markdown_is_used_as_is(self) -> None:
        await self.evt.respond(
            '<b>x</b> <a href="https://e.org">e</a>', markdown=False, allow_html=True
        )
        body = self.sent()
        self.assertEqual(body["formatted_body"], '<b>x</b> <a href="https://e.org">e</a>')
        self.assertEqual(body["body"], "**x** e (https://e.org)")

    async def test_respond_plain(self) -> None:
        await self.evt.respond("*x*", markdown=False)
        self.assertEqual(self.sent(), {"msgtype": "m.notice", "body": "*x*"})

    async def test_reply_is_a_rich_reply(self) -> None:
        await self.evt.reply("pong", markdown=False)
        self.assertEqual(self.sent()["m.relates_to"], {"m.in_reply_to": {"event_id": "$ev"}})

    async def test_respond_in_a_thread_stays_in_it(self) -> None:
        await self.thread_evt.respond("x", markdown=False)
        self.assertEqual(
            self.sent()["m.relates_to"],
            {
                "rel_type": "m.thread",
                "event_id": "$root",
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": "$ev"},
            },
        )

    async def test_reply_in_a_thread_is_a_real_reply(self) -> None:
        await self.thread_evt.reply("x", markdown=False)
        relates_to = self.sent()["m.relates_to"]
        self.assertEqual(relates_to["rel_type"], "m.thread")
        self.assertEqual(relates_to["event_id"], "$root")
        self.assertFalse(relates_to["is_falling_back"])
        self.assertEqual(relates_to["m.in_reply_to"], {"event_id": "$ev"})

    async def test_in_thread_false_leaves_the_thread(self) -> None:
        await self.thread_evt.respond("x", markdown=False, in_thread=False)
        self.assertNotIn("m.relates_to", self.sent())

    async def test_in_thread_true_starts_a_thread(self) -> None:
        await self.evt.respond("x", markdown=False, in_thread=True)
        relates_to = self.sent()["m.relates_to"]
        self.assertEqual((relates_to["rel_type"], relates_to["event_id"]), ("m.thread", "$ev"))

    async def test_disabled_replies_prefix_the_sender(self) -> None:
        self.client.disable_replies = True
        evt = message(self.client, {})
        await evt.reply("pong", markdown=False)
        body = self.sent()
        self.assertNotIn("m.relates_to", body)
        self.assertEqual(body["body"], "@alice:example.org: pong")
        self.assertEqual(
            body["formatted_body"],
            '<a href="https://matrix.to/#/@alice:example.org">@alice:example.org</a>: pong',
        )
        await evt.respond("pong", reply="force")
        self.assertEqual(self.sent()["m.relates_to"], {"m.in_reply_to": {"event_id": "$ev"}})

    async def test_edit_replaces_the_event(self) -> None:
        await self.thread_evt.edit("new", markdown=False)
        body = self.sent()
        self.assertEqual(body["m.relates_to"], {"rel_type": "m.replace", "event_id": "$ev"})
        self.assertEqual(body["body"], "* new")
        self.assertEqual(body["m.new_content"], {"msgtype": "m.notice", "body": "new"})

    async def test_extra_content(self) -> None:
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body="x")
        await self.evt.respond(content, extra_content={"pong": {"ms": 5}})
        self.assertEqual(self.sent(), {"msgtype": "m.text", "body": "x", "pong": {"ms": 5}})

    async def test_react_redact_mark_read(self) -> None:
        await self.evt.react("👍")
        request = self.rpc.requests[-1]
        self.assertIn("/send/m.reaction/", request["path"])
        self.assertEqual(
            request["body"],
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$ev", "key": "👍"}},
        )
        await self.evt.redact(reason="spam")
        request = self.rpc.requests[-1]
        self.assertTrue(
            request["path"].startswith(f"/_matrix/client/v3/rooms/{ROOM_PATH}/redact/%24ev/")
        )
        self.assertEqual(request["body"], {"reason": "spam"})
        self.rpc.results.append({"status": 200, "body": {}})
        await self.evt.mark_read()
        request = self.rpc.requests[-1]
        self.assertEqual(
            (request["method"], request["path"]),
            ("POST", f"/_matrix/client/v3/rooms/{ROOM_PATH}/receipt/m.read/%24ev"),
        )


class ClientTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.rpc = FakeRPC()
        self.client = make_client(self.rpc)
        self.addAsyncCleanup(self.client.api.session.close)

    async def test_send_markdown(self) -> None:
        await self.client.send_markdown(ROOM, "**a**", msgtype=MessageType.NOTICE)
        body = self.rpc.requests[-1]["body"]
        self.assertEqual(body["msgtype"], "m.notice")
        self.assertEqual(body["formatted_body"], "<p><strong>a</strong></p>\n")
        await self.client.send_markdown(ROOM, "<b>a</b>", render_markdown=False)
        body = self.rpc.requests[-1]["body"]
        self.assertEqual(
            (body["body"], body["formatted_body"]), ("<b>a</b>", "&lt;b&gt;a&lt;/b&gt;")
        )

    async def test_get_event_wraps_messages(self) -> None:
        self.rpc.results.append(
            {
                "status": 200,
                "body": {
                    "type": "m.room.message",
                    "room_id": ROOM,
                    "event_id": "$m",
                    "sender": "@a:example.org",
                    "origin_server_ts": 1,
                    "content": {"msgtype": "m.text", "body": "x"},
                },
            }
        )
        evt = await self.client.get_event(ROOM, "$m")
        self.assertIsInstance(evt, MaubotMessageEvent)
        self.assertIs(evt.client, self.client)
        self.assertEqual(
            self.rpc.requests[-1]["path"], f"/_matrix/client/v3/rooms/{ROOM_PATH}/event/%24m"
        )
        self.rpc.results.append(
            {
                "status": 200,
                "body": {
                    "type": "m.room.topic",
                    "room_id": ROOM,
                    "event_id": "$t",
                    "sender": "@a:example.org",
                    "origin_server_ts": 1,
                    "state_key": "",
                    "content": {"topic": "t"},
                },
            }
        )
        self.assertIsInstance(await self.client.get_event(ROOM, "$t"), StateEvent)

    async def test_errors_are_mautrix_errors(self) -> None:
        self.rpc.results.append(
            {"status": 404, "body": {"errcode": "M_NOT_FOUND", "error": "nope"}}
        )
        with self.assertRaises(MNotFound):
            await self.client.get_event(ROOM, "$gone")

    async def test_media_upload_and_download_go_through_the_server(self) -> None:
        self.rpc.results.append({"status": 200, "body": {"content_uri": "mxc://hs/abc"}})
        uri = await self.client.upload_media(b"\x89PNG", mime_type="image/png", filename="a.png")
        self.assertEqual(uri, "mxc://hs/abc")
        upload = self.rpc.requests[-1]
        self.assertEqual(
            (upload["method"], upload["path"], upload["query"]),
            ("POST", "/_matrix/media/v3/upload", {"filename": "a.png"}),
        )
        self.assertEqual((upload["body_base64"], upload["content_type"]), ("iVBORw==", "image/png"))
        self.assertIsNone(upload["body"])

        self.rpc.results.append({"status": 200, "body": {"versions": ["v1.11"]}})
        self.rpc.results.append(
            {"status": 200, "body": None, "body_base64": base64.b64encode(b"data").decode()}
        )
        self.assertEqual(await self.client.download_media("mxc://hs/abc"), b"data")
        download = self.rpc.requests[-1]
        self.assertEqual(download["path"], "/_matrix/client/v1/media/download/hs/abc")
        self.assertEqual(download["query"], {"allow_redirect": "true"})


class ParseFormattedTest(unittest.TestCase):
    def test_long_messages_have_a_short_plaintext(self) -> None:
        text, html = asyncio.run(parse_formatted("word " * 5000))
        self.assertEqual(text, ("word " * 20)[:100] + "[long message cut off]")
        self.assertGreater(len(html), 20000)

    def test_short_messages_keep_the_plaintext(self) -> None:
        text, _ = asyncio.run(parse_formatted("word " * 30))
        self.assertEqual(text, ("word " * 30).strip())


if __name__ == "__main__":
    unittest.main()
