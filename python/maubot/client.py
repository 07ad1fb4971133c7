"""`maubot.client`: the Matrix client class plugins annotate with, and the bot accounts' `Client`.

In maubot this module holds the server's bot accounts. Under maubot-rs the accounts live in the
server, not in the plugin's worker, so `Client` here only lets plugins that import it (for
annotations, or to peek at `Client.cache`) load: its `cache` is always empty.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, ClassVar

from .matrix import MaubotMatrixClient

__all__ = ["Client", "MaubotMatrixClient"]


class Client:
    """A bot account of the server. None is visible from a plugin: `cache` stays empty."""

    cache: ClassVar[dict[str, Client]] = {}

    id: str
    homeserver: str
    client: MaubotMatrixClient

    @classmethod
    async def get(cls, user_id: str, **_: Any) -> Client | None:
        return cls.cache.get(user_id)

    @classmethod
    async def all(cls) -> AsyncGenerator[Client, None]:
        for value in list(cls.cache.values()):
            yield value
