"""The Python plugin host's zygote driven directly, without the server: forks one worker per
plugin of the test plugin zoo, loads and starts an instance in each, hands each a `!ping`, then
prints each worker's memory (PSS, RSS, Private_Dirty: what it wrote since the fork) and start
time, the zygote's, and the PSS of them all. A benchmark, not a test.

    python crates/maubot-bench/zygote_memory.py --python VENV/bin/python [--pythonpath python]
        [--settle 3] [PLUGIN ...]

VENV is a venv with python/requirements.txt (and Pillow and semver for imagebot and
templated); the server's own, `target/python-host-venv`, has the former. To compare two
versions of the host, pass another `--pythonpath` (e.g. a `git archive` of an older commit).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = os.path.join(HERE, "../maubot-server/tests/plugins")
PLUGINS = ["echo", "commands", "passive", "members", "configured", "storage", "webhook", "sed",
           "hooks", "reminder", "karma", "templated", "imagebot"]


def rollup(pid: int) -> dict[str, float]:
    """`/proc/<pid>/smaps_rollup` in MiB."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return out


class Worker:
    """The server's side of one worker's protocol connection."""

    def __init__(self, sock: socket.socket, pid: int, name: str) -> None:
        self.sock, self.pid, self.name = sock, pid, name
        self.buffer = b""
        self.next_id = 0

    def send(self, message: dict) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self) -> dict:
        while b"\n" not in self.buffer:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError(f"the {self.name} worker closed its connection")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.receive()
            if message.get("method") == "matrix" and "id" in message:
                path = message["params"].get("path", "")
                body = {"content_uri": "mxc://bench/x"} if "upload" in path else {"event_id": "$x"}
                self.send({"id": message["id"], "result": {"status": 200, "body": body}})
            elif "method" not in message and message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{self.name} {method}: {message['error']['message']}")
                return message["result"]


def archive(folder: str, into: str) -> str:
    root = os.path.join(ZOO, folder)
    path = os.path.join(into, folder + ".mbp")
    with zipfile.ZipFile(path, "w") as z:
        for directory, subfolders, files in os.walk(root):
            subfolders[:] = [d for d in subfolders if d != "__pycache__"]
            for name in files:
                full = os.path.join(directory, name)
                z.write(full, os.path.relpath(full, root))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="the venv's python")
    parser.add_argument("--pythonpath", default=os.path.join(HERE, "../../python"),
                        help="where maubot_host and maubot are [default: this checkout's]")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("plugins", nargs="*", default=PLUGINS)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="zygote-memory-")
    metas = {}
    for folder in args.plugins:
        # maubot.yaml as JSON, read by the venv's ruamel.yaml.
        metas[folder] = json.loads(subprocess.check_output([
            args.python, "-c",
            "import json, sys; from ruamel.yaml import YAML; "
            "print(json.dumps(YAML(typ='safe').load(open(sys.argv[1]))))",
            os.path.join(ZOO, folder, "maubot.yaml"),
        ]))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {"PYTHONPATH": os.path.abspath(args.pythonpath), "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": home, "TMPDIR": home, "PATH": os.environ.get("PATH", "")}
    # The allocator's settings, to try them.
    env.update(
        {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "PYTHONMALLOC"}
    )
    started = time.monotonic()
    zygote = subprocess.Popen([args.python, "-m", "maubot_host.zygote"], stdin=theirs, env=env,
                              cwd=home)
    theirs.close()
    ready = json.loads(ours.recv(65536))
    zygote_ms = (time.monotonic() - started) * 1000
    workers, starts = [], []
    for n, folder in enumerate(args.plugins):
        meta = metas[folder]
        path = archive(folder, home)
        clock = time.monotonic()
        ours_w, theirs_w = socket.socketpair()
        log = open(os.path.join(home, folder + ".log"), "w")
        worker_env = {**env, "MAUBOT_HOST_PROTOCOL": "1", "MAUBOT_HOST_PLUGIN": meta["id"],
                      "MAUBOT_HOST_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        spawn = {"id": n + 1, "method": "spawn",
                 "params": {"env": worker_env, "path": [], "cwd": home}}
        socket.send_fds(ours, [json.dumps(spawn).encode()],
                        [theirs_w.fileno(), log.fileno(), log.fileno()])
        theirs_w.close()
        while True:
            data, fds, _, _ = socket.recv_fds(ours, 65536, 1)
            for fd in fds:
                os.close(fd)
            answer = json.loads(data)
            if answer.get("method") != "exited":
                break
        if "error" in answer:
            sys.exit(f"error: no worker for {folder}: {answer['error']['message']}")
        worker = Worker(ours_w, answer["result"]["pid"], folder)
        hello = worker.receive()
        assert hello.get("method") == "hello", hello
        worker.request("load", {"path": path, "meta": meta})
        starts.append((time.monotonic() - clock) * 1000)
        database = None
        if meta.get("database"):
            file = os.path.join(home, folder + ".db")
            for p in (file, file + "-journal"):
                open(p, "w").close()
            database = {"url": f"sqlite:{file}"}
        worker.request("start", {
            "instance_id": folder,
            "client": {"user_id": "@bot:localhost", "device_id": "BENCH",
                       "homeserver": "http://127.0.0.1:9"},
            "config": "", "database": database,
            "webapp_url": f"http://127.0.0.1:9/{folder}" if meta.get("webapp") else None,
        })
        workers.append(worker)
    for worker in workers:
        worker.request("event", {"instance_id": worker.name, "event": {
            "type": "m.room.message", "room_id": "!room:localhost", "event_id": "$ping",
            "sender": "@someone:localhost", "origin_server_ts": 0,
            "content": {"msgtype": "m.text", "body": "!ping hello"},
        }})
    time.sleep(args.settle)
    own = rollup(ready["params"]["pid"])
    total = own["Pss"]
    print(f"zygote: ready after {zygote_ms:.0f} ms, PSS {own['Pss']:.1f}, RSS {own['Rss']:.1f}, "
          f"Private_Dirty {own['Private_Dirty']:.1f} MiB")
    print(f"{'plugin':12} {'start ms':>8} {'PSS':>6} {'RSS':>6} {'Private_Dirty':>13}")
    for worker, start in zip(workers, starts):
        r = rollup(worker.pid)
        total += r["Pss"]
        print(f"{worker.name:12} {start:8.1f} {r['Pss']:6.1f} {r['Rss']:6.1f} "
              f"{r['Private_Dirty']:13.1f}")
    print(f"PSS of the zygote and {len(workers)} workers: {total:.1f} MiB; "
          f"start (fork to plugin loaded) p50 {statistics.median(starts):.1f} ms")
    for worker in workers:
        worker.sock.close()
    # Read the zygote's exit reports, so that it sees the end of its socket, not a reset.
    ours.settimeout(1)
    try:
        while ours.recv(65536):
            pass
    except (TimeoutError, OSError):
        pass
    ours.close()
    zygote.wait(timeout=20)


if __name__ == "__main__":
    main()
