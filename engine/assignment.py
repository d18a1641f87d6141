"""Who may take a human task: the role, the applicant's own case, the named assignee, and
the impartiality rules of `engine.impartiality`.

Every path that offers, assigns, claims or completes a task asks `refusals()`: an empty
list means the user may act.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import Session, object_session

from .models import Case, HumanTask, User


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str
    facts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def claimable_criteria(user: User, now: datetime | None = None) -> list[Any]:
    """SQL criteria on HumanTask matching the tasks `refusals` would let `user` take."""
    from . import impartiality

    if not user.active:
        return [HumanTask.id.is_(None)]
    staff_roles = sorted(user.role_names - {"applicant", "certified_person"})
    own_case = HumanTask.case_id.in_(select(Case.id).where(Case.person_id == user.person_id))
    by_role = HumanTask.role.in_(staff_roles) if staff_roles else HumanTask.id.is_(None)
    if user.person_id is not None:
        by_role = or_(by_role, (HumanTask.role == "applicant") & own_case)
    reserved = or_(
        HumanTask.candidates.is_(None),
        cast(HumanTask.candidates, String).like(f'%"{user.username}"%'),
    )
    return [by_role, reserved, *impartiality.claimable_criteria(None, user, now or _utcnow())]


def refusals(
    user: User,
    task: HumanTask,
    case: Case,
    *,
    session: Session | None = None,
    now: datetime | None = None,
    known: Any = None,
) -> list[Refusal]:
    """Every reason `user` may not work on `task` now: role, reservation, impartiality
    (`known`: the user's `impartiality.UserFacts` for this case, when already read)."""
    from . import impartiality

    found: list[Refusal] = []
    if not user.active:
        found.append(Refusal("ACCOUNT", "your account is deactivated"))
    if task.role == "applicant":
        if user.person_id is None or user.person_id != case.person_id:
            found.append(Refusal("ROLE", "only the applicant of this case can do this step"))
    elif task.role not in user.role_names:
        found.append(
            Refusal("ROLE", f"this step needs the {task.role} role, which you do not hold")
        )
    if task.candidates is not None and user.username not in task.candidates:
        found.append(
            Refusal("CANDIDATE", "this step is reserved for: " + ", ".join(task.candidates))
        )
    session = session or object_session(task)
    if session is not None:
        for bar in impartiality.evaluate(session, user, task, case, now or _utcnow(), known):
            found.append(Refusal(bar.rule, bar.reason, bar.facts))
    return found


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
