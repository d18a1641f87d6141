"""Service levels: every open step has a due date, its holder is reminded before it, told when
it is overdue, and the managers are told when it stays open past its escalation moment; each
happens once, with the clock moved instead of waiting."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from engine.models import AuditEvent, Notification
from engine.runtime.specs import TaskProperties
from engine.scheduler import run_jobs_until_idle
from engine.service_levels import add_business_days, is_overdue, task_deadlines
from engine.settings import Settings
from tests.engine.helpers import do, start_application, task_row


def mail(engine, kind: str) -> list[Notification]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(Notification).where(Notification.kind == kind).order_by(Notification.id)
            )
        )


def audit_actions(engine, task_id: int) -> list[str]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.task_id == task_id)
                .order_by(AuditEvent.seq)
            )
        )


def claimed_completeness_check(engine) -> int:
    case_id = start_application(engine, "alice", "CWI")
    do(engine, case_id, "submit_application", "alice")
    [task] = engine.ready_tasks(case_id)
    engine.claim(task.id, "clerk")
    return task.id


def test_a_task_is_reminded_then_overdue_then_escalated_each_exactly_once(engine, clock):
    task_id = claimed_completeness_check(engine)
    task = task_row(engine, task_id)
    assert task.due_at is not None
    assert task.remind_at == task.due_at - timedelta(days=2)
    assert task.escalate_at == task.due_at + timedelta(days=3)

    clock.set(task.remind_at - timedelta(minutes=1))
    run_jobs_until_idle(engine)
    assert mail(engine, "task_reminder") == []

    clock.set(task.remind_at + timedelta(minutes=1))
    run_jobs_until_idle(engine)
    run_jobs_until_idle(engine)
    [reminder] = mail(engine, "task_reminder")
    assert reminder.recipient == "clerk@certrail.example"
    assert "is due on" in reminder.subject
    assert not is_overdue(task_row(engine, task_id), clock.now())

    clock.set(task.due_at + timedelta(minutes=1))
    run_jobs_until_idle(engine)
    assert is_overdue(task_row(engine, task_id), clock.now())
    [overdue] = mail(engine, "task_overdue")
    assert overdue.recipient == "clerk@certrail.example"
    assert task_row(engine, task_id).overdue_at == clock.now()
    assert mail(engine, "task_escalated") == []

    clock.set(task.escalate_at + timedelta(minutes=1))
    run_jobs_until_idle(engine)
    run_jobs_until_idle(engine)
    escalations = mail(engine, "task_escalated")
    assert [m.recipient for m in escalations] == ["manager@certrail.example"]
    assert task_row(engine, task_id).priority == 1
    assert audit_actions(engine, task_id).count("task_escalated") == 1
    assert audit_actions(engine, task_id).count("task_overdue") == 1
    assert audit_actions(engine, task_id).count("task_reminded") == 1


def test_a_task_done_in_time_is_never_marked_overdue(engine, clock):
    task_id = claimed_completeness_check(engine)
    task = task_row(engine, task_id)
    engine.complete(task_id, "clerk", {"application_complete": True})
    clock.set(task.escalate_at + timedelta(days=1))
    run_jobs_until_idle(engine)
    assert mail(engine, "task_overdue") == []
    assert mail(engine, "task_escalated") == []
    assert task_row(engine, task_id).overdue_at is None


def test_a_reminder_due_after_the_due_date_is_folded_into_the_overdue_notice(engine, clock):
    task_id = claimed_completeness_check(engine)
    task = task_row(engine, task_id)
    clock.set(task.due_at + timedelta(hours=1))  # the system was down over the reminder
    run_jobs_until_idle(engine)
    assert mail(engine, "task_reminder") == []
    assert len(mail(engine, "task_overdue")) == 1


def props(**values) -> TaskProperties:
    base = dict(spec_id="t", name="T", role="clerk", form=None, due="P10D", instructions=None)
    base.update(values)
    return TaskProperties(**base)


def test_business_days_skip_weekends_and_holidays():
    friday = datetime(2026, 12, 18, 9, 0)
    assert add_business_days(friday, 1) == datetime(2026, 12, 21, 9, 0)  # Monday
    holidays = frozenset({datetime(2026, 12, 25).date(), datetime(2026, 12, 28).date()})
    # Mon 21, Tue 22, Wed 23, Thu 24, (Fri 25 holiday), (Mon 28 holiday), Tue 29
    assert add_business_days(friday, 5, holidays) == datetime(2026, 12, 29, 9, 0)


def test_deadlines_follow_the_task_properties_and_the_defaults():
    start = datetime(2026, 3, 2, 9, 0)  # a Monday
    settings = Settings(remind_before="P1D", escalate_after="P2D")
    calendar = task_deadlines(start, props(), settings)
    assert calendar.due_at == datetime(2026, 3, 12, 9, 0)
    assert calendar.remind_at == datetime(2026, 3, 11, 9, 0)
    assert calendar.escalate_at == datetime(2026, 3, 14, 9, 0)

    business = task_deadlines(
        start, props(due_business_days=True, remind_before="PT4H", escalate_after="P5D"), settings
    )
    assert business.due_at == datetime(2026, 3, 16, 9, 0)  # ten working days
    assert business.remind_at == datetime(2026, 3, 16, 5, 0)
    assert business.escalate_at == datetime(2026, 3, 21, 9, 0)

    assert task_deadlines(start, props(due=None), settings).due_at is None
    # A reminder longer than the whole time allowed is sent when the task opens.
    short = task_deadlines(start, props(due="PT1H"), settings)
    assert short.remind_at == start
