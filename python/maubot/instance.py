"""`maubot.instance`: `PluginInstance`, the type plugins annotate server-side instances with.

In maubot it is the server's record of an instance. Under maubot-rs that record lives in the
server; here the class only lets plugins that import it load, and its `cache` stays empty. A
plugin's own instance is the `Plugin` object itself (`self.id`, `self.config`, ...).
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, ClassVar

__all__ = ["PluginInstance"]


class PluginInstance:
    """A plugin instance as the server records it. None is visible from a plugin."""

    cache: ClassVar[dict[str, PluginInstance]] = {}
    plugin_directories: ClassVar[list[str]] = []

    id: str
    type: str
    enabled: bool
    primary_user: str

    @classmethod
    async def get(cls, instance_id: str, **_: Any) -> PluginInstance | None:
        return cls.cache.get(instance_id)

    @classmethod
    async def all(cls) -> AsyncGenerator[PluginInstance, None]:
        for value in list(cls.cache.values()):
            yield value
