"""maubot's plugin API for maubot-rs: a clean-room implementation on top of mautrix.

Plugins written for maubot 0.6 import this package unmodified (`from maubot import Plugin,
MessageEvent`, `from maubot.handlers import command, event, web`).
"""

import importlib
from typing import Any

from .__meta__ import __version__
from .matrix import MaubotMatrixClient as Client
from .matrix import MaubotMessageEvent as MessageEvent
from .plugin_base import Plugin

__all__ = ["__version__", "Client", "MessageEvent", "Plugin", "PluginWebApp"]


def __getattr__(name: str) -> Any:
    # `PluginWebApp` pulls in aiohttp's whole server side; only plugins with a web app need it.
    if name in ("PluginWebApp", "plugin_server"):
        plugin_server = importlib.import_module(".plugin_server", __name__)
        return plugin_server.PluginWebApp if name == "PluginWebApp" else plugin_server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
