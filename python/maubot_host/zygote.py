"""`python -m maubot_host.zygote`: the pre-loaded parent of the plugin workers.

It imports what every worker needs (the host, mautrix, aiohttp and the parts plugins commonly
use), runs one worker session of its own to warm that code up, freezes those objects out of the
collector's reach, and then forks one worker per request. A forked worker shares those pages
with the zygote and its siblings until it writes to them, so a worker costs a few MiB instead of
a whole interpreter, and starts in milliseconds.

The zygote never has an event loop or a thread when it forks (neither survives a fork: the
warm-up's loop is closed before), and never runs a user's plugin code. It talks to the server
over a SOCK_SEQPACKET socket on its standard input (docs/python-host-protocol.md, "The
zygote"): one JSON message per packet, file descriptors alongside.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
import os
import selectors
import signal
import socket
import sys
import tempfile
import threading
import zipfile
import zipimport
from typing import Any

PROTOCOL_VERSION = 1
# Descriptors that come with a `spawn`: the worker's protocol socket, its standard output and
# error, and (when the server sandboxes it) the Landlock ruleset it enters.
_MAX_FDS = 4
_MAX_MESSAGE = 1024 * 1024

_PR_SET_NO_NEW_PRIVS = 38
_SYS_LANDLOCK_RESTRICT_SELF = {"x86_64": 446, "aarch64": 446}


def preload() -> None:
    """Import what workers share. Plugins import the rest themselves, in their worker.

    Not SQLAlchemy (legacy databases, about 10 MiB) or jinja2 (2 MiB): preloaded, they cost
    every worker some private memory too, and the test plugin zoo (two legacy databases, one
    template plugin among thirteen) used 5 MiB more with them (crates/maubot-bench/README.md)."""
    # mautrix makes TraceLogger the logger class on import: before any logger exists.
    import mautrix.util.logging  # noqa: F401

    os.environ.setdefault("AIOHTTP_NOSENDFILE", "1")
    import aiohttp  # noqa: F401
    import aiohttp.web  # noqa: F401
    import mautrix.client  # noqa: F401
    import mautrix.util.async_db  # noqa: F401
    import mautrix.util.config  # noqa: F401

    import maubot  # noqa: F401
    import maubot.handlers  # noqa: F401

    from . import worker  # noqa: F401


# The plugin `warm_up` runs: maubot's own shape of a command bot, nothing of a user's.
_WARM_UP_ID = "xyz.maubot-rs.zygote-warm-up"
_WARM_UP_MODULE = "maubot_host_zygote_warm_up"
_WARM_UP_META = {
    "maubot": "0.1.0",
    "id": _WARM_UP_ID,
    "version": "1.0.0",
    "license": "AGPL-3.0-or-later",
    "modules": [_WARM_UP_MODULE],
    "main_class": "WarmUpBot",
}
_WARM_UP_SOURCE = """
from maubot import MessageEvent, Plugin
from maubot.handlers import command


class WarmUpBot(Plugin):
    @command.new("ping")
    async def ping(self, evt: MessageEvent) -> None:
        await evt.reply("pong")
"""
_WARM_UP_EVENTS = 20
_WARM_UP_TIMEOUT = 10.0


def warm_up() -> None:
    """Runs one worker session in the zygote itself, over a socket pair: `load`, `start`, a few
    `!ping` events answered through `matrix` requests, `stop`, end of file. The code every worker
    runs is then specialised by the interpreter, and the objects it creates on first use exist,
    in pages the workers share; otherwise each worker writes them into pages of its own (0.2 to
    0.7 MiB less private memory per worker: crates/maubot-bench/README.md).
    Leaves no event loop, thread, handler or module behind. A failure only loses that saving."""
    from . import logs, worker

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    instance_logger = logging.getLogger(logs.INSTANCE_LOGGER)
    instance_level = instance_logger.level
    try:
        with tempfile.TemporaryDirectory(prefix="maubot-zygote-warm-up-") as folder:
            path = os.path.join(folder, "warm-up.mbp")
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr(f"{_WARM_UP_MODULE}.py", _WARM_UP_SOURCE)
            ours, theirs = socket.socketpair()
            with ours, theirs:
                asyncio.run(_warm_up_session(worker.run(theirs), _drive_warm_up(ours, path)))
            getattr(zipimport, "_zip_directory_cache", {}).pop(path, None)
    except Exception as e:  # noqa: BLE001 - the zygote serves without it
        print(f"warning: the zygote's warm-up failed: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        sys.modules.pop(_WARM_UP_MODULE, None)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        instance_logger.setLevel(instance_level)
        logging.captureWarnings(False)
    if threading.active_count() != 1:
        # A fork copies only the thread that forks: say so if the warm-up left one running.
        print("warning: a thread outlived the zygote's warm-up", file=sys.stderr)


async def _warm_up_session(*sides: Any) -> None:
    await asyncio.wait_for(asyncio.gather(*sides), _WARM_UP_TIMEOUT)


async def _drive_warm_up(sock: socket.socket, path: str) -> None:
    """The server's side of `warm_up`."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    next_id = 0

    async def request(method: str, params: dict[str, Any]) -> None:
        nonlocal next_id
        next_id += 1
        writer.write(json.dumps({"id": next_id, "method": method, "params": params}).encode())
        writer.write(b"\n")
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("the warm-up worker closed the connection")
            message = json.loads(line)
            if message.get("method") == "matrix" and "id" in message:
                answer = {"status": 200, "body": {"event_id": "$warm-up"}}
                writer.write(json.dumps({"id": message["id"], "result": answer}).encode())
                writer.write(b"\n")
            elif "method" not in message and message.get("id") == next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error'].get('message')}")
                return

    instance = {"instance_id": "warm-up"}
    await request("load", {"path": path, "meta": _WARM_UP_META})
    await request(
        "start",
        {
            **instance,
            "client": {
                "user_id": "@warm-up:localhost",
                "device_id": "WARMUP",
                "homeserver": "http://127.0.0.1:9",
            },
            "config": "",
            "database": None,
            "webapp_url": None,
        },
    )
    for n in range(_WARM_UP_EVENTS):
        event = {
            "type": "m.room.message",
            "room_id": "!warm-up:localhost",
            "event_id": f"$warm-up-{n}",
            "sender": "@someone:localhost",
            "origin_server_ts": 0,
            "content": {"msgtype": "m.text", "body": "!ping"},
        }
        await request("event", {**instance, "event": event})
    await request("stop", instance)
    writer.close()
    await writer.wait_closed()


