"""Test plugin: `!greeting` answers the configured greeting."""

from typing import Type

from mautrix.util.config import BaseProxyConfig, ConfigUpdateHelper

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class Config(BaseProxyConfig):
    def do_update(self, helper: ConfigUpdateHelper) -> None:
        helper.copy("greeting")


class ConfiguredBot(Plugin):
    # on_external_config_update is maubot's default: reload the config.

    @classmethod
    def get_config_class(cls) -> Type[BaseProxyConfig]:
        return Config

    async def start(self) -> None:
        self.config.load_and_update()

    @command.new("greeting", help="Say the configured greeting")
    async def greeting(self, evt: MessageEvent) -> None:
        await evt.reply(self.config["greeting"])
