"""Black-box tests of the worker: this test plays the server on the other end of the socket.

Run from the repository root:
    PYTHONPATH=python <venv>/bin/python -m unittest discover -s python/tests -t python
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

PYTHON_DIR = Path(__file__).resolve().parents[1]
TIMEOUT = 15.0
ROOM = "!room:example.org"
ROOM_PATH = "%21room%3Aexample.org"
BOT = "@bot:example.org"
CLIENT = {"user_id": BOT, "device_id": "DEVICE", "homeserver": "https://hs.example.org"}

PING_PLUGIN = {
    "mbhost_test_ping.py": """
        from mautrix.client import InternalEventType
        from mautrix.errors import MatrixRequestError
        from mautrix.types import EventType
        from mautrix.util.config import BaseProxyConfig, ConfigUpdateHelper

        from maubot import MessageEvent, Plugin
        from maubot.handlers import command, event


        class Config(BaseProxyConfig):
            def do_update(self, helper: ConfigUpdateHelper) -> None:
                helper.copy("greeting")


        class PingBot(Plugin):
            @classmethod
            def get_config_class(cls):
                return Config

            async def start(self) -> None:
                self.config.load_and_update()
                self.log.info(f"Started with greeting {self.config['greeting']}")

            @command.new("ping")
            async def ping(self, evt: MessageEvent) -> None:
                await evt.reply(f"**{self.config['greeting']}** [docs](https://example.org/docs)")

            @event.on(EventType.ROOM_MESSAGE)
            async def power(self, evt: MessageEvent) -> None:
                if evt.content.body != "!power":
                    return
                try:
                    await self.client.get_state_event(evt.room_id, EventType.ROOM_POWER_LEVELS)
                except MatrixRequestError as e:
                    await evt.respond(f"{type(e).__name__} {e.errcode}", markdown=False)

            @event.on(InternalEventType.JOIN)
            async def joined(self, evt) -> None:
                await self.client.send_notice(evt.room_id, f"Welcome {evt.state_key}")
        """,
    "base-config.yaml": """
        # What !ping answers
        greeting: pong
        """,
}
PING_META = {
    "id": "xyz.maubot-rs.test.hostping",
    "version": "1.0.0",
    "modules": ["mbhost_test_ping"],
    "main_class": "PingBot",
}


WEB_PLUGIN = {
    "mbhost_test_webapp.py": """
        from aiohttp import web as aioweb

        from maubot import Plugin
        from maubot.handlers import web


        @aioweb.middleware
        async def tag(request, handler):
            response = await handler(request)
            if isinstance(response, aioweb.StreamResponse) and not response.prepared:
                response.headers["X-Middleware"] = "yes"
            return response


        class WebBot(Plugin):
            async def start(self) -> None:
                self.webapp.add_middleware(tag)
                self.log.info(f"web app at {self.webapp_url}")

            @web.get("/hello")
            async def hello(self, request):
                return aioweb.Response(text=f"hello {request.query.get('name', 'world')}")

            @web.post("/hook")
            async def hook(self, request):
                data = await request.json()
                return aioweb.json_response({"got": data})

            @web.get("/items/{item}")
            async def item(self, request):
                return aioweb.json_response(
                    {
                        "item": request.match_info["item"],
                        "path": request.path,
                        "raw_path": request.raw_path,
                        "query": dict(request.query),
                        "header": request.headers.get("X-Test"),
                        "remote": request.remote,
                        "has_app": request.app is not None,
                    }
                )

            @web.put("/echo")
            async def echo(self, request):
                data = await request.read()
                response = aioweb.Response(
                    body=data[::-1], content_type="application/octet-stream", status=201
                )
                response.set_cookie("a", "1")
                response.set_cookie("b", "2")
                return response

            @web.post("/form")
            async def form(self, request):
                form = await request.post()
                return aioweb.Response(text=f"{form['x']}+{form['y']} ({await request.text()})")

            @web.get("/stream")
            async def stream(self, request):
                response = aioweb.StreamResponse(headers={"Content-Type": "text/plain"})
                await response.prepare(request)
                await response.write(b"one ")
                await response.write(b"two")
                return response

            @web.get("/file")
            async def file(self, request):
                return aioweb.FileResponse(request.query["path"])

            @web.get("/gzip")
            async def gzip(self, request):
                response = aioweb.StreamResponse(headers={"Content-Type": "text/plain"})
                response.enable_compression()
                await response.prepare(request)
                await response.write(b"squeeze " * 100)
                return response

            @web.get("/half")
            async def half(self, request):
                response = aioweb.StreamResponse()
                await response.prepare(request)
                await response.write(b"partial")
                raise RuntimeError("gave up halfway")

            @web.get("/moved")
            async def moved(self, request):
                raise aioweb.HTTPFound("/hello")

            @web.get("/fail")
            async def fail(self, request):
                raise RuntimeError("handler exploded")

            @web.get("/nothing")
            async def nothing(self, request):
                return None
        """,
}
WEB_META = {
    "id": "xyz.maubot-rs.test.hostweb",
    "version": "1.0.0",
    "modules": ["mbhost_test_webapp"],
    "main_class": "WebBot",
    "webapp": True,
}


def build_plugin(directory: str, name: str, files: dict[str, str], meta: dict[str, Any]) -> str:
    """Zip a throwaway plugin; returns the archive's path."""
    path = os.path.join(directory, f"{name}.mbp")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("maubot.yaml", json.dumps(meta))
        for file_name, text in files.items():
            archive.writestr(file_name, textwrap.dedent(text).lstrip("\n"))
    return path


