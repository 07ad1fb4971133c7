"""maubot's plugin environment: what maubot 0.6 installs with its `all` extras (less python-olm)
is importable, since plugins import these without declaring them."""

from __future__ import annotations

import importlib
import unittest

# Import names of maubot's own dependencies and extras.
MAUBOT_ENVIRONMENT = [
    "mautrix",
    "aiohttp",
    "yarl",
    "asyncpg",
    "aiosqlite",
    "commonmark",
    "ruamel.yaml",
    "attr",
    "bcrypt",
    "packaging",
    "click",
    "colorama",
    "questionary",
    "jinja2",
    "setuptools",
    "base58",
    "Crypto",
    "unpaddedbase64",
    "sqlalchemy",
    "pytest",
    "pytest_asyncio",
]


class EnvironmentTest(unittest.TestCase):
    def test_maubots_packages_import(self) -> None:
        for name in MAUBOT_ENVIRONMENT:
            with self.subTest(name):
                importlib.import_module(name)

    def test_legacy_databases_get_sqlalchemy_1_3(self) -> None:
        import sqlalchemy

        self.assertTrue(sqlalchemy.__version__.startswith("1.3."), sqlalchemy.__version__)


if __name__ == "__main__":
    unittest.main()
