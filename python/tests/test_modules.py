"""maubot's module layout: the submodules plugins import from, with the names they take."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import textwrap
import unittest

from mautrix.util.config import BaseFileConfig

# The names plugins (and their type hints) take from each of maubot's modules.
NAMES = {
    "maubot": ["Plugin", "MessageEvent", "Client", "PluginWebApp", "__version__"],
    "maubot.__meta__": ["__version__"],
    "maubot.client": ["Client", "MaubotMatrixClient"],
    "maubot.matrix": [
        "MaubotMatrixClient",
        "MaubotMessageEvent",
        "parse_formatted",
        "MaubotHTMLParser",
        "HumanReadableString",
    ],
    "maubot.loader": [
        "PluginMeta",
        "BasePluginLoader",
        "PluginLoader",
        "ZippedPluginLoader",
        "DatabaseType",
        "IDConflictError",
        "MaubotZipImportError",
        "PluginClass",
    ],
    "maubot.handlers": ["command", "event", "web"],
    "maubot.handlers.command": [
        "new",
        "argument",
        "passive",
        "Argument",
        "ArgumentSyntaxError",
        "SimpleArgument",
        "RegexArgument",
        "CustomArgument",
        "CommandHandler",
        "CommandHandlerFunc",
        "CommandHandlerDecorator",
        "PassiveCommandHandlerDecorator",
        "PrefixType",
        "AliasesType",
    ],
    "maubot.handlers.event": ["on", "off", "EventHandler", "EventHandlerDecorator"],
    "maubot.handlers.web": [
        "get",
        "post",
        "put",
        "patch",
        "delete",
        "head",
        "options",
        "view",
        "handle",
        "WebHandler",
        "WebHandlerDecorator",
    ],
    "maubot.plugin_base": ["Plugin", "BasicScheduler"],
    "maubot.plugin_server": ["PluginWebApp"],
    "maubot.scheduler": ["BasicScheduler"],
    "maubot.instance": ["PluginInstance"],
    "maubot.config": ["Config"],
    "maubot.lib.zipimport": ["zipimporter", "ZipImportError"],
}


class ModuleLayoutTest(unittest.TestCase):
    def test_every_module_and_name_resolves(self) -> None:
        for module_name, names in NAMES.items():
            with self.subTest(module=module_name):
                module = importlib.import_module(module_name)
                for name in names:
                    self.assertTrue(hasattr(module, name), f"{module_name}.{name}")

    def test_reexports_are_the_real_objects(self) -> None:
        import maubot
        from maubot import client, handlers, loader, matrix, plugin_base, plugin_server, scheduler

        self.assertIs(client.MaubotMatrixClient, matrix.MaubotMatrixClient)
        self.assertIs(maubot.Client, matrix.MaubotMatrixClient)
        self.assertIs(maubot.MessageEvent, matrix.MaubotMessageEvent)
        self.assertIs(maubot.PluginWebApp, plugin_server.PluginWebApp)
        self.assertIs(maubot.plugin_server, plugin_server)
        self.assertIs(plugin_base.BasicScheduler, scheduler.BasicScheduler)
        self.assertIs(handlers.command, importlib.import_module("maubot.handlers.command"))
        self.assertTrue(issubclass(loader.ZippedPluginLoader, loader.PluginLoader))
        self.assertTrue(issubclass(loader.PluginLoader, loader.BasePluginLoader))

    def test_server_side_registries_are_empty(self) -> None:
        from maubot.client import Client
        from maubot.instance import PluginInstance
        from maubot.loader import PluginLoader

        self.assertEqual(Client.cache, {})
        self.assertEqual(PluginInstance.cache, {})
        self.assertEqual(PluginLoader.id_cache, {})
        with self.assertRaises(KeyError):
            PluginLoader.find("xyz.maubot.echo")

        async def lookups() -> tuple:
            return (
                await Client.get("@bot:example.org"),
                [client async for client in Client.all()],
                await PluginInstance.get("echo"),
                [instance async for instance in PluginInstance.all()],
            )

        self.assertEqual(asyncio.run(lookups()), (None, [], None, []))

    def test_server_config_class(self) -> None:
        from maubot.config import Config

        self.assertTrue(issubclass(Config, BaseFileConfig))


# A plugin module importing from maubot the way public plugins do, its names used at import
# time (annotations evaluated, base classes, a handler class).
PLUGIN_SOURCE = textwrap.dedent(
    """
    from typing import Optional, Type

    from mautrix.types import EventType
    from mautrix.util.config import BaseProxyConfig

    from maubot import MessageEvent, Plugin, __version__
    from maubot.client import Client, MaubotMatrixClient
    from maubot.config import Config
    from maubot.handlers import command, event, web
    from maubot.handlers.command import Argument, ArgumentSyntaxError, CommandHandler
    from maubot.handlers.event import on
    from maubot.instance import PluginInstance
    from maubot.loader import BasePluginLoader, PluginLoader, PluginMeta
    from maubot.matrix import MaubotMessageEvent, parse_formatted
    from maubot.plugin_base import BasicScheduler
    from maubot.plugin_server import PluginWebApp


    class Templates:
        def __init__(self, loader: BasePluginLoader, client: MaubotMatrixClient) -> None:
            self.loader = loader
            self.client = client


    class Word(Argument):
        def match(self, val: str, **kwargs) -> tuple:
            if not val:
                raise ArgumentSyntaxError("A word, please")
            return "", val


    class Bot(Plugin):
        instance: Optional[PluginInstance] = None
        server_client: Optional[Client] = None

        @classmethod
        def get_config_class(cls) -> Type[BaseProxyConfig]:
            return BaseProxyConfig

        @command.new("hello")
        @Word("word")
        async def hello(self, evt: MaubotMessageEvent, word: str) -> None:
            await evt.reply(f"hello {word}")

        @on(EventType.ROOM_MEMBER)
        async def member(self, evt) -> None:
            pass

        @web.get("/health")
        async def health(self, request):
            return [loader.to_dict() for loader in PluginLoader.id_cache.values()]


    assert isinstance(Bot.hello, CommandHandler)
    assert __version__ == "0.6.0"
    print("loaded")
    """
)


class PluginImportTest(unittest.TestCase):
    def test_a_plugin_importing_maubots_submodules_loads(self) -> None:
        # A fresh interpreter: the imports must work without any other test having run first.
        result = subprocess.run(
            [sys.executable, "-c", PLUGIN_SOURCE],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "loaded")


if __name__ == "__main__":
    unittest.main()
