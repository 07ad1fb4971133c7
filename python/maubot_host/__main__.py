"""`python -m maubot_host`: the worker, run by maubot-rs with a Unix socket as standard input."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

# Web apps' responses are collected, not written to a socket (maubot_host.web): a FileResponse
# must read its file in chunks rather than sendfile() to a transport it does not have.
os.environ.setdefault("AIOHTTP_NOSENDFILE", "1")

# mautrix makes TraceLogger the logger class on import; loggers created before would lack trace().
import mautrix.util.logging  # noqa: E402,F401

from .worker import run  # noqa: E402


def main() -> None:
    try:
        sock = socket.socket(fileno=0)
    except OSError as e:
        print(
            f"error: standard input is not a socket ({e})\n"
            "hint: maubot_host is started by maubot-rs, which talks to it over a Unix socket",
            file=sys.stderr,
        )
        sys.exit(2)
    if sock.family != socket.AF_UNIX:
        print("error: standard input is not a Unix socket", file=sys.stderr)
        sys.exit(2)
    # Plugins must not read the protocol's socket as if it were a terminal.
    sys.stdin = open(os.devnull)
    code = asyncio.run(run(sock))
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads a plugin left running (non-daemon) must not keep the worker alive.
    os._exit(code)


if __name__ == "__main__":
    main()
