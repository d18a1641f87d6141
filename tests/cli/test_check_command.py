"""`certrail check [--json]` run as a subprocess against the database the engine wrote."""

from __future__ import annotations

import json

from sqlalchemy import delete

from engine.models import HumanTask
from tests.cli.test_certrail_command import certrail
from tests.cli.test_overdue_command import database_url
from tests.engine.helpers import start_application


def test_check_exits_0_when_consistent_and_1_naming_each_mismatch(engine, database):
    case_id = start_application(engine, "alice", "CWI")
    url = database_url(database)
    clean = certrail("check", "--json", database=url)
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert set(report) == {"consistent", "cases", "certificates", "mismatches"}
    assert report["consistent"] is True and report["cases"] >= 1

    with engine.unit_of_work() as uow:
        uow.session.execute(delete(HumanTask).where(HumanTask.case_id == case_id))
    broken = certrail("check", "--json", database=url)
    assert broken.returncode == 1
    [found] = json.loads(broken.stdout)["mismatches"]
    assert found["case_id"] == case_id and found["kind"] == "ready_task_without_row"
    text = certrail("check", database=url)
    assert f"case {case_id}: ready_task_without_row" in text.stdout
    assert "1 mismatch(es)" in text.stdout
