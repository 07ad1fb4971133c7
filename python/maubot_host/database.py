"""An instance's database: what the plugin gets as `self.database`, made from `start`'s params.

`maubot.yaml` chooses the kind (`database_type`), the server chooses where it lives (`url`):

* `database_type: asyncpg`: mautrix's `Database`. On SQLite (`sqlite:/abs/path.db`) it runs with
  `journal_mode = TRUNCATE`; on PostgreSQL (`postgres://...`) it is an asyncpg pool of at most
  `max_conns` connections whose every connection has the instance's `schema` as `search_path`,
  so the plugin's tables and its upgrade table's `version` table live in that schema.
* `database_type: sqlalchemy`, the default: a legacy synchronous SQLAlchemy `Engine` (maubot pins
  SQLAlchemy 1.3). On SQLite every new connection gets `journal_mode = TRUNCATE`; on PostgreSQL
  (a maubot-rs extension: maubot keeps these on SQLite) it uses the pure-Python pg8000 driver,
  with the schema as `search_path` and a pool of at most `max_conns` connections.

TRUNCATE rather than WAL: the worker's sandbox grants the database file and its `-journal`
file, not their folder, so WAL's `-wal` and `-shm` files could not be created.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import traceback
from typing import TYPE_CHECKING, Any

from yarl import URL

from maubot.loader import DatabaseType

from .rpc import RPCError

if TYPE_CHECKING:
    from mautrix.util.async_db import Database, UpgradeTable
    from sqlalchemy.engine import Engine

SQLITE_SCHEMES = ("sqlite", "sqlite3")
POSTGRES_SCHEMES = ("postgres", "postgresql")
SQLITE_JOURNAL_MODE = "PRAGMA journal_mode = TRUNCATE"
# asyncpg's own default pool size, for a server that does not say.
DEFAULT_MAX_CONNS = 10


class PluginDatabase:
    """An open instance database; `value` is the plugin's `self.database`."""

    value: Any

    async def stop(self) -> None:
        raise NotImplementedError


class AsyncDatabase(PluginDatabase):
    """`database_type: asyncpg`: mautrix's `Database`."""

    def __init__(self, database: Database) -> None:
        self.value = database

    async def stop(self) -> None:
        await self.value.stop()


class LegacyDatabase(PluginDatabase):
    """`database_type: sqlalchemy`: a SQLAlchemy `Engine`, disposed of at stop."""

    def __init__(self, engine: Engine) -> None:
        self.value = engine

    async def stop(self) -> None:
        self.value.dispose()


async def open_database(
    instance_id: str,
    db_type: DatabaseType,
    params: dict[str, Any] | None,
    upgrade_table: UpgradeTable | None,
) -> PluginDatabase:
    """Open the instance's database. Errors are `RPCError`s worded for the server's logs."""
    log = logging.getLogger(f"maubot.instance.{instance_id}")
    if db_type not in (DatabaseType.ASYNCPG, DatabaseType.SQLALCHEMY):
        raise RPCError(f"Unknown database_type {db_type.value} in maubot.yaml")
    location = _Location.parse(params)
    try:
        if db_type == DatabaseType.ASYNCPG:
            return await _start_async(instance_id, location, upgrade_table)
        return await _start_legacy(location)
    except RPCError:
        raise
    except Exception as e:
        log.exception("Failed to start instance database")
        raise RPCError(
            f"Failed to start database: {type(e).__name__}: {e}", traceback.format_exc()
        ) from e


