"""The instance loggers' level comes from the server (MAUBOT_HOST_LOG_LEVEL)."""

from __future__ import annotations

import logging
import os
import unittest
from unittest import mock

from maubot_host import logs


class InstanceLevelTest(unittest.TestCase):
    def level_with(self, value: str | None) -> int:
        env = {k: v for k, v in os.environ.items() if k != "MAUBOT_HOST_LOG_LEVEL"}
        if value is not None:
            env["MAUBOT_HOST_LOG_LEVEL"] = value
        with mock.patch.dict(os.environ, env, clear=True):
            return logs.instance_level()

    def test_server_levels(self) -> None:
        self.assertEqual(self.level_with("DEBUG"), logging.DEBUG)
        self.assertEqual(self.level_with("INFO"), logging.INFO)
        self.assertEqual(self.level_with("WARNING"), logging.WARNING)
        self.assertEqual(self.level_with("ERROR"), logging.ERROR)

    def test_off_drops_even_critical(self) -> None:
        self.assertGreater(self.level_with("OFF"), logging.CRITICAL)

    def test_unset_or_unknown_sends_everything(self) -> None:
        self.assertEqual(self.level_with(None), logging.DEBUG)
        self.assertEqual(self.level_with("LOUD"), logging.DEBUG)


if __name__ == "__main__":
    unittest.main()
