"""Instance databases (`maubot_host.database`): each kind of `database_type` on each engine.

The SQLite tests use temporary files. The PostgreSQL tests use the server at
$TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres, trust authentication),
each in a throwaway schema they create and drop; they skip when it is not reachable. The legacy
tests need SQLAlchemy 1.3 (`pip install 'SQLAlchemy>1,<1.4'`), and those on PostgreSQL pg8000.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import ssl
import sys
import tempfile
import unittest
import uuid
from typing import Any
from unittest import mock

from yarl import URL

from maubot.loader import DatabaseType
from maubot_host.database import LegacyDatabase, PluginDatabase, open_database
from maubot_host.rpc import RPCError

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
HAS_SQLALCHEMY = importlib.util.find_spec("sqlalchemy") is not None
HAS_PG8000 = importlib.util.find_spec("pg8000") is not None
NO_SQLALCHEMY = "SQLAlchemy is not installed (pip install 'SQLAlchemy>1,<1.4')"
NO_PG8000 = "pg8000 is not installed (pip install pg8000)"


def postgres_reachable() -> str | None:
    """Why the PostgreSQL tests cannot run, or None if they can."""
    url = URL(POSTGRES_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2):
            return None
    except OSError as e:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({e}); set TEST_POSTGRES_URL"


POSTGRES_MISSING = postgres_reachable()


def upgrade_table() -> Any:
    from mautrix.util.async_db import UpgradeTable

    table = UpgradeTable()

    @table.register(description="Notes")
    async def upgrade_v1(conn: Any) -> None:
        await conn.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")

    return table


class SQLiteFileMixin(unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.path = os.path.join(self.dir, "inst1.db")

    def assert_no_wal(self) -> None:
        files = os.listdir(self.dir)
        self.assertNotIn("inst1.db-wal", files)
        self.assertNotIn("inst1.db-shm", files)


class PostgresSchemaMixin(unittest.IsolatedAsyncioTestCase):
    """A throwaway schema, created before the test (as the server does) and dropped after."""

    # Upper case, `-` and `.`: the schema must be quoted to be found.
    schema_prefix = "mbp_h13-Test."

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        if POSTGRES_MISSING:
            self.skipTest(POSTGRES_MISSING)
        # Legacy engines are synchronous and used on the event loop, as plugins use them: over
        # the network that takes longer than asyncio's debug mode (on in these tests) likes.
        asyncio.get_running_loop().slow_callback_duration = 1.0
        import asyncpg

        self.schema = f"{self.schema_prefix}{uuid.uuid4().hex[:8]}"
        self.admin = await asyncpg.connect(POSTGRES_URL)
        await self.admin.execute(f'CREATE SCHEMA "{self.schema}"')

    async def asyncTearDown(self) -> None:
        await self.admin.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        await self.admin.close()
        await super().asyncTearDown()

    def params(self, max_conns: int = 2) -> dict[str, Any]:
        return {"url": POSTGRES_URL, "schema": self.schema, "max_conns": max_conns}

    async def tables(self, schema: str) -> list[str]:
        rows = await self.admin.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
            " ORDER BY table_name",
            schema,
        )
        return [row["table_name"] for row in rows]


# ------------------------------------------------------------------------------------------------
# database_type: asyncpg


class AsyncOnSQLiteTest(SQLiteFileMixin, unittest.IsolatedAsyncioTestCase):
    async def test_truncate_journal_and_upgrade_table(self) -> None:
        db = await open_database(
            "inst1", DatabaseType.ASYNCPG, {"url": f"sqlite:{self.path}"}, upgrade_table()
        )
        try:
            from mautrix.util.async_db import Database

            self.assertIsInstance(db.value, Database)
            self.assertEqual(await db.value.fetchval("PRAGMA journal_mode"), "truncate")
            await db.value.execute("INSERT INTO note (text) VALUES ($1)", "hello")
            self.assertEqual(await db.value.fetchval("SELECT text FROM note"), "hello")
            self.assertEqual(await db.value.fetchval("SELECT version FROM version"), 1)
            self.assert_no_wal()
        finally:
            await db.stop()
        self.assertTrue(os.path.exists(self.path))
        self.assert_no_wal()

    async def test_data_survives_a_restart(self) -> None:
        params = {"url": f"sqlite:{self.path}"}
        db = await open_database("inst1", DatabaseType.ASYNCPG, params, upgrade_table())
        await db.value.execute("INSERT INTO note (text) VALUES ('kept')")
        await db.stop()
        db = await open_database("inst1", DatabaseType.ASYNCPG, params, upgrade_table())
        try:
            self.assertEqual(await db.value.fetchval("SELECT text FROM note"), "kept")
        finally:
            await db.stop()


class AsyncOnPostgresTest(PostgresSchemaMixin):
    async def test_schema_is_the_search_path_of_every_connection(self) -> None:
        db = await open_database("inst1", DatabaseType.ASYNCPG, self.params(), upgrade_table())
        try:
            database = db.value
            self.assertEqual(database.pool.get_max_size(), 2)
            # asyncpg's internal client error must not end the worker.
            self.assertFalse(database._exit_on_ice)
            # The plugin's tables and the upgrade table's `version` are in the schema.
            self.assertEqual(await self.tables(self.schema), ["note", "version"])
            self.assertEqual(await database.fetchval("SELECT version FROM version"), 1)
            await database.execute("INSERT INTO note (id, text) VALUES (1, $1)", "hello")

            # Both connections of the pool, held at once, then again after their release
            # (asyncpg resets released connections with RESET ALL).
            for _ in range(2):
                async with database.acquire_direct() as a, database.acquire_direct() as b:
                    for conn in (a, b):
                        self.assertEqual(
                            await conn.fetchval("SELECT current_schema()"), self.schema
                        )
                        self.assertEqual(await conn.fetchval("SELECT text FROM note"), "hello")
        finally:
            await db.stop()

    async def test_stop_closes_the_pool(self) -> None:
        db = await open_database("inst1", DatabaseType.ASYNCPG, self.params(), upgrade_table())
        pool = db.value.pool
        await db.stop()
        self.assertTrue(pool._closed)

    async def test_failed_upgrade_fails_the_start(self) -> None:
        from mautrix.util.async_db import UpgradeTable

        table = UpgradeTable()

        @table.register(description="Broken")
        async def upgrade_v1(conn: Any) -> None:
            await conn.execute("CREATE TABLE broken (")

        with self.assertRaises(RPCError) as cm, self.assertLogs("maubot.instance.inst1", "ERROR"):
            await open_database("inst1", DatabaseType.ASYNCPG, self.params(), table)
        self.assertTrue(cm.exception.message.startswith("Failed to start database: "))


# ------------------------------------------------------------------------------------------------
# database_type: sqlalchemy (legacy)


def notes_table(metadata: Any) -> Any:
    import sqlalchemy as sql

    return sql.Table(
        "note",
        metadata,
        sql.Column("id", sql.Integer, primary_key=True),
        sql.Column("text", sql.Text, nullable=False),
    )


class LegacyUseMixin(unittest.TestCase):
    """What legacy plugins do with their engine, on SQLite and PostgreSQL alike."""

    def use_engine(self, engine: Any) -> None:
        import sqlalchemy as sql
        from sqlalchemy.ext.declarative import declarative_base
        from sqlalchemy.orm import sessionmaker

        # Core: Table.create, create_all, insert/select through engine.execute.
        metadata = sql.MetaData()
        note = notes_table(metadata)
        note.create(engine)
        tag = sql.Table("tag", metadata, sql.Column("name", sql.String(255), primary_key=True))
        metadata.create_all(engine)
        engine.execute(note.insert().values(text="first"))
        engine.execute(note.insert(), text="second")
        rows = engine.execute(sql.select([note.c.text]).order_by(note.c.id)).fetchall()
        self.assertEqual([row[0] for row in rows], ["first", "second"])
        self.assertEqual(
            engine.execute(note.select().where(note.c.id == 2)).first()["text"], "second"
        )
        self.assertTrue(engine.has_table("tag"))
        self.assertEqual(sorted(engine.table_names()), ["note", "tag"])
        self.assertEqual(engine.execute(sql.func.count(tag.c.name)).scalar(), 0)

        # Declarative ORM with sessions.
        Base = declarative_base()

        class Karma(Base):
            __tablename__ = "karma"
            name = sql.Column(sql.String(255), primary_key=True)
            value = sql.Column(sql.Integer, nullable=False, default=0)

        Base.metadata.create_all(engine)
        session = sessionmaker(bind=engine)()
        session.add(Karma(name="alice", value=1))
        session.commit()
        session.query(Karma).filter(Karma.name == "alice").one().value += 2
        session.commit()
        session.close()
        self.assertEqual(
            engine.execute(sql.text("SELECT value FROM karma WHERE name = :n"), n="alice").scalar(),
            3,
        )


@unittest.skipUnless(HAS_SQLALCHEMY, NO_SQLALCHEMY)
class LegacyOnSQLiteTest(SQLiteFileMixin, LegacyUseMixin, unittest.IsolatedAsyncioTestCase):
    async def open(self) -> PluginDatabase:
        return await open_database(
            "inst1", DatabaseType.SQLALCHEMY, {"url": f"sqlite:{self.path}"}, None
        )

    async def test_engine_on_the_instance_file(self) -> None:
        from sqlalchemy.engine import Engine

        db = await self.open()
        try:
            self.assertIsInstance(db, LegacyDatabase)
            self.assertIsInstance(db.value, Engine)
            self.assertEqual(db.value.url.database, self.path)
            self.use_engine(db.value)
            self.assertTrue(os.path.exists(self.path))
        finally:
            await db.stop()
        self.assert_no_wal()

    async def test_every_connection_uses_a_truncated_journal(self) -> None:
        db = await self.open()
        try:
            engine = db.value
            with engine.connect() as a, engine.connect() as b:
                for conn in (a, b):
                    self.assertEqual(conn.execute("PRAGMA journal_mode").scalar(), "truncate")
            # A plain `engine.execute` takes a connection of its own.
            self.assertEqual(engine.execute("PRAGMA journal_mode").scalar(), "truncate")
            engine.execute("CREATE TABLE t (a INTEGER)")
            engine.execute("INSERT INTO t VALUES (1)")
            # The journal is kept (truncated) next to the file; no WAL files appear.
            self.assertIn("inst1.db-journal", os.listdir(self.dir))
            self.assert_no_wal()
        finally:
            await db.stop()

    async def test_data_survives_a_restart(self) -> None:
        import sqlalchemy as sql

        db = await self.open()
        note = notes_table(sql.MetaData())
        note.create(db.value)
        db.value.execute(note.insert().values(text="kept"))
        await db.stop()
        db = await self.open()
        try:
            self.assertEqual(db.value.execute(sql.select([note.c.text])).scalar(), "kept")
        finally:
            await db.stop()

    async def test_database_type_default_is_legacy(self) -> None:
        from maubot.loader import PluginMeta

        meta = PluginMeta.deserialize(
            {"id": "t", "version": "1.0", "modules": ["m"], "main_class": "C", "database": True}
        )
        db = await open_database("inst1", meta.database_type, {"url": f"sqlite:{self.path}"}, None)
        try:
            self.assertIsInstance(db, LegacyDatabase)
        finally:
            await db.stop()

    async def test_an_unopenable_file_fails_the_start(self) -> None:
        params = {"url": f"sqlite:{self.dir}/no/such/folder/inst1.db"}
        with self.assertRaises(RPCError) as cm, self.assertLogs("maubot.instance.inst1", "ERROR"):
            await open_database("inst1", DatabaseType.SQLALCHEMY, params, None)
        self.assertIn("Failed to start database: OperationalError", cm.exception.message)


@unittest.skipUnless(HAS_SQLALCHEMY, NO_SQLALCHEMY)
@unittest.skipUnless(HAS_PG8000, NO_PG8000)
class LegacyOnPostgresTest(PostgresSchemaMixin, LegacyUseMixin):
    async def test_engine_in_the_schema(self) -> None:
        from sqlalchemy.engine import Engine

        db = await open_database("inst1", DatabaseType.SQLALCHEMY, self.params(), None)
        try:
            engine = db.value
            self.assertIsInstance(engine, Engine)
            self.assertEqual(engine.url.drivername, "postgresql+pg8000")
            # SQLAlchemy looked at the server with the schema in place.
            self.assertEqual(engine.dialect.default_schema_name, self.schema)
            await asyncio.get_running_loop().run_in_executor(None, self.use_engine, engine)
            self.assertEqual(await self.tables(self.schema), ["karma", "note", "tag"])
            self.assertEqual(await self.tables("public"), [])
        finally:
            await db.stop()

    async def test_pool_of_max_conns_all_in_the_schema(self) -> None:
        db = await open_database("inst1", DatabaseType.SQLALCHEMY, self.params(3), None)
        engine = db.value
        pool = engine.pool
        try:
            self.assertEqual(engine.pool.size(), 3)
            conns = [engine.connect() for _ in range(3)]
            try:
                for conn in conns:
                    self.assertEqual(conn.execute("SELECT current_schema()").scalar(), self.schema)
                    # A rolled back transaction keeps the connection's schema.
                    with conn.begin() as txn:
                        txn.rollback()
                    self.assertEqual(conn.execute("SELECT current_schema()").scalar(), self.schema)
            finally:
                for conn in conns:
                    conn.close()
            self.assertEqual(engine.pool.checkedin(), 3)
        finally:
            await db.stop()
        # Disposed: the pool no longer holds connections.
        self.assertEqual(pool.checkedin(), 0)


@unittest.skipUnless(HAS_SQLALCHEMY, NO_SQLALCHEMY)
@unittest.skipUnless(HAS_PG8000, NO_PG8000)
class LegacyPostgresURLTest(unittest.TestCase):
    """How a libpq-style URL becomes pg8000's connection arguments (nothing is connected)."""

    def engine_args(self, url: str, schema: str | None = "mbp_x") -> tuple[Any, dict[str, Any]]:
        import sqlalchemy

        from maubot_host.database import _Location, _postgres_engine

        captured: dict[str, Any] = {}
        real = sqlalchemy.create_engine

        def create_engine(sa_url: Any, **kwargs: Any) -> Any:
            captured.update(kwargs)
            return real(sa_url, **kwargs)

        with mock.patch.object(sqlalchemy, "create_engine", create_engine):
            engine = _postgres_engine(sqlalchemy, _Location(URL(url), schema, 4))
        self.addCleanup(engine.dispose)
        return engine.url, captured

    def test_host_port_user_password_database(self) -> None:
        url, kwargs = self.engine_args("postgres://bot:p%40ss@db.example.org:5433/maubot")
        self.assertEqual(
            (url.drivername, url.username, url.password, url.host, url.port, url.database),
            ("postgresql+pg8000", "bot", "p@ss", "db.example.org", 5433, "maubot"),
        )
        self.assertEqual((kwargs["pool_size"], kwargs["max_overflow"]), (4, 0))
        self.assertEqual(kwargs["connect_args"], {})

    def test_unix_socket_tls_and_application_name(self) -> None:
        url, kwargs = self.engine_args(
            "postgresql://bot@/maubot?host=/run/postgresql&sslmode=require&application_name=mb"
        )
        self.assertIsNone(url.host)
        args = kwargs["connect_args"]
        self.assertEqual(args["unix_sock"], "/run/postgresql/.s.PGSQL.5432")
        self.assertEqual(args["application_name"], "mb")
        self.assertEqual(args["ssl_context"].verify_mode, ssl.CERT_NONE)
        _, kwargs = self.engine_args("postgres://bot@db/maubot?sslmode=verify-full")
        self.assertTrue(kwargs["connect_args"]["ssl_context"].check_hostname)
        _, kwargs = self.engine_args("postgres://bot@db/maubot?sslmode=prefer")
        self.assertNotIn("ssl_context", kwargs["connect_args"])
        with self.assertRaises(RPCError):
            self.engine_args("postgres://bot@db/maubot?sslmode=sometimes")


