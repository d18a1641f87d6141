"""PostgreSQL connections: after a lost connection (a server restart) units of work fail
cleanly and the engine recovers by itself, without a ping round trip on every unit of work of
a busy pool; read-only transactions keep the driver's prepared statements."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from engine import Engine, db
from engine.models import Person, User
from tests.conftest import PG_URL, make_sql_engine

pytestmark = [pytest.mark.postgresql, pytest.mark.serial]


@pytest.fixture
def postgres(tmp_path, monkeypatch):
    def make(idle_ping_seconds: float):
        monkeypatch.setattr(db, "IDLE_PING_SECONDS", idle_ping_seconds)
        sql, drop = make_sql_engine("postgresql", tmp_path)
        made.append(drop)
        Engine(sql_engine=sql).create_schema()
        return sql

    made: list = []
    yield make
    for drop in made:
        drop()


def server_drops_connections(sql) -> None:
    """What a server restart does to the pool: every connection it holds is cut."""
    with sql.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def count_pings(sql, monkeypatch) -> list[int]:
    pings: list[int] = []
    ping = sql.dialect.do_ping

    def counted(dbapi_connection):
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(sql.dialect, "do_ping", counted)
    return pings


def test_a_connection_cut_while_idle_is_replaced_before_the_next_unit_of_work(postgres):
    sql = postgres(idle_ping_seconds=0.0)
    engine = Engine(sql_engine=sql)
    engine.register_applicant("Ada", "Lovelace", "ada@example.org", None)
    server_drops_connections(sql)

    user = engine.register_applicant("Grace", "Hopper", "grace@example.org", None)

    assert engine.user(user.username).email == "grace@example.org"


def test_a_connection_cut_while_busy_fails_one_unit_of_work_and_the_next_reconnects(postgres):
    sql = postgres(idle_ping_seconds=60.0)
    engine = Engine(sql_engine=sql)
    engine.register_applicant("Ada", "Lovelace", "ada@example.org", None)
    server_drops_connections(sql)

    with pytest.raises(DBAPIError) as failed:
        engine.register_applicant("Grace", "Hopper", "grace@example.org", None)
    assert failed.value.connection_invalidated

    user = engine.register_applicant("Grace", "Hopper", "grace@example.org", None)
    assert engine.user(user.username).email == "grace@example.org"


@pytest.mark.parametrize(("idle_ping_seconds", "pings"), [(60.0, 0), (0.0, 1)])
def test_a_pooled_connection_is_pinged_only_after_sitting_idle(
    postgres, monkeypatch, idle_ping_seconds, pings
):
    engine = Engine(sql_engine=postgres(idle_ping_seconds))
    user = engine.register_applicant("Ada", "Lovelace", "ada@example.org", None)
    sent = count_pings(engine.db, monkeypatch)

    engine.user(user.username)

    assert len(sent) == pings


def test_statements_stay_prepared_across_read_only_transactions(postgres):
    engine = Engine(sql_engine=postgres(idle_ping_seconds=60.0))
    user = engine.register_applicant("Ada", "Lovelace", "ada@example.org", None)

    for _ in range(6):  # psycopg prepares a statement on its fifth run
        engine.user(user.username)

    with engine.db.connect() as conn:
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars()
        assert any("FROM users" in statement for statement in prepared)


def test_a_transaction_that_wrote_is_still_rolled_back(postgres):
    engine = Engine(sql_engine=postgres(idle_ping_seconds=60.0))

    with engine.sessions() as session:
        session.add(
            Person(
                given_name="Ada",
                family_name="Lovelace",
                email="ada@example.org",
                created_at=datetime(2026, 3, 2, 9, 0),
            )
        )
        session.flush()
        assert session.scalars(select(Person.id)).all()
        session.rollback()

    with engine.sessions() as session:
        assert session.scalars(select(Person.id)).all() == []
        assert session.scalars(select(User.id)).all() == []
