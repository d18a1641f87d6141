"""Answers "why can't I see this task?": every rule that bars a user from a task now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from .. import assignment
from ..errors import NotFoundError
from ..models import Case, HumanTask, User


def explain(
    session: Session, case_id: int, task_spec_id: str, username: str, now: datetime
) -> dict[str, Any]:
    """`{"allowed": bool, "rules": [{"rule", "reason"}]}` for the case's open (or latest) task."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist")
    task = session.scalars(
        select(HumanTask)
        .where(HumanTask.case_id == case_id, HumanTask.task_spec_id == task_spec_id)
        .order_by((HumanTask.status == "ready").desc(), HumanTask.id.desc())
        .limit(1)
    ).first()
    if task is None:
        raise NotFoundError(f"case {case_id} has no task '{task_spec_id}'")
    user = (
        session.scalars(
            select(User).options(joinedload(User.roles)).where(User.username == username)
        )
        .unique()
        .first()
    )
    if user is None:
        raise NotFoundError(f"user '{username}' does not exist")
    refusals = assignment.refusals(user, task, case, session=session, now=now)
    return {
        "allowed": not refusals,
        "case_id": case_id,
        "task": task_spec_id,
        "task_status": task.status,
        "user": username,
        "rules": [{"rule": r.rule, "reason": r.reason} for r in refusals],
    }