class FakeServer:
    """The server's end of the socket, with the worker process behind it."""

    def __init__(self) -> None:
        self.sock, worker_end = socket.socketpair()
        self.stderr = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "MAUBOT_HOST_PROTOCOL": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "maubot_host"],
            stdin=worker_end,
            stdout=self.stderr,
            stderr=self.stderr,
            env=env,
        )
        worker_end.close()
        self.buffer = b""
        self.next_id = 0
        self.backlog: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []

    def output(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def request(self, method: str, params: dict[str, Any]) -> int:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def _read(self, deadline: float) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the worker closed the socket")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message = json.loads(line)
        if message.get("method") == "log":
            self.logs.append(message["params"])
        return message

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        for i, message in enumerate(self.backlog):
            if predicate(message):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline)
            if message is None:
                raise AssertionError(
                    f"nothing matching arrived in {timeout} s; unclaimed: {self.backlog}\n"
                    f"worker output:\n{self.output()}"
                )
            if predicate(message):
                return message
            if message.get("method") != "log":
                self.backlog.append(message)

    def log_record(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """A `log` notification's params, whether it was read already or is still to come."""
        found = [record for record in self.logs if predicate(record)]
        if found:
            return found[0]
        return self.wait_for(lambda m: m.get("method") == "log" and predicate(m["params"]))[
            "params"
        ]

    def response(self, request_id: int, timeout: float = TIMEOUT) -> dict[str, Any]:
        return self.wait_for(
            lambda m: m.get("id") == request_id and "method" not in m, timeout=timeout
        )

    def call(self, method: str, params: dict[str, Any]) -> Any:
        response = self.response(self.request(method, params))
        if "error" in response:
            raise AssertionError(f"{method} failed: {response['error']}")
        return response["result"]

    def error(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self.response(self.request(method, params))
        if "error" not in response:
            raise AssertionError(f"{method} did not fail: {response}")
        return response["error"]

    def matrix_request(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return self.wait_for(lambda m: m.get("method") == "matrix" and "id" in m, timeout=timeout)

    def answer(self, request: dict[str, Any], status: int, body: Any) -> None:
        self.send({"id": request["id"], "result": {"status": status, "body": body}})

    def notification(self, method: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return self.wait_for(lambda m: m.get("method") == method and "id" not in m, timeout)

    def nothing_arrives(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            message = self._read(deadline)
            if message is None:
                return
            if message.get("method") != "log":
                raise AssertionError(f"unexpected message {message}")


def message_event(body: str, event_id: str = "$ev1", sender: str = "@alice:example.org") -> dict:
    return {
        "type": "m.room.message",
        "room_id": ROOM,
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": 1700000000000,
        "content": {"msgtype": "m.text", "body": body},
    }


class WorkerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.server = FakeServer()
        self.addCleanup(self.server.close)
        self.hello = self.server.notification("hello")

    def load(self, name: str, files: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
        path = build_plugin(self.tmp.name, name, files, meta)
        return self.server.response(self.server.request("load", {"path": path, "meta": meta}))

    def start(self, instance_id: str, config: str = "", database: Any = None) -> dict[str, Any]:
        return self.server.response(
            self.server.request(
                "start",
                {
                    "instance_id": instance_id,
                    "client": CLIENT,
                    "config": config,
                    "database": database,
                    "webapp_url": None,
                },
            )
        )

    def start_ping(self, config: str = "greeting: hi\nunknown: dropped\n") -> dict[str, Any]:
        self.assertEqual(self.load("ping", PING_PLUGIN, PING_META), {"id": 1, "result": {}})
        response = self.start("ping1", config)
        self.assertIn("result", response, response)
        return response["result"]


class ProtocolTest(WorkerTest):
    def test_hello_first_then_ping(self) -> None:
        params = self.hello["params"]
        self.assertEqual(params["protocol"], 1)
        self.assertEqual(params["maubot"], "0.6.0")
        self.assertTrue(params["mautrix"].startswith("0.21."))
        self.assertEqual(params["python"].split(".")[0], "3")
        self.assertEqual(self.server.call("ping", {}), {})

    def test_unknown_method_is_an_error(self) -> None:
        self.assertEqual(
            self.server.error("frobnicate", {})["message"], "Unknown method frobnicate"
        )

    def test_exits_on_eof(self) -> None:
        self.start_ping()
        self.server.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(self.server.proc.wait(timeout=TIMEOUT), 0, self.server.output())


class LoadTest(WorkerTest):
    def load_error(self, name: str, files: dict[str, str], meta: dict[str, Any]) -> str:
        response = self.load(name, files, meta)
        self.assertIn("error", response, response)
        return response["error"]["message"]

    def test_missing_dependency(self) -> None:
        meta = {
            "id": "t.dep",
            "version": "1.0",
            "modules": ["mbhost_test_dep"],
            "main_class": "Bot",
        }
        files = {"mbhost_test_dep.py": "import mbhost_no_such_dependency\n"}
        self.assertEqual(
            self.load_error("dep", files, meta),
            "Failed to load module mbhost_test_dep: ModuleNotFoundError: "
            "No module named 'mbhost_no_such_dependency'",
        )

    def test_module_not_in_file(self) -> None:
        meta = {
            "id": "t.mod",
            "version": "1.0",
            "modules": ["mbhost_test_absent"],
            "main_class": "Bot",
        }
        self.assertEqual(
            self.load_error("mod", {"other.py": ""}, meta),
            "Module mbhost_test_absent not found in file",
        )

    def test_main_class_not_found(self) -> None:
        meta = {
            "id": "t.cls",
            "version": "1.0",
            "modules": ["mbhost_test_cls"],
            "main_class": "Bot",
        }
        files = {"mbhost_test_cls.py": "class Other:\n    pass\n"}
        self.assertEqual(self.load_error("cls", files, meta), "Main class Bot of plugin not found")

    def test_main_class_not_a_plugin(self) -> None:
        meta = {
            "id": "t.sub",
            "version": "1.0",
            "modules": ["mbhost_test_sub"],
            "main_class": "Bot",
        }
        files = {"mbhost_test_sub.py": "class Bot:\n    pass\n"}
        self.assertEqual(
            self.load_error("sub", files, meta),
            "Main class of plugin does not extend maubot.Plugin",
        )

    def test_main_class_in_named_module_of_a_package(self) -> None:
        meta = {
            "id": "t.pkg",
            "version": "1.0",
            "modules": ["mbhost_test_pkg", "mbhost_test_helper"],
            "main_class": "mbhost_test_pkg/Bot",
        }
        files = {
            "mbhost_test_pkg/__init__.py": "from .bot import Bot\n",
            "mbhost_test_pkg/bot.py": "from maubot import Plugin\nclass Bot(Plugin):\n    pass\n",
            "mbhost_test_helper.py": "",
        }
        self.assertEqual(self.load("pkg", files, meta)["result"], {})
        self.assertIn("result", self.start("pkg1"))


class InstanceTest(WorkerTest):
    def test_ping_is_answered_as_a_markdown_notice_reply(self) -> None:
        self.start_ping()
        event_request = self.server.request(
            "event", {"instance_id": "ping1", "event": message_event("!ping")}
        )
        request = self.server.matrix_request()
        params = request["params"]
        self.assertEqual(params["instance_id"], "ping1")
        self.assertEqual(params["method"], "PUT")
        prefix = f"/_matrix/client/v3/rooms/{ROOM_PATH}/send/m.room.message/"
        self.assertTrue(params["path"].startswith(prefix), params["path"])
        self.assertGreater(len(params["path"]), len(prefix))
        self.assertEqual(params["content_type"], "application/json")
        body = params["body"]
        self.assertEqual(body["msgtype"], "m.notice")
        self.assertEqual(body["m.relates_to"], {"m.in_reply_to": {"event_id": "$ev1"}})
        self.assertEqual(body["format"], "org.matrix.custom.html")
        self.assertIn("<strong>hi</strong>", body["formatted_body"])
        self.assertIn('<a href="https://example.org/docs">docs</a>', body["formatted_body"])
        self.assertEqual(body["body"], "**hi** docs (https://example.org/docs)")

        # The event is not done while its handler waits for the server, and a ping still passes.
        self.assertEqual(self.server.call("ping", {}), {})
        self.server.nothing_arrives(0.3)
        self.server.answer(request, 200, {"event_id": "$reply"})
        self.assertEqual(self.server.response(event_request), {"id": event_request, "result": {}})

    def test_matrix_errors_become_mautrix_exceptions(self) -> None:
        self.start_ping()
        event_request = self.server.request(
            "event", {"instance_id": "ping1", "event": message_event("!power")}
        )
        request = self.server.matrix_request()
        self.assertEqual(request["params"]["method"], "GET")
        self.assertEqual(
            request["params"]["path"],
            f"/_matrix/client/v3/rooms/{ROOM_PATH}/state/m.room.power_levels/",
        )
        self.assertIsNone(request["params"]["body"])
        self.server.answer(request, 403, {"errcode": "M_FORBIDDEN", "error": "no"})
        reply = self.server.matrix_request()
        self.assertEqual(
            reply["params"]["body"], {"msgtype": "m.notice", "body": "MForbidden M_FORBIDDEN"}
        )
        self.server.answer(reply, 200, {"event_id": "$r"})
        self.assertIn("result", self.server.response(event_request))

    def test_membership_events_reach_internal_join_handlers(self) -> None:
        self.start_ping()
        join = {
            "type": "m.room.member",
            "room_id": ROOM,
            "event_id": "$join",
            "sender": "@carol:example.org",
            "state_key": "@carol:example.org",
            "origin_server_ts": 1700000000000,
            "content": {"membership": "join"},
        }
        event_request = self.server.request("event", {"instance_id": "ping1", "event": join})
        request = self.server.matrix_request()
        self.assertEqual(request["params"]["body"]["body"], "Welcome @carol:example.org")
        # The JOIN handler runs in a dispatch nested in the member event's: still awaited.
        self.server.nothing_arrives(0.3)
        self.server.answer(request, 200, {"event_id": "$w"})
        self.assertIn("result", self.server.response(event_request))

    def test_config_is_normalised_saved_and_updated(self) -> None:
        result = self.start_ping()
        self.assertEqual(result["base_config"], "# What !ping answers\ngreeting: pong\n")
        saved = self.server.notification("config_save")["params"]
        self.assertEqual(
            saved, {"instance_id": "ping1", "config": "# What !ping answers\ngreeting: hi\n"}
        )
        started = self.server.log_record(lambda r: r["message"] == "Started with greeting hi")
        self.assertEqual(started["logger"], "maubot.instance.ping1")
        self.assertEqual(started["level"], "INFO")

        update = self.server.request(
            "config_updated", {"instance_id": "ping1", "config": "greeting: hello\n"}
        )
        saved = self.server.notification("config_save")["params"]
        self.assertEqual(saved["config"], "# What !ping answers\ngreeting: hello\n")
        self.assertIn("result", self.server.response(update))

        # Saving text that is already stored sends nothing.
        self.server.call(
            "config_updated",
            {"instance_id": "ping1", "config": "# What !ping answers\ngreeting: hello\n"},
        )
        self.server.nothing_arrives(0.3)

        event_request = self.server.request(
            "event", {"instance_id": "ping1", "event": message_event("!ping", "$ev2")}
        )
        request = self.server.matrix_request()
        self.assertIn("<strong>hello</strong>", request["params"]["body"]["formatted_body"])
        self.server.answer(request, 200, {"event_id": "$reply"})
        self.assertIn("result", self.server.response(event_request))

    def test_stop_then_events_are_refused(self) -> None:
        self.start_ping()
        self.assertEqual(self.server.call("stop", {"instance_id": "ping1"}), {})
        error = self.server.error(
            "event", {"instance_id": "ping1", "event": message_event("!ping")}
        )
        self.assertEqual(error["message"], "Instance ping1 is not running")
        # The instance can start again.
        self.assertIn("result", self.start("ping1", "greeting: again\n"))

    def test_failing_start_is_an_error(self) -> None:
        meta = {
            "id": "t.fail",
            "version": "1.0",
            "modules": ["mbhost_test_fail"],
            "main_class": "Bot",
        }
        files = {
            "mbhost_test_fail.py": """
                from maubot import Plugin

                class Bot(Plugin):
                    async def start(self):
                        raise RuntimeError("cannot start")
                """
        }
        self.assertIn("result", self.load("fail", files, meta))
        response = self.start("fail1")
        self.assertEqual(
            response["error"]["message"], "Failed to start instance: RuntimeError: cannot start"
        )
        self.assertIn("RuntimeError: cannot start", response["error"]["traceback"])
        error = self.server.error("event", {"instance_id": "fail1", "event": message_event("!x")})
        self.assertEqual(error["message"], "Instance fail1 is not running")

    def test_webapp_plugins_get_their_url(self) -> None:
        # Regression: an empty PluginWebApp is falsy (an aiohttp router has a length), and
        # `if webapp` once left webapp_url None for every web app plugin.
        meta = {
            "id": "t.web",
            "version": "1.0",
            "modules": ["mbhost_test_web"],
            "main_class": "Bot",
            "webapp": True,
        }
        files = {
            "mbhost_test_web.py": """
                from maubot import Plugin

                class Bot(Plugin):
                    async def start(self):
                        self.log.info(f"web app at {self.webapp_url}")
                """
        }
        self.assertIn("result", self.load("web", files, meta))
        url = "https://maubot.example.org/_matrix/maubot/plugin/web1/"
        response = self.server.response(
            self.server.request(
                "start",
                {"instance_id": "web1", "client": CLIENT, "config": "", "webapp_url": url},
            )
        )
        self.assertIn("result", response)
        self.server.log_record(lambda r: r["message"] == f"web app at {url}")

    def test_web_request_to_an_instance_without_web_app_is_an_error(self) -> None:
        self.start_ping()
        params = {"method": "GET", "path": "/", "query_string": "", "headers": []}
        error = self.server.error("web_request", {"instance_id": "ping1", **params})
        self.assertEqual(error["message"], "Instance ping1 has no web app")
        error = self.server.error("web_request", {"instance_id": "nope", **params})
        self.assertEqual(error["message"], "Instance nope is not running")

    @unittest.skipUnless(
        importlib.util.find_spec("sqlalchemy"), "SQLAlchemy is not installed ('SQLAlchemy>1,<1.4')"
    )
    def test_legacy_sqlalchemy_database_on_sqlite(self) -> None:
        meta = {
            "id": "t.sqla",
            "version": "1.0",
            "modules": ["mbhost_test_sqla"],
            "main_class": "Bot",
            "database": True,
        }
        files = {
            "mbhost_test_sqla.py": """
                import sqlalchemy as sql

                from maubot import MessageEvent, Plugin
                from maubot.handlers import command


                class Bot(Plugin):
                    async def start(self) -> None:
                        metadata = sql.MetaData()
                        self.hits = sql.Table(
                            "hits", metadata, sql.Column("id", sql.Integer, primary_key=True)
                        )
                        metadata.create_all(self.database)

                    @command.new("count")
                    async def count(self, evt: MessageEvent) -> None:
                        self.database.execute(self.hits.insert())
                        hits = self.database.execute(sql.func.count(self.hits.c.id)).scalar()
                        mode = self.database.execute("PRAGMA journal_mode").scalar()
                        await evt.respond(f"{hits} {mode}", markdown=False)
                """
        }
        self.assertIn("result", self.load("sqla", files, meta))
        database = {"url": f"sqlite:{self.tmp.name}/sqla1.db"}
        for n in (1, 2):
            # Stopped and started again: the rows stay in the instance's file.
            self.assertEqual(
                self.start("sqla1", database=database)["result"], {"base_config": None}
            )
            event_request = self.server.request(
                "event", {"instance_id": "sqla1", "event": message_event("!count", f"$e{n}")}
            )
            request = self.server.matrix_request()
            self.assertEqual(request["params"]["body"]["body"], f"{n} truncate")
            self.server.answer(request, 200, {"event_id": f"$r{n}"})
            self.assertIn("result", self.server.response(event_request))
            self.server.call("stop", {"instance_id": "sqla1"})
        files = os.listdir(self.tmp.name)
        self.assertIn("sqla1.db", files)
        self.assertNotIn("sqla1.db-wal", files)

    def test_asyncpg_database_on_sqlite(self) -> None:
        meta = {
            "id": "t.db",
            "version": "1.0",
            "modules": ["mbhost_test_db"],
            "main_class": "Bot",
            "database": True,
            "database_type": "asyncpg",
        }
        files = {
            "mbhost_test_db.py": """
                from mautrix.util.async_db import UpgradeTable

                from maubot import MessageEvent, Plugin
                from maubot.handlers import command

                upgrade_table = UpgradeTable()


                @upgrade_table.register(description="Counter")
                async def upgrade_v1(conn) -> None:
                    await conn.execute("CREATE TABLE hits (id INTEGER PRIMARY KEY)")


                class Bot(Plugin):
                    @classmethod
                    def get_db_upgrade_table(cls):
                        return upgrade_table

                    @command.new("count")
                    async def count(self, evt: MessageEvent) -> None:
                        await self.database.execute("INSERT INTO hits DEFAULT VALUES")
                        hits = await self.database.fetchval("SELECT COUNT(*) FROM hits")
                        await evt.respond(str(hits), markdown=False)
                """
        }
        self.assertIn("result", self.load("db", files, meta))
        database = {"url": f"sqlite:{self.tmp.name}/db1.db"}
        self.assertEqual(self.start("db1", database=database)["result"], {"base_config": None})
        for n, event_id in enumerate(["$a", "$b"], start=1):
            event_request = self.server.request(
                "event", {"instance_id": "db1", "event": message_event("!count", event_id)}
            )
            request = self.server.matrix_request()
            self.assertEqual(request["params"]["body"]["body"], str(n))
            self.server.answer(request, 200, {"event_id": f"$r{n}"})
            self.assertIn("result", self.server.response(event_request))
        self.server.call("stop", {"instance_id": "db1"})
        self.assertTrue(os.path.exists(f"{self.tmp.name}/db1.db"))


class WebAppTest(WorkerTest):
    URL = "https://maubot.example.org/_matrix/maubot/plugin/web1"

    def setUp(self) -> None:
        super().setUp()
        self.assertIn("result", self.load("web", WEB_PLUGIN, WEB_META))
        response = self.server.response(
            self.server.request(
                "start",
                {"instance_id": "web1", "client": CLIENT, "config": "", "webapp_url": self.URL},
            )
        )
        self.assertIn("result", response)

    def web(
        self,
        method: str,
        path: str,
        query_string: str = "",
        headers: list[list[str]] | None = None,
        body: bytes = b"",
    ) -> tuple[int, list[list[str]], bytes]:
        result = self.server.call(
            "web_request",
            {
                "instance_id": "web1",
                "method": method,
                "path": path,
                "query_string": query_string,
                "headers": headers or [["Host", "maubot.example.org"]],
                "body_base64": base64.b64encode(body).decode(),
            },
        )
        self.assertEqual(set(result), {"status", "headers", "body_base64"})
        return result["status"], result["headers"], base64.b64decode(result["body_base64"])

    def header(self, headers: list[list[str]], name: str) -> str | None:
        values = [value for key, value in headers if key.lower() == name.lower()]
        self.assertLessEqual(len(values), 1, headers)
        return values[0] if values else None

    def test_webapp_url_is_kept(self) -> None:
        self.server.log_record(lambda r: r["message"] == f"web app at {self.URL}")

    def test_get_with_query(self) -> None:
        status, headers, body = self.web("GET", "/hello", "name=maubot&x=1")
        self.assertEqual((status, body), (200, b"hello maubot"))
        self.assertEqual(self.header(headers, "Content-Type"), "text/plain; charset=utf-8")
        self.assertEqual(self.header(headers, "X-Middleware"), "yes")
        # Framing and the headers aiohttp adds are the server's business.
        for name in ("Content-Length", "Transfer-Encoding", "Connection", "Date", "Server"):
            self.assertIsNone(self.header(headers, name), headers)
        self.assertEqual(self.web("GET", "/hello")[2], b"hello world")

    def test_post_json(self) -> None:
        status, headers, body = self.web(
            "POST",
            "/hook",
            headers=[["Content-Type", "application/json"]],
            body=json.dumps({"text": "hi", "n": 1}).encode(),
        )
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"got": {"text": "hi", "n": 1}})
        self.assertEqual(self.header(headers, "Content-Type"), "application/json; charset=utf-8")

    def test_path_parameters_query_and_headers(self) -> None:
        status, _, body = self.web(
            "GET",
            "/items/caf%C3%A9%20au%20lait",
            "q=a%20b&q2=%F0%9F%90%88",
            headers=[["X-Test", "value"], ["Host", "maubot.example.org"]],
        )
        self.assertEqual(status, 200)
        self.assertEqual(
            json.loads(body),
            {
                "item": "café au lait",
                "path": "/items/café au lait",
                "raw_path": "/items/caf%C3%A9%20au%20lait?q=a%20b&q2=%F0%9F%90%88",
                "query": {"q": "a b", "q2": "🐈"},
                "header": "value",
                "remote": None,
                "has_app": True,
            },
        )

    def test_binary_bodies_status_and_repeated_headers(self) -> None:
        status, headers, body = self.web("PUT", "/echo", body=bytes(range(256)))
        self.assertEqual((status, body), (201, bytes(range(256))[::-1]))
        cookies = [value for name, value in headers if name.lower() == "set-cookie"]
        self.assertEqual(cookies, ["a=1; Path=/", "b=2; Path=/"])

    def test_form_post(self) -> None:
        status, _, body = self.web(
            "POST",
            "/form",
            headers=[["Content-Type", "application/x-www-form-urlencoded"]],
            body=b"x=1&y=%C3%A9",
        )
        self.assertEqual((status, body.decode()), (200, "1+é (x=1&y=%C3%A9)"))

    def test_streamed_and_file_responses(self) -> None:
        status, headers, body = self.web("GET", "/stream")
        self.assertEqual((status, body), (200, b"one two"))
        self.assertIsNone(self.header(headers, "Transfer-Encoding"))
        path = os.path.join(self.tmp.name, "served.txt")
        with open(path, "w") as f:
            f.write("from a file")
        status, headers, body = self.web("GET", "/file", urlencode({"path": path}))
        self.assertEqual((status, body), (200, b"from a file"))
        self.assertEqual(self.header(headers, "Content-Type"), "text/plain")

    def test_compressed_stream(self) -> None:
        status, headers, body = self.web("GET", "/gzip", headers=[["Accept-Encoding", "gzip"]])
        self.assertEqual(status, 200)
        self.assertEqual(self.header(headers, "Content-Encoding"), "gzip")
        self.assertEqual(gzip.decompress(body), b"squeeze " * 100)
        _, headers, body = self.web("GET", "/gzip", headers=[["Accept-Encoding", "deflate"]])
        self.assertEqual(self.header(headers, "Content-Encoding"), "deflate")
        self.assertEqual(zlib.decompress(body), b"squeeze " * 100)

    def test_http_exceptions_are_responses(self) -> None:
        status, headers, body = self.web("GET", "/moved")
        self.assertEqual(status, 302)
        self.assertEqual(self.header(headers, "Location"), "/hello")
        self.assertEqual(body, b"302: Found")

        status, headers, body = self.web("GET", "/no/such/path")
        self.assertEqual((status, body), (404, b"404: Not Found"))
        self.assertEqual(self.header(headers, "Content-Type"), "text/plain; charset=utf-8")

        status, headers, body = self.web("DELETE", "/hello")
        self.assertEqual((status, body), (405, b"405: Method Not Allowed"))
        # @web.get is add_route("GET", ...): no HEAD route, as in maubot.
        self.assertEqual(self.header(headers, "Allow"), "GET")

    def test_handler_exception_is_500_and_logged(self) -> None:
        status, headers, body = self.web("GET", "/fail")
        self.assertEqual(status, 500)
        self.assertEqual(body, b"500 Internal Server Error\n\nServer got itself in trouble")
        record = self.server.log_record(lambda r: r["message"].startswith("Error handling web"))
        self.assertEqual(record["logger"], "maubot.instance.web1")
        self.assertEqual(record["level"], "ERROR")
        self.assertEqual(record["message"], "Error handling web request GET /fail")
        self.assertIn("RuntimeError: handler exploded", record["exception"])

        # What a streamed response wrote before its handler failed is dropped.
        status, headers, body = self.web("GET", "/half")
        self.assertEqual(status, 500)
        self.assertTrue(body.startswith(b"500 Internal Server Error"), body)
        self.assertEqual(self.header(headers, "Content-Type"), "text/plain; charset=utf-8")
        self.server.log_record(lambda r: r["message"] == "Error handling web request GET /half")

        status, _, _ = self.web("GET", "/nothing")
        self.assertEqual(status, 500)
        record = self.server.log_record(lambda r: "not an aiohttp response" in r["message"])
        self.assertEqual(record["logger"], "maubot.instance.web1")

    def test_stopped_instance_has_no_web_app(self) -> None:
        self.server.call("stop", {"instance_id": "web1"})
        error = self.server.error(
            "web_request", {"instance_id": "web1", "method": "GET", "path": "/hello"}
        )
        self.assertEqual(error["message"], "Instance web1 is not running")

    def test_bad_params_are_errors(self) -> None:
        error = self.server.error(
            "web_request", {"instance_id": "web1", "method": "GET", "path": "hello"}
        )
        self.assertEqual(error["message"], "web_request path must start with /: 'hello'")
        error = self.server.error(
            "web_request",
            {"instance_id": "web1", "method": "GET", "path": "/", "body_base64": "!!"},
        )
        self.assertIn("not valid base64", error["message"])


if __name__ == "__main__":
    unittest.main()