@unittest.skipUnless(HAS_SQLALCHEMY, NO_SQLALCHEMY)
class LegacyMissingPackagesTest(unittest.IsolatedAsyncioTestCase):
    async def test_without_pg8000_the_error_names_the_package(self) -> None:
        params = {"url": POSTGRES_URL, "schema": "mbp_x", "max_conns": 1}
        with mock.patch.dict(sys.modules, {"pg8000": None}):
            with self.assertRaises(RPCError) as cm:
                await open_database("inst1", DatabaseType.SQLALCHEMY, params, None)
        self.assertIn("needs the Python package pg8000", cm.exception.message)
        # As a failed import words it, so the server can tell which package to install.
        self.assertIn("No module named 'pg8000'", cm.exception.message)

    async def test_without_sqlalchemy_the_error_names_the_package(self) -> None:
        with mock.patch.dict(sys.modules, {"sqlalchemy": None}):
            with self.assertRaises(RPCError) as cm:
                await open_database("inst1", DatabaseType.SQLALCHEMY, {"url": "sqlite:/x.db"}, None)
        self.assertIn("needs the Python package SQLAlchemy>1,<1.4", cm.exception.message)
        self.assertIn("No module named 'sqlalchemy'", cm.exception.message)


# ------------------------------------------------------------------------------------------------
# Malformed params


