"""`certrail overdue`: the overdue steps for cron reports, run as a real subprocess against the
same real database (SQLite and PostgreSQL) the engine wrote."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import text

from engine.db import normalise_url
from tests.cli.test_certrail_command import certrail
from tests.conftest import PG_URL, START
from tests.engine.helpers import do, start_application

STEP_KEYS = {
    "case_id",
    "process",
    "task",
    "task_name",
    "assignee",
    "person",
    "scheme",
    "due_at",
    "days_overdue",
    "certificate",
    "certificate_expires_on",
}


def database_url(database) -> str:
    """A URL a separate process can open to see the engine's database (on PostgreSQL, the
    test's own schema through `search_path`)."""
    kind, sql = database
    if kind == "sqlite":
        return sql.url.render_as_string(hide_password=False)
    with sql.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()
    return normalise_url(PG_URL) + "?options=" + quote(f"-csearch_path={schema}")


def test_overdue_json_lists_every_overdue_step_with_the_contract_keys(engine, database):
    alice = start_application(engine, "alice", "CWI")
    do(engine, alice, "submit_application", "alice")
    bob = start_application(engine, "bob", "DPO")
    engine.claim(engine.ready_tasks(alice)[0].id, "clerk")
    url = database_url(database)

    now = (START + timedelta(days=31)).isoformat()
    result = certrail("overdue", "--now", now, "--json", database=url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"now", "count", "steps"}
    assert report["now"] == now and report["count"] == 2
    assert all(set(step) == STEP_KEYS for step in report["steps"])
    first, second = report["steps"]
    assert first == {
        "case_id": alice,
        "process": "application",
        "task": "check_completeness",
        "task_name": "Check application completeness",
        "assignee": "clerk",
        "person": "Alice Applicant",
        "scheme": "CWI",
        "due_at": (START + timedelta(days=5)).isoformat(),
        "days_overdue": 26,
        "certificate": None,
        "certificate_expires_on": None,
    }
    assert (second["case_id"], second["task"], second["days_overdue"]) == (
        bob,
        "submit_application",
        1,
    )
    assert second["assignee"] is None and second["person"] == "Bob Builder"

    on_time = certrail("overdue", "--now", START.isoformat(), "--json", database=url)
    assert on_time.returncode == 0
    assert json.loads(on_time.stdout) == {"now": START.isoformat(), "count": 0, "steps": []}

    # An offset is converted to UTC.
    shifted = certrail("overdue", "--now", "2026-04-02T11:00:00+02:00", "--json", database=url)
    assert json.loads(shifted.stdout)["now"] == "2026-04-02T09:00:00"

    plain = certrail("overdue", "--now", now, database=url)
    assert plain.returncode == 0
    assert plain.stdout.splitlines()[-1] == f"2 overdue step(s) as of {now}"
    assert "Check application completeness" in plain.stdout


def test_overdue_with_a_bad_time_is_one_line_not_a_traceback(tmp_path):
    result = certrail(
        "overdue", "--now", "next tuesday", database=f"sqlite:///{tmp_path / 'x.sqlite'}"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "certrail: --now must be an ISO 8601 date and time, not 'next tuesday'"
    )
