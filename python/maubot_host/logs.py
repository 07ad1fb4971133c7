"""Log records go to the server as `log` notifications.

Instance loggers (`maubot.instance.<id>` and their children) send what the server would log for
them, from `MAUBOT_HOST_LOG_LEVEL` up (DEBUG if unset): a record the server drops is not worth
formatting and sending. Every other logger (mautrix, aiohttp, asyncio, a plugin's own) sends
WARNING and up.

Each record names the instance it belongs to, if any: the instance whose work was running when
it was logged (the worker sets `current_instance` for each request about an instance, and the
tasks that work creates inherit it), else the instance whose logger logged it. The server files
it under that instance's logger, and only if the instance runs in this worker.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading

from .rpc import Connection

INSTANCE_LOGGER = "maubot.instance"
# Loggers of one instance, by the prefix of their names.
_INSTANCE_PREFIXES = ("maubot.instance.", "maubot.instance_db.")

current_instance: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "maubot_host_current_instance", default=None
)
# The instances this worker runs, for records logged outside their work.
known_instances: set[str] = set()


def instance_of(logger_name: str) -> str | None:
    """The instance a record logged now under `logger_name` belongs to."""
    instance = current_instance.get()
    if instance is not None:
        return instance
    best: str | None = None
    for prefix in _INSTANCE_PREFIXES:
        if not logger_name.startswith(prefix):
            continue
        rest = logger_name[len(prefix) :]
        for candidate in known_instances:
            # IDs may hold dots: the longest ID the name starts with wins.
            if (rest == candidate or rest.startswith(candidate + ".")) and len(candidate) > len(
                best or ""
            ):
                best = candidate
    return best


def _level_name(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


class RPCLogHandler(logging.Handler):
    def __init__(self, conn: Connection) -> None:
        super().__init__(level=logging.DEBUG)
        self.conn = conn
        self._emitting = threading.local()
        self._fallback = logging.StreamHandler(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        # A failure while sending must not log its way back here.
        if getattr(self._emitting, "active", False):
            return
        self._emitting.active = True
        try:
            if self.conn.closed:
                self._fallback.emit(record)
                return
            exception = None
            if record.exc_info:
                exception = logging.Formatter().formatException(record.exc_info)
            elif record.exc_text:
                exception = record.exc_text
            self.conn.notify(
                "log",
                {
                    "instance_id": instance_of(record.name),
                    "logger": record.name,
                    "level": _level_name(record.levelno),
                    "message": record.getMessage(),
                    "exception": exception,
                },
            )
        except Exception:
            self.handleError(record)
        finally:
            self._emitting.active = False


def instance_level() -> int:
    """The level the server logs instance records from (`OFF`: none)."""
    name = os.environ.get("MAUBOT_HOST_LOG_LEVEL", "DEBUG").upper()
    if name == "OFF":
        return logging.CRITICAL + 1
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.DEBUG


def setup(conn: Connection) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RPCLogHandler(conn))
    root.setLevel(logging.WARNING)
    logging.getLogger(INSTANCE_LOGGER).setLevel(instance_level())
    logging.captureWarnings(True)
