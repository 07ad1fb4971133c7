"""`maubot.config`: `Config`, the class of maubot's own server configuration file.

Plugins have no access to the server's configuration (under maubot-rs it is read by the server,
not by the plugin's worker); this class only lets code that imports it, e.g. for annotations,
load. A plugin's own configuration is `self.config`, of the class its `get_config_class` returns.
"""

from __future__ import annotations

from mautrix.util.config import BaseFileConfig, ConfigUpdateHelper

__all__ = ["Config"]


class Config(BaseFileConfig):
    """The server configuration file's class. It copies nothing: there is no server file here."""

    def do_update(self, helper: ConfigUpdateHelper) -> None:
        pass
