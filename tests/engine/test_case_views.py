"""What each reader may see of a case (ISO/IEC 17024 7.3)."""

from __future__ import annotations

from sqlalchemy import select

from engine.case_views import case_detail
from engine.models import User
from tests.engine.helpers import drive_to_decision, start_application


def detail_for(engine, username: str, case_id: int):
    with engine.sessions() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return case_detail(session, user, case_id)


def test_applicant_sees_milestones_but_not_the_staffs_working_record(engine):
    case_id = start_application(engine, "alice")
    drive_to_decision(engine, case_id)

    own = detail_for(engine, "alice", case_id)
    staff = detail_for(engine, "manager", case_id)

    assert {e.action for e in own.timeline} <= {
        "case_started",
        "document_added",
        "applicant_notified",
    }
    assert any(e.action == "sod_bar_recorded" for e in staff.timeline)
    assert [t.task_spec_id for t in own.completed_tasks] == ["submit_application"]
    assert "score_written" in {t.task_spec_id for t in staff.completed_tasks}
