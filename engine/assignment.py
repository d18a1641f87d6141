"""Who may take a human task: the role, the applicant's own case, the named assignee, and
the impartiality checks that `engine.impartiality` plugs in.

Every path that offers, assigns, claims or completes a task asks `refusals()`: an empty
list means the user may act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .models import Case, HumanTask, User


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str


# Extra checks (impartiality rules) registered by other modules: (user, task, case) -> refusals.
EligibilityCheck = Callable[[User, HumanTask, Case], list[Refusal]]
_extra_checks: list[EligibilityCheck] = []


def register_check(check: EligibilityCheck) -> None:
    if check not in _extra_checks:
        _extra_checks.append(check)


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
