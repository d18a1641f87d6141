"""Shared fixtures: a real engine on a real database, SQLite always and PostgreSQL when
reachable (`TEST_DATABASE_URL`, default the local server's `test` database).

Each PostgreSQL test gets its own schema, so parallel runs and leftovers never collide.
The `engine` fixture's starting data (schema, shipped models, demo data) is built once per
run and database kind, then copied into each test's database: a file copy on SQLite, one
batch of DDL and INSERT ... SELECT on PostgreSQL. Building it afresh cost ~0.35 s per test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import create_engine, create_mock_engine, event, text
from sqlalchemy.schema import AddConstraint

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
    config.addinivalue_line(
        "markers",
        "serial: races, killed processes and outages, whose timing other tests running "
        "beside them would distort; `make test` runs them after the parallel part, alone",
    )


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
def engine(database, clock, demo_templates) -> Engine:
    """An engine with the schema, the shipped models and the demo data loaded."""
    kind, sql = database
    demo_templates.copy_into(kind, sql, clock.now())
    return Engine(sql_engine=sql, clock=clock)


def build_demo_database(sql, clock) -> None:
    """What every `engine` test starts from: schema, shipped models, demo data."""
    eng = Engine(sql_engine=sql, clock=clock)
    Base.metadata.create_all(sql)
    eng.sync_models()
    with eng.unit_of_work() as uow:
        load_demo(uow)


class DemoTemplates:
    """One demo database per database kind and start time, copied into each test's database."""

    def __init__(self, directory):
        self.directory = directory
        self._sqlite: dict[datetime, str] = {}
        self._postgres: dict[datetime, str] = {}
        self._postgres_schemas: list[str] = []
        self._postgres_ddl = _postgres_ddl()
        self._admin = None

    def copy_into(self, kind: str, sql, now: datetime) -> None:
        if kind == "sqlite":
            shutil.copyfile(self._sqlite_template(now), sql.url.database)
        else:
            with sql.begin() as conn:
                conn.exec_driver_sql(self._postgres_copy_script(now))

    def _sqlite_template(self, now: datetime) -> str:
        if now not in self._sqlite:
            path = self.directory / f"demo-{len(self._sqlite)}.sqlite"
            sql = make_engine(f"sqlite:///{path}")
            build_demo_database(sql, FixedClock(now))
            sql.dispose()  # the last connection to close folds the WAL into the file
            self._sqlite[now] = str(path)
        return self._sqlite[now]

    def _postgres_copy_script(self, now: datetime) -> str:
        if now not in self._postgres:
            schema = "tpl_" + uuid.uuid4().hex[:12]
            self._admin = self._admin or create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            self._postgres_schemas.append(schema)
            sql = make_engine(PG_URL)

            @event.listens_for(sql, "connect")
            def _search_path(dbapi_connection, _record):
                cursor = dbapi_connection.cursor()
                cursor.execute(f'SET search_path TO "{schema}"')
                cursor.close()
                dbapi_connection.commit()

            build_demo_database(sql, FixedClock(now))
            with sql.connect() as conn:
                sequences = conn.execute(
                    text(
                        "SELECT sequencename, last_value FROM pg_sequences "
                        "WHERE schemaname = :schema AND last_value IS NOT NULL"
                    ),
                    {"schema": schema},
                ).all()
            sql.dispose()
            tables, constraints = self._postgres_ddl
            copies = [
                f'INSERT INTO "{table.name}" SELECT * FROM "{schema}"."{table.name}"'
                for table in Base.metadata.sorted_tables
            ]
            counters = [f"SELECT setval('\"{name}\"', {value})" for name, value in sequences]
            self._postgres[now] = ";\n".join([*tables, *copies, *constraints, *counters])
        return self._postgres[now]

    def drop(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for schema in self._postgres_schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self._admin.dispose()


def _postgres_ddl() -> tuple[list[str], list[str]]:
    """The schema's DDL for PostgreSQL, split so that the foreign keys that close a cycle
    (created with use_alter) are added after the rows are copied."""
    statements: list = []
    mock = create_mock_engine(
        "postgresql+psycopg://", lambda sql, *_a, **_k: statements.append(sql)
    )
    Base.metadata.create_all(mock, checkfirst=False)
    dialect = mock.dialect
    tables = [
        str(s.compile(dialect=dialect)) for s in statements if not isinstance(s, AddConstraint)
    ]
    constraints = [
        str(s.compile(dialect=dialect)) for s in statements if isinstance(s, AddConstraint)
    ]
    return tables, constraints


@pytest.fixture(scope="session")
def demo_templates(tmp_path_factory) -> Iterator[DemoTemplates]:
    templates = DemoTemplates(tmp_path_factory.mktemp("demo-templates"))
    try:
        yield templates
    finally:
        templates.drop()
