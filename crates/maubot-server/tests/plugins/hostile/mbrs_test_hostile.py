"""Test plugin: a hostile plugin. `!attack` tries to cross every boundary a worker has and
answers one line per attempt: `<name>: refused (<why>)` or `<name>: BREACH (<what it got>)`.
It uses the worker's own connection to the server directly (found with `gc`), as hostile code
in the worker process can, not only mautrix's client. `!own` checks that what the plugin may do
still works: its own bot, its own database, its home; and says who its parent process is.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any, Awaitable, Callable, Type

from mautrix.util.async_db import Connection as DBConnection, UpgradeTable
from mautrix.util.config import BaseProxyConfig, ConfigUpdateHelper

from maubot import MessageEvent, Plugin
from maubot.handlers import command

upgrade_table = UpgradeTable()


@upgrade_table.register(description="Loot")
async def upgrade_v1(conn: DBConnection) -> None:
    await conn.execute("CREATE TABLE loot (id INTEGER PRIMARY KEY, what TEXT NOT NULL)")


class Config(BaseProxyConfig):
    def do_update(self, helper: ConfigUpdateHelper) -> None:
        for key in (
            "server_pid",
            "victim_instance",
            "forbidden_reads",
            "forbidden_writes",
            "forbidden_listings",
        ):
            helper.copy(key)


def _worker_connection() -> Any:
    # The worker freezes what it keeps alive, and frozen objects are not listed.
    gc.unfreeze()
    for obj in gc.get_objects():
        if type(obj).__name__ == "Connection" and type(obj).__module__ == "maubot_host.rpc":
            return obj
    raise RuntimeError("no worker connection found")


async def _matrix(conn: Any, instance_id: str, method: str, path: str) -> dict:
    return await conn.request(
        "matrix",
        {"instance_id": instance_id, "method": method, "path": path, "query": {}, "body": {}},
    )


class HostileBot(Plugin):
    @classmethod
    def get_config_class(cls) -> Type[BaseProxyConfig]:
        return Config

    @classmethod
    def get_db_upgrade_table(cls) -> UpgradeTable:
        return upgrade_table

    async def start(self) -> None:
        self.config.load_and_update()

    @command.new("attack", help="Try to cross every boundary")
    async def attack(self, evt: MessageEvent) -> None:
        conn = _worker_connection()
        lines: list[str] = []

        async def attempt(name: str, action: Callable[[], Awaitable[str | None]]) -> None:
            try:
                got = await action()
            except Exception as e:
                lines.append(f"{name}: refused ({type(e).__name__}: {e})")
                return
            if got is None:
                lines.append(f"{name}: refused")
            else:
                lines.append(f"{name}: BREACH ({got})")

        def endpoint(method: str, path: str, instance: str | None = None) -> Callable:
            async def action() -> str | None:
                answer = await _matrix(conn, instance or self.id, method, path)
                status = answer.get("status")
                if status in (401, 403, 404):
                    return None
                return f"status {status}: {str(answer.get('body'))[:200]}"

            return action

        for name, method, path in [
            ("sync via backslashes", "GET", "/_matrix/client/v3/x\\..\\sync"),
            ("sync via tab", "GET", "/_matrix/client/v3/x/\t../sync"),
            ("sync via encoded dots", "GET", "/_matrix/client/v3/rooms/%2e%2e/%2E%2E/sync"),
            ("sync via encoded slash", "GET", "/_matrix/client/v3/rooms%2F..%2F..%2Fsync"),
            ("sync via newline", "GET", "/_matrix/client/v3/syn\nc"),
            ("keys query", "POST", "/_matrix/client/v3/x\\..\\keys/query"),
            ("keys upload", "POST", "/_matrix/client/v3/keys/upload"),
            ("devices", "GET", "/_matrix/client/v3/x\\..\\devices"),
            ("to-device", "PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/t1"),
            ("logout", "POST", "/_matrix/client/v3/x\\..\\logout"),
            ("logout all", "POST", "/_matrix/client/v3/logout/all"),
            ("synapse admin", "GET", "/_matrix/client/v3/x\\..\\..\\..\\..\\_synapse/admin/v1/server_version"),
            ("synapse admin directly", "GET", "/_synapse/admin/v1/server_version"),
            ("secret storage", "GET", f"/_matrix/client/v3/user/{self.client.mxid}/account_data/m.secret_storage.default_key"),
        ]:
            await attempt(name, endpoint(method, path))

        victim = self.config["victim_instance"]

        async def victims_bot() -> str | None:
            answer = await _matrix(conn, victim, "GET", "/_matrix/client/v3/account/whoami")
            return f"acted as {answer.get('body')}"

        await attempt("another instance's bot", victims_bot)

        async def victims_config() -> str | None:
            # A notification has no answer: the test checks that the config did not change.
            conn.notify("config_save", {"instance_id": victim, "config": "hacked: true\n"})
            return None

        await attempt("another instance's config", victims_config)

        def reading(path: str) -> Callable:
            async def action() -> str | None:
                with open(path, "rb") as file:
                    return f"read {len(file.read(4096))} bytes"

            return action

        def writing(path: str) -> Callable:
            async def action() -> str | None:
                with open(path, "ab") as file:
                    file.write(b"")
                return "opened for writing"

            return action

        def listing(path: str) -> Callable:
            async def action() -> str | None:
                return f"listed {len(os.listdir(path))} entries"

            return action

        server = self.config["server_pid"] or os.getppid()
        for path in self.config["forbidden_reads"] + [
            f"/proc/{server}/environ",
            f"/proc/{server}/cmdline",
        ]:
            await attempt(f"read {path}", reading(path))
        for path in self.config["forbidden_writes"]:
            await attempt(f"write {path}", writing(path))
        for path in self.config["forbidden_listings"]:
            await attempt(f"list {path}", listing(path))

        async def signal_server() -> str | None:
            os.kill(server, 0)
            return f"may signal the server (pid {server})"

        await attempt("signal the server", signal_server)

        async def log_as_server() -> str | None:
            logging.getLogger("maubot.server").warning(
                "hostile: forged\n[2026-01-01 00:00:00,000] [INFO@maubot.server] forged line"
            )
            return None

        await attempt("log as maubot.server", log_as_server)
        await evt.reply("\n".join(lines), markdown=False)

    @command.new("own", help="What the plugin may do still works")
    async def own(self, evt: MessageEvent) -> None:
        whoami = await self.client.whoami()
        await self.database.execute("INSERT INTO loot (what) VALUES ($1)", "nothing")
        count = await self.database.fetchval("SELECT COUNT(*) FROM loot")
        home = os.environ.get("HOME", "")
        with open(os.path.join(home, "scratch"), "w") as file:
            file.write("a private temporary file")
        await evt.reply(f"own: {whoami.user_id} rows={count} parent={os.getppid()}")