class _Location:
    """The `database` object of `start`: `url`, and for PostgreSQL `schema` and `max_conns`."""

    def __init__(self, url: URL, schema: str | None, max_conns: int) -> None:
        self.url = url
        self.schema = schema
        self.max_conns = max_conns

    @property
    def is_postgres(self) -> bool:
        return self.url.scheme in POSTGRES_SCHEMES

    @classmethod
    def parse(cls, params: dict[str, Any] | None) -> _Location:
        if not isinstance(params, dict) or not params.get("url"):
            raise RPCError("The plugin needs a database, but the server gave none")
        url = URL(str(params["url"]))
        if url.scheme not in SQLITE_SCHEMES + POSTGRES_SCHEMES:
            raise RPCError(f"Unsupported database URL scheme {url.scheme!r}")
        schema = params.get("schema")
        if schema is not None and (not isinstance(schema, str) or not schema):
            raise RPCError("database.schema must be a non-empty string")
        max_conns = params.get("max_conns")
        if max_conns is None:
            max_conns = DEFAULT_MAX_CONNS
        elif isinstance(max_conns, bool) or not isinstance(max_conns, int) or max_conns < 1:
            raise RPCError("database.max_conns must be a positive integer")
        return cls(url, schema, max_conns)

    def search_path(self) -> str | None:
        """The schema as a `search_path` value: a quoted identifier, so any name works."""
        if self.schema is None:
            return None
        return '"' + self.schema.replace('"', '""') + '"'


# ------------------------------------------------------------------------------------------------
# database_type: asyncpg


async def _start_async(
    instance_id: str, location: _Location, upgrade_table: UpgradeTable | None
) -> AsyncDatabase:
    from mautrix.util.async_db import Database

    db_args: dict[str, Any]
    if location.is_postgres:
        db_args = {
            # asyncpg's "internal client error" would otherwise exit the whole worker.
            "meow_exit_on_ice": False,
            "min_size": 1,
            "max_size": location.max_conns,
        }
        search_path = location.search_path()
        if search_path is not None:
            # A setting of the connection's start-up packet: it is also what the pool's
            # `RESET ALL` returns to when a connection is released.
            db_args["server_settings"] = {"search_path": search_path}
    else:
        db_args = {"init_commands": [SQLITE_JOURNAL_MODE]}
    database = Database.create(
        location.url,
        upgrade_table=upgrade_table,
        db_args=db_args,
        log=logging.getLogger(f"maubot.instance_db.{instance_id}"),
    )
    try:
        await database.start()
    except BaseException:
        # A pool that opened its connections before the upgrade failed must not keep them.
        try:
            await database.stop()
        except Exception:
            pass
        raise
    return AsyncDatabase(database)


# ------------------------------------------------------------------------------------------------
# database_type: sqlalchemy (legacy)


async def _start_legacy(location: _Location) -> LegacyDatabase:
    try:
        import sqlalchemy
    except ImportError as e:
        raise _missing_package(
            e,
            "sqlalchemy",
            "the plugin uses a legacy SQLAlchemy database, which needs the "
            "Python package SQLAlchemy>1,<1.4",
        ) from e
    if location.is_postgres:
        engine = _postgres_engine(sqlalchemy, location)
    else:
        engine = _sqlite_engine(sqlalchemy, location)
    # One connection now, off the event loop: a database that cannot be opened fails the start
    # rather than the plugin's first query.
    try:
        await asyncio.get_running_loop().run_in_executor(None, _check_connection, engine)
    except BaseException:
        engine.dispose()
        raise
    return LegacyDatabase(engine)


