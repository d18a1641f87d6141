"""When a step is due, when its holder is reminded, when it is overdue and escalated.

A user task's due date comes from its BPMN `due` duration (calendar days, or business days
with `due_business_days`), counted from the moment it became ready. Before it falls due the
holder is reminded (`remind_before`, default from Settings); once it is due it is marked
overdue (holder told); `escalate_after` later the managers are told and its priority rises.
The moments are fixed on the task row when it becomes ready, so a change of defaults never
moves a deadline already given, and the jobs below find their work with an index.

Each job handles a batch of tasks in one unit of work. On PostgreSQL the rows are claimed
with `FOR UPDATE SKIP LOCKED` and each is updated only while its marker is still empty, so
with any number of workers every task is reminded, marked and escalated exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from .models import Case, HumanTask, Person
from .notifications import notify_role, notify_task_holder
from .runtime.specs import TaskProperties, due_at
from .settings import Settings
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from . import Engine


@dataclass(frozen=True)
class TaskDeadlines:
    due_at: datetime | None
    remind_at: datetime | None
    escalate_at: datetime | None


def task_deadlines(start: datetime, props: TaskProperties, settings: Settings) -> TaskDeadlines:
    if not props.due:
        return TaskDeadlines(None, None, None)
    if props.due_business_days:
        due = add_business_days(start, _whole_days(props.due), settings.holidays)
    else:
        due = due_at(start, props.due)
    assert due is not None
    remind_before = props.remind_before or settings.remind_before
    escalate_after = props.escalate_after or settings.escalate_after
    remind = due - (due_at(due, remind_before) - due)
    return TaskDeadlines(
        due_at=due,
        remind_at=max(remind, start),
        escalate_at=due_at(due, escalate_after),
    )


def _whole_days(duration: str) -> int:
    """The number of days of a `PnD` duration (business days have no months or hours)."""
    text = duration.strip().upper()
    if not (text.startswith("P") and text.endswith("D") and text[1:-1].isdigit()):
        raise ValueError(
            f"a due duration in business days must be whole days (P10D), not {duration}"
        )
    return int(text[1:-1])


def add_business_days(
    start: datetime, days: int, holidays: frozenset[date] = frozenset()
) -> datetime:
    """`start` moved forward by `days` working days (Monday to Friday, not a holiday), at the
    same time of day."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and current.date() not in holidays:
            remaining -= 1
    return current


def is_overdue(task: HumanTask, now: datetime) -> bool:
    return task.status == "ready" and task.due_at is not None and now > task.due_at


# -- the jobs ---------------------------------------------------------------------------------


def send_task_reminders(engine: Engine, limit: int = 200) -> int:
    """Remind the holder of each open task whose reminder moment has come (before it is due)."""

    def act(uow: UnitOfWork, task: HumanTask) -> None:
        task.reminded_at = uow.now
        if task.overdue_at is not None or (task.due_at and uow.now > task.due_at):
            return  # the overdue notice says more; one message is enough
        due = _date(task.due_at)
        notify_task_holder(
            uow.session,
            uow.now,
            task,
            "task_reminder",
            f"Reminder: {task.name} is due on {due}",
            f"The step '{task.name}' of case {task.case_id} is due on {due}.\n"
            f"{engine.settings.base_url}/tasks/{task.id}",
        )

    return _each_pending(
        engine, HumanTask.remind_at, HumanTask.reminded_at, act, limit, "task_reminded"
    )


def mark_overdue_tasks(engine: Engine, limit: int = 200) -> int:
    """Mark each open task that has passed its due date as overdue and tell its holder."""

    def act(uow: UnitOfWork, task: HumanTask) -> None:
        task.overdue_at = uow.now
        due = _date(task.due_at)
        notify_task_holder(
            uow.session,
            uow.now,
            task,
            "task_overdue",
            f"Overdue: {task.name} was due on {due}",
            f"The step '{task.name}' of case {task.case_id} was due on {due} and is not done.\n"
            f"{engine.settings.base_url}/tasks/{task.id}",
        )

    return _each_pending(engine, HumanTask.due_at, HumanTask.overdue_at, act, limit, "task_overdue")


def escalate_overdue_tasks(engine: Engine, limit: int = 200) -> int:
    """Tell the managers about each task still open at its escalation moment; raise its
    priority so that it heads every list."""

    def act(uow: UnitOfWork, task: HumanTask) -> None:
        task.escalated_at = uow.now
        task.priority = (task.priority or 0) + 1
        case = uow.session.get(Case, task.case_id)
        person = uow.session.get(Person, case.person_id) if case and case.person_id else None
        about = f" for {person.full_name}" if person else ""
        due = _date(task.due_at)
        notify_role(
            uow.session,
            uow.now,
            "manager",
            "task_escalated",
            f"Escalation: {task.name}{about} overdue since {due}",
            f"The step '{task.name}' of case {task.case_id}{about} was due on {due} and is "
            f"still open. Reassign it or follow it up:\n{engine.settings.base_url}/dashboard",
            case_id=task.case_id,
            task_id=task.id,
        )

    return _each_pending(
        engine, HumanTask.escalate_at, HumanTask.escalated_at, act, limit, "task_escalated"
    )


def _each_pending(engine: Engine, moment, marker, act, limit: int, action: str) -> int:
    with engine.unit_of_work() as uow:
        query = (
            select(HumanTask)
            .where(HumanTask.status == "ready", marker.is_(None), moment < uow.now)
            .order_by(moment, HumanTask.id)
            .limit(limit)
        )
        if engine.db.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        tasks = list(uow.session.scalars(query))
        for task in tasks:
            act(uow, task)
            uow.audit.record(
                uow.now,
                "scheduler",
                action,
                f"{task.name}: {action.replace('task_', '').replace('_', ' ')} (due {_date(task.due_at)})",
                case_id=task.case_id,
                task_id=task.id,
                after={"due_at": task.due_at.isoformat() if task.due_at else None},
            )
        return len(tasks)


def _date(value: datetime | None) -> str:
    return f"{value.day} {value:%b %Y}" if value else "no date"