class ParamsTest(unittest.IsolatedAsyncioTestCase):
    async def error(self, db_type: DatabaseType, params: Any) -> str:
        with self.assertRaises(RPCError) as cm:
            await open_database("inst1", db_type, params, None)
        return cm.exception.message

    async def test_no_database_given(self) -> None:
        for params in (None, {}, {"url": ""}, "sqlite:/x.db"):
            self.assertEqual(
                await self.error(DatabaseType.ASYNCPG, params),
                "The plugin needs a database, but the server gave none",
            )

    async def test_unknown_database_type(self) -> None:
        self.assertEqual(
            await self.error(DatabaseType("mongodb"), {"url": "sqlite:/x.db"}),
            "Unknown database_type mongodb in maubot.yaml",
        )

    async def test_unknown_scheme(self) -> None:
        self.assertEqual(
            await self.error(DatabaseType.ASYNCPG, {"url": "mysql://db/x"}),
            "Unsupported database URL scheme 'mysql'",
        )

    async def test_bad_max_conns_and_schema(self) -> None:
        for max_conns in (0, -1, "3", True, 1.5):
            self.assertEqual(
                await self.error(
                    DatabaseType.ASYNCPG,
                    {"url": POSTGRES_URL, "schema": "mbp_x", "max_conns": max_conns},
                ),
                "database.max_conns must be a positive integer",
            )
        self.assertEqual(
            await self.error(DatabaseType.ASYNCPG, {"url": POSTGRES_URL, "schema": ""}),
            "database.schema must be a non-empty string",
        )


if __name__ == "__main__":
    unittest.main()