def _check_connection(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute("SELECT 1")


def _sqlite_engine(sqlalchemy: Any, location: _Location) -> Engine:
    # The path as mautrix's SQLite database reads it from the same URL.
    url = _sa_url(sqlalchemy, "sqlite", database=location.url.path)
    engine = sqlalchemy.create_engine(url)

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        conn = dialect.connect(*cargs, **cparams)
        try:
            conn.execute(SQLITE_JOURNAL_MODE).close()
        except BaseException:
            conn.close()
            raise
        return conn

    # `do_connect` makes the connection itself, so the journal mode is set before SQLAlchemy
    # (or the plugin) runs anything on it.
    sqlalchemy.event.listen(engine, "do_connect", connect)
    return engine


def _postgres_engine(sqlalchemy: Any, location: _Location) -> Engine:
    try:
        import pg8000
    except ImportError as e:
        raise _missing_package(
            e,
            "pg8000",
            "a legacy SQLAlchemy database on PostgreSQL needs the Python package pg8000",
        ) from e
    url = location.url
    connect_args: dict[str, Any] = {}
    host = url.host
    port = url.explicit_port if hasattr(url, "explicit_port") else url.port
    query = url.query
    if query.get("host"):
        host = query["host"]
    if host and host.startswith("/"):
        # A folder holding the server's Unix socket, as libpq reads `host`.
        connect_args["unix_sock"] = f"{host.rstrip('/')}/.s.PGSQL.{port or 5432}"
        host = None
    ssl_context = _ssl_context(query.get("sslmode"), query.get("sslrootcert"))
    if ssl_context is not None:
        connect_args["ssl_context"] = ssl_context
    if query.get("application_name"):
        connect_args["application_name"] = query["application_name"]
    sa_url = _sa_url(
        sqlalchemy,
        "postgresql+pg8000",
        username=url.user or "postgres",
        password=url.password,
        host=host,
        port=port,
        database=url.path.lstrip("/") or None,
    )
    engine = sqlalchemy.create_engine(
        sa_url, connect_args=connect_args, pool_size=location.max_conns, max_overflow=0
    )
    if engine.dialect.description_encoding is not None and _version(pg8000) >= (1, 16):
        # SQLAlchemy 1.3's pg8000 dialect expects the column names of `cursor.description` as
        # bytes, which pg8000 gave up to 1.15; from 1.16 on they are already str.
        engine.dialect.description_encoding = None
        engine.dialect._description_decoder = None

    # Without `schema`, a `search_path` in the URL as asyncpg would take it (a server setting).
    search_path = location.search_path() or query.get("search_path")

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        conn = dialect.connect(*cargs, **cparams)
        try:
            if search_path is not None:
                cursor = conn.cursor()
                cursor.execute("SELECT set_config('search_path', %s, false)", (search_path,))
                cursor.close()
            # Committed, so that SQLAlchemy's rollbacks keep it.
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    # `do_connect` makes the connection itself, so the schema is in place before SQLAlchemy's
    # first look at the server (its default schema, `has_table`, reflection) and the plugin's.
    sqlalchemy.event.listen(engine, "do_connect", connect)
    return engine


def _ssl_context(sslmode: str | None, rootcert: str | None) -> ssl.SSLContext | None:
    """TLS as libpq's `sslmode` asks for it (pg8000 has no fallback: `prefer` is plain)."""
    if sslmode in (None, "", "disable", "allow", "prefer"):
        return None
    if sslmode not in ("require", "verify-ca", "verify-full"):
        raise RPCError(f"Unsupported sslmode {sslmode!r} in the database URL")
    context = ssl.create_default_context(cafile=rootcert or None)
    if sslmode != "verify-full":
        context.check_hostname = False
    if sslmode == "require":
        context.verify_mode = ssl.CERT_NONE
    return context


def _missing_package(error: ImportError, module: str, what: str) -> RPCError:
    """The start's error when `module` does not import: what needs it, then why. A missing module
    is worded as Python words it (`No module named 'pg8000'`), so the server can tell which
    package to install."""
    if isinstance(error, ModuleNotFoundError) and error.name == module:
        why = f"No module named '{module}'"
    else:
        why = f"{type(error).__name__}: {error}"
    return RPCError(f"Failed to start database: {what} ({why})", traceback.format_exc())


def _sa_url(sqlalchemy: Any, drivername: str, **parts: Any) -> Any:
    url_class = sqlalchemy.engine.url.URL
    # SQLAlchemy 1.3 builds URLs with the constructor, later versions with `URL.create`.
    return getattr(url_class, "create", url_class)(drivername, **parts)


def _version(module: Any) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", str(getattr(module, "__version__", "")))[:3]
    # Without a readable version, assume a current one.
    return tuple(int(n) for n in numbers) or (99,)
