"""Test plugin whose start always fails."""

from maubot import Plugin


class FailStartBot(Plugin):
    async def start(self) -> None:
        raise RuntimeError("deliberate failure in start")
