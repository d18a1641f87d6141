"""`certrail backup` and `certrail restore`: a restored database verifies and keeps running."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, func, select, text

from engine import Engine
from engine.audit import verify_chain
from engine.clock import FixedClock
from engine.db import make_engine, normalise_url
from engine.models import AuditEvent, Case, Certificate
from tests.cli.test_certrail_command import certrail
from tests.cli.test_overdue_command import database_url
from tests.conftest import PG_URL
from tests.engine.helpers import do, start_application
from tests.engine.test_certificate_lifecycle import certify


@pytest.fixture
def empty_target(database, tmp_path):
    """A URL of an empty database of the same kind to restore into."""
    kind, sql = database
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite'}"
        return
    name = "restore_" + uuid.uuid4().hex[:10]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        schema = sql.connect().execute(text("SELECT current_schema()")).scalar_one()
    base = normalise_url(PG_URL).rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}?options=" + quote(f"-csearch_path={schema}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def counts(sql) -> tuple[int, int, int]:
    with sql.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (Case.__table__, Certificate.__table__, AuditEvent.__table__)
        )


def test_a_restored_backup_verifies_and_runs(engine, database, empty_target, tmp_path, clock):
    certify(engine, "alice", "CWI")
    waiting = start_application(engine, "bob", "DPO")
    source_url = database_url(database)
    backup_file = tmp_path / "certrail.backup"

    made = certrail("backup", str(backup_file), database=source_url)
    assert made.returncode == 0, made.stderr
    assert backup_file.stat().st_size > 0
    again = certrail("backup", str(backup_file), database=source_url)
    assert again.returncode == 1 and "exists" in again.stderr

    restored = certrail("restore", str(backup_file), "--json", database=empty_target)
    assert restored.returncode == 0, restored.stderr + restored.stdout
    report = json.loads(restored.stdout)
    assert report["ok"] and report["audit_ok"] and report["consistency"]["consistent"]
    assert report["audit_events_checked"] > 0

    target_sql = make_engine(empty_target)
    try:
        assert counts(target_sql) == counts(database[1])
        restored_engine = Engine(sql_engine=target_sql, clock=FixedClock(clock.now()))
        do(restored_engine, waiting, "submit_application", "bob")
        with restored_engine.sessions() as session:
            assert verify_chain(session).ok
    finally:
        target_sql.dispose()

    refused = certrail("restore", str(backup_file), database=empty_target)
    assert refused.returncode == 1 and "already holds Certrail tables" in refused.stderr


def test_restore_refuses_a_file_that_is_not_a_backup(database, tmp_path, empty_target):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a backup")
    refused = certrail("restore", str(bogus), database=empty_target)
    assert refused.returncode == 1
    assert "is not a" in refused.stderr and "Traceback" not in refused.stderr
