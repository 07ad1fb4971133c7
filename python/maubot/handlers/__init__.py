"""The decorators plugins use to declare their handlers: ``command``, ``event`` and ``web``."""

from . import command, event, web

__all__ = ["command", "event", "web"]
