"""Shared fixtures: a real engine on a real database, SQLite always and PostgreSQL when
reachable (`TEST_DATABASE_URL`, default the local server's `test` database).

Each PostgreSQL test run gets its own schema, so parallel runs and leftovers never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import create_engine, event, text

from engine import Engine
from engine.clock import FixedClock
from engine.db import make_engine, normalise_url
from engine.demo import load_demo
from engine.models import Base

PG_URL = normalise_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
)
START = datetime(2026, 3, 2, 9, 0, 0)


def _postgres_reachable() -> bool:
    if os.environ.get("CERTRAIL_SKIP_POSTGRES"):
        return False
    try:
        probe = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with probe.connect() as conn:
            conn.execute(text("select 1"))
        probe.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False


POSTGRES = _postgres_reachable()
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CERTRAIL_REQUIRE_POSTGRES") and not POSTGRES:
        raise pytest.UsageError(f"PostgreSQL is required but not reachable at {PG_URL}")
    skip = pytest.mark.skip(reason=f"PostgreSQL not reachable at {PG_URL}")
    for item in items:
        if "postgresql" in item.keywords and not POSTGRES:
            item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "postgresql: runs against PostgreSQL")


def make_sql_engine(kind: str, tmp_path) -> tuple[object, callable]:
    """A SQLAlchemy engine on a fresh database of `kind`, and a function that drops it."""
    if kind == "sqlite":
        sql = make_engine(f"sqlite:///{tmp_path / 'certrail.sqlite'}")
        return sql, sql.dispose
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sql = make_engine(PG_URL, pool_size=10, max_overflow=20)

    @event.listens_for(sql, "connect")
    def _search_path(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.commit()

    def drop():
        sql.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return sql, drop


@pytest.fixture(params=DATABASES)
def database(request, tmp_path) -> Iterator[tuple[str, object]]:
    sql, drop = make_sql_engine(request.param, tmp_path)
    try:
        yield request.param, sql
    finally:
        drop()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def engine(database, clock) -> Engine:
    """An engine with the schema, the shipped models and the demo data loaded."""
    _kind, sql = database
    eng = Engine(sql_engine=sql, clock=clock)
    Base.metadata.create_all(sql)
    eng.sync_models()
    with eng.unit_of_work() as uow:
        load_demo(uow)
    return eng
