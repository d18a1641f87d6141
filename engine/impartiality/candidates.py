"""Who could do an open task: every holder of its role, eligible or barred and why; and
auto-assignment to the eligible staff member with the fewest open tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload

from ..audit import AuditLog
from ..models import Case, HumanTask, User, UserRole
from .rules import Bar, bars_for_users, id_in

NO_ELIGIBLE_ASSIGNEE = "no eligible assignee"


@dataclass
class Candidate:
    user: User
    open_tasks: int
    bars: list[Bar]

    @property
    def eligible(self) -> bool:
        return not self.bars


def candidates_for(session: Session, task: HumanTask, case: Case, now: datetime) -> list[Candidate]:
    """Every active holder of the task's role, eligible first, by fewest open tasks."""
    users = list(
        session.scalars(
            select(User)
            # Roles are not needed here; loading them for hundreds of users is most of the cost.
            .options(lazyload(User.roles))
            .join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role == task.role, User.active.is_(True))
            .order_by(User.username)
        ).unique()
    )
    if not users:
        return []
    load = dict(
        session.execute(
            select(HumanTask.assignee_id, func.count())
            .where(
                HumanTask.status == "ready",
                id_in(session, HumanTask.assignee_id, [u.id for u in users]),
            )
            .group_by(HumanTask.assignee_id)
        ).all()
    )
    bars = bars_for_users(session, users, task, case, now)
    if task.candidates is not None:
        for user in users:
            if user.username not in task.candidates:
                bars[user.id].append(
                    Bar("CANDIDATE", "this step is reserved for: " + ", ".join(task.candidates), {})
                )
    found = [Candidate(u, load.get(u.id, 0), bars[u.id]) for u in users]
    return sorted(found, key=lambda c: (not c.eligible, c.open_tasks, c.user.username))


def auto_assign(
    session: Session, task: HumanTask, case: Case, now: datetime, audit: AuditLog, actor: str
) -> User | None:
    """Give the task to the eligible staff member with the fewest open tasks, or flag it."""
    candidates = candidates_for(session, task, case, now)
    chosen = next((c for c in candidates if c.eligible), None)
    if chosen is None:
        task.assignment_flag = NO_ELIGIBLE_ASSIGNEE
        audit.record(
            now,
            actor,
            "no_eligible_assignee",
            f"nobody may take {task.name}: every {task.role} is barred",
            case_id=case.id,
            task_id=task.id,
            after={"barred": {c.user.username: [b.rule for b in c.bars] for c in candidates}},
        )
        return None
    task.assignee_id = chosen.user.id
    task.claimed_at = now
    task.assignment_flag = None
    audit.record(
        now,
        actor,
        "task_auto_assigned",
        f"{task.name} assigned to {chosen.user.username} (eligible, {chosen.open_tasks} open task(s))",
        case_id=case.id,
        task_id=task.id,
        after={
            "assignee": chosen.user.username,
            "open_tasks": chosen.open_tasks,
            "barred": {
                c.user.username: [b.rule for b in c.bars] for c in candidates if not c.eligible
            },
        },
    )
    return chosen.user