class Zygote:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: set[int] = set()
        self.selector = selectors.DefaultSelector()
        self.wakeup_read, self.wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        if fds:
            socket.send_fds(self.control, [data], fds)
        else:
            self.control.send(data)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wakeup_write)
        # A handler (not SIG_IGN) so that children are ours to reap and report.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.control, selectors.EVENT_READ)
        self.selector.register(self.wakeup_read, selectors.EVENT_READ)
        self.send({"method": "ready", "params": {"protocol": PROTOCOL_VERSION, "pid": os.getpid()}})
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.control:
                    if not self.receive():
                        return
                else:
                    try:
                        os.read(self.wakeup_read, 512)
                    except BlockingIOError:
                        pass
            self.reap()

    def receive(self) -> bool:
        """Handles one message; False once the server has gone."""
        try:
            data, fds, _, _ = socket.recv_fds(self.control, _MAX_MESSAGE, _MAX_FDS)
        except InterruptedError:
            return True
        if not data:
            return False
        try:
            message = json.loads(data)
            if message.get("method") != "spawn":
                raise ValueError(f"unknown method {message.get('method')!r}")
            pid = self.spawn(message.get("params") or {}, fds)
        except Exception as e:
            for fd in fds:
                os.close(fd)
            self.send(
                {
                    "id": message.get("id") if isinstance(message, dict) else None,
                    "error": {"message": f"{type(e).__name__}: {e}"},
                }
            )
            return True
        pidfd = os.pidfd_open(pid)
        try:
            self.send({"id": message["id"], "result": {"pid": pid}}, [pidfd])
        finally:
            os.close(pidfd)
        return True

    def spawn(self, params: dict[str, Any], fds: list[int]) -> int:
        if len(fds) not in (3, 4):
            raise ValueError(f"spawn needs 3 or 4 descriptors, got {len(fds)}")
        env = params.get("env")
        path = params.get("path")
        cwd = params.get("cwd")
        if not isinstance(env, dict) or not isinstance(path, list) or not isinstance(cwd, str):
            raise ValueError("spawn needs env, path and cwd")
        pid = os.fork()
        if pid == 0:
            _become_worker(self, fds, env, path, cwd)  # never returns
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        return pid

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            if os.WIFSIGNALED(status):
                how = f"signal: {os.WTERMSIG(status)} ({signal.Signals(os.WTERMSIG(status)).name})"
            else:
                how = f"exit status: {os.waitstatus_to_exitcode(status)}"
            self.send({"method": "exited", "params": {"pid": pid, "status": how}})


def _enter_sandbox(ruleset: int) -> None:
    """Enters the Landlock domain the server built, before anything of the plugin runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    number = _SYS_LANDLOCK_RESTRICT_SELF.get(os.uname().machine)
    if number is None:
        raise OSError(f"no Landlock system call number for {os.uname().machine}")
    if libc.syscall(number, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")


def _become_worker(
    zygote: Zygote, fds: list[int], env: dict[str, str], path: list[str], cwd: str
) -> None:
    """In the forked child: become a worker as `python -m maubot_host` would be. Never returns
    into the zygote's loop, whatever happens."""
    code = 70
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        zygote.selector.close()
        zygote.control.close()
        os.close(zygote.wakeup_read)
        os.close(zygote.wakeup_write)
        sock_fd, out_fd, err_fd = fds[:3]
        os.dup2(sock_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        for fd in (sock_fd, out_fd, err_fd):
            if fd > 2:
                os.close(fd)
        if len(fds) == 4:
            _enter_sandbox(fds[3])
            os.close(fds[3])
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
        os.chdir(cwd)
        # The host's packages stay first; the plugin's own follow.
        sys.path.extend(p for p in path if p not in sys.path)
        from .__main__ import main

        main()  # exits the process itself
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - nothing may escape into the zygote's loop
        try:
            print(f"error: the worker could not start: {type(e).__name__}: {e}", file=sys.stderr)
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


def main() -> None:
    try:
        control = socket.socket(fileno=0)
    except OSError as e:
        print(f"error: standard input is not a socket ({e})", file=sys.stderr)
        sys.exit(2)
    if control.type != socket.SOCK_SEQPACKET:
        print("error: standard input is not a SOCK_SEQPACKET socket", file=sys.stderr)
        sys.exit(2)
    sys.stdin = open(os.devnull)
    preload()
    warm_up()
    # What was imported is shared with every worker: kept out of the collector's passes, the
    # pages stay shared instead of being touched (and copied) by each worker's collections.
    gc.collect()
    gc.freeze()
    Zygote(control).serve()


if __name__ == "__main__":
    main()
