"""`certrail check`: a case's stored workflow, its human tasks, its timers and the
certificates agree; every kind of disagreement is found and named."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from engine.consistency import check
from engine.models import Case, Certificate, HumanTask, Timer
from tests.engine import test_timers
from tests.engine.helpers import do, drive_to_decision, start_application
from tests.engine.test_certificate_lifecycle import certify

timer_engine = test_timers.timer_engine


def kinds(engine) -> list[tuple]:
    return sorted(
        (m.kind, m.case_id or m.certificate) for m in check(engine, engine.clock.now()).mismatches
    )


def test_cases_driven_through_the_engine_are_consistent(engine):
    certify(engine, "alice", "CWI")
    waiting = start_application(engine, "bob", "DPO")
    do(engine, waiting, "submit_application", "bob")
    report = check(engine, engine.clock.now())
    assert report.consistent, report.mismatches
    assert report.cases >= 2 and report.certificates >= 1


def test_a_lost_human_task_row_and_a_stray_one_are_both_named(engine):
    case_id = start_application(engine, "alice", "CWI")
    with engine.unit_of_work() as uow:
        uow.session.execute(delete(HumanTask).where(HumanTask.case_id == case_id))
    assert kinds(engine) == [("ready_task_without_row", case_id)]

    other = start_application(engine, "bob", "DPO")
    with engine.unit_of_work() as uow:
        row = uow.session.scalars(select(HumanTask).where(HumanTask.case_id == other)).one()
        row.task_uuid = "00000000-0000-0000-0000-000000000000"
    assert kinds(engine) == sorted(
        [
            ("ready_task_without_row", case_id),
            ("ready_task_without_row", other),
            ("row_without_ready_task", other),
        ]
    )


def test_timer_rows_must_match_the_waiting_timers(timer_engine):
    case_id = timer_engine.start_case("waiting").case_id
    with timer_engine.sessions() as session:
        [timer] = session.scalars(select(Timer).where(Timer.case_id == case_id)).all()
    with timer_engine.unit_of_work() as uow:
        uow.session.execute(
            update(Timer).where(Timer.id == timer.id).values(fire_at=timer.fire_at + timedelta(1))
        )
    assert kinds(timer_engine) == [("timer_time_differs", case_id)]
    with timer_engine.unit_of_work() as uow:
        uow.session.execute(
            update(Timer).where(Timer.id == timer.id).values(task_uuid="not-a-waiting-timer")
        )
    assert kinds(timer_engine) == [
        ("row_without_waiting_timer", case_id),
        ("timer_without_row", case_id),
    ]


def test_closed_cases_and_certificates_that_disagree_with_their_history(engine):
    case_id = start_application(engine, "alice", "CWI")
    drive_to_decision(engine, case_id, "alice")
    with engine.unit_of_work() as uow:
        uow.session.execute(update(Case).where(Case.id == case_id).values(status="completed"))
    assert kinds(engine) == [
        ("completed_case_unfinished", case_id),
        ("open_task_on_closed_case", case_id),
    ]

    certificate = certify(engine, "bob", "DPO")
    with engine.unit_of_work() as uow:
        uow.session.execute(update(Case).where(Case.id == case_id).values(status="cancelled"))
        uow.session.execute(
            update(HumanTask).where(HumanTask.case_id == case_id).values(status="cancelled")
        )
        uow.session.execute(
            update(Certificate).where(Certificate.id == certificate.id).values(status="withdrawn")
        )
    assert kinds(engine) == [("status_differs_from_history", certificate.number)]


def test_unreadable_state_is_reported_not_raised(engine):
    case_id = start_application(engine, "alice", "CWI")
    with engine.unit_of_work() as uow:
        uow.session.execute(update(Case).where(Case.id == case_id).values(state="{not json"))
    assert kinds(engine) == [("state_unreadable", case_id)]
