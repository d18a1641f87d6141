"""Database engine and session setup for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with `synchronous=FULL` so that a completed task survives a power
cut, and every transaction starts with `BEGIN IMMEDIATE`: writers queue on the database lock
instead of failing half-way with "database is locked" when two of them upgrade at once.

On PostgreSQL a pooled connection is pinged before use only when it has been idle for
`IDLE_PING_SECONDS`: a busy pool spends no round trip per unit of work on it. A connection
that breaks while busy (the server restarted) fails its statement cleanly; SQLAlchemy then
discards every pooled connection older than that failure, so the next unit of work connects
afresh. Either way the application recovers by itself. Long values (the case state) are
compressed with lz4 where the server has it.
"""

from __future__ import annotations

import os
import time
import weakref
from pathlib import Path

from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from .row_writes import defer_writes_on

DEFAULT_SQLITE_PATH = Path("instance") / "certrail.sqlite"
IDLE_PING_SECONDS = 1.0


def default_database_url() -> str:
    """`DATABASE_URL` if set, else the embedded SQLite file under `instance/`."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return normalise_url(url)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalise_url(url: str) -> str:
    """Accept the usual `postgresql://` form and use the psycopg 3 driver for it."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = normalise_url(url or default_database_url())
    if url.startswith("sqlite"):
        return _make_sqlite_engine(url, **kwargs)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        ping_after_idle(engine, IDLE_PING_SECONDS)
    end_reads_with_commit(engine)
    compress_with_lz4(engine)
    defer_writes_on(engine)
    return engine


# One round trip per new connection; a server without lz4 (or older than PostgreSQL 14)
# keeps its default.
_USE_LZ4 = (
    "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings "
    "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
)


def compress_with_lz4(engine: Engine) -> None:
    """Have PostgreSQL compress long values with lz4 instead of its default, pglz.

    Every completed step rewrites its case's state, tens of KiB of JSON that the server
    compresses on each write; lz4 costs it several times less CPU than pglz for it."""

    @event.listens_for(engine, "connect")
    def _use_lz4(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(_USE_LZ4)
        cursor.close()
        dbapi_connection.commit()


def ping_after_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use when it sat idle `idle_seconds` or more; a dead
    one is replaced by a fresh connection before the unit of work starts."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("the database connection was lost") from error


def end_reads_with_commit(engine: Engine) -> None:
    """End a PostgreSQL transaction that ran only SELECTs with COMMIT instead of ROLLBACK.

    Both end such a transaction alike, but psycopg forgets its prepared statements on every
    ROLLBACK: with pages and listings closing their read sessions that way, the statements
    of a unit of work would never stay prepared and the server would parse and plan each of
    them every time. A transaction that wrote, or failed, is rolled back as ever.
    """
    writers: weakref.WeakSet = weakref.WeakSet()

    @event.listens_for(engine, "begin")
    def _began(conn):
        writers.discard(conn.connection.dbapi_connection)

    @event.listens_for(engine, "before_cursor_execute")
    def _note_writer(_conn, cursor, statement, *_args):
        if statement.lstrip()[:6].upper() != "SELECT":
            writers.add(cursor.connection)

    rollback = engine.dialect.do_rollback

    def do_rollback(dbapi_connection):
        connection = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
        only_read = connection.info.transaction_status == TransactionStatus.INTRANS
        if only_read and connection not in writers:
            connection.commit()
        else:
            rollback(dbapi_connection)

    engine.dialect.do_rollback = do_rollback


def _make_sqlite_engine(url: str, **kwargs) -> Engine:
    path = url.split("///", 1)[-1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {})
    kwargs["connect_args"].setdefault("check_same_thread", False)
    kwargs["connect_args"].setdefault("timeout", 30)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
