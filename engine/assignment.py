"""Who may take a human task: the role, the applicant's own case, the named assignee, and
the impartiality checks that `engine.impartiality` plugs in.

Every path that offers, assigns, claims or completes a task asks `refusals()`: an empty
list means the user may act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, or_, select

from .models import Case, HumanTask, User


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str


# Extra checks (impartiality rules) registered by other modules: (user, task, case) -> refusals,
# and the same rules as SQL criteria on HumanTask/Case, so that lists never offer a barred task.
EligibilityCheck = Callable[[User, HumanTask, Case], list[Refusal]]
EligibilityCriteria = Callable[[User], list[Any]]
_extra_checks: list[EligibilityCheck] = []
_extra_criteria: list[EligibilityCriteria] = []


def register_check(check: EligibilityCheck, criteria: EligibilityCriteria | None = None) -> None:
    if check not in _extra_checks:
        _extra_checks.append(check)
    if criteria is not None and criteria not in _extra_criteria:
        _extra_criteria.append(criteria)


def claimable_criteria(user: User) -> list[Any]:
    """SQL criteria on HumanTask matching the tasks `refusals` would let `user` take."""
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
    criteria = [by_role, reserved]
    for extra in _extra_criteria:
        criteria.extend(extra(user))
    return criteria


def refusals(user: User, task: HumanTask, case: Case) -> list[Refusal]:
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
    for check in _extra_checks:
        found.extend(check(user, task, case))
    return found
