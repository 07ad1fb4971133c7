"""Test plugin that can block its worker's event loop, to test the server's timeouts.

`!hang`, or `hang_in_start: true` in the config, blocks the event loop forever (the thread
sleeps, so the worker stops answering anything, pings included). `!crash` ends the worker
process at once (exit status 3). `!alive` answers "alive", `!parent` the worker's parent's
process ID, `!pid` the worker's own.
"""

import os
import time
from typing import Type

from mautrix.util.config import BaseProxyConfig, ConfigUpdateHelper

from maubot import MessageEvent, Plugin
from maubot.handlers import command


def block_forever() -> None:
    # Deliberately synchronous: nothing else in this process runs again.
    while True:
        time.sleep(3600)


class Config(BaseProxyConfig):
    def do_update(self, helper: ConfigUpdateHelper) -> None:
        helper.copy("hang_in_start")


class BlockerBot(Plugin):
    @classmethod
    def get_config_class(cls) -> Type[BaseProxyConfig]:
        return Config

    async def start(self) -> None:
        self.config.load_and_update()
        if self.config["hang_in_start"]:
            block_forever()

    @command.new("hang", help="Block the event loop forever")
    async def hang(self, evt: MessageEvent) -> None:
        block_forever()

    @command.new("crash", help="End the worker process")
    async def crash(self, evt: MessageEvent) -> None:
        os._exit(3)

    @command.new("alive", help="Answer alive")
    async def alive(self, evt: MessageEvent) -> None:
        await evt.reply("alive")

    @command.new("parent", help="The worker's parent process")
    async def parent(self, evt: MessageEvent) -> None:
        await evt.reply(f"parent: {os.getppid()}")

    @command.new("pid", help="The worker's process")
    async def pid(self, evt: MessageEvent) -> None:
        await evt.reply(f"pid: {os.getpid()}")
