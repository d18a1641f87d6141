"""What a person may see of a case, and the case as pages and the API show it.

Access: oversight roles (manager, admin, quality manager) see every case; other staff see the
cases in which they hold a task's role, were assigned a task or did one, and the cases they
started; applicants see only their own cases. Everything else is "not found", so ids reveal nothing.
The rule is written once (`case_visibility`), and read two ways: as one criterion, to check a
case, and as one query per way a case becomes visible, each from its own index, for the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, or_, select
from sqlalchemy.orm import Session, aliased

from .errors import NotFoundError
from .incidents import open_incidents
from .models import (
    OVERSIGHT_ROLES,
    AuditEvent,
    Case,
    CaseLink,
    Certificate,
    Document,
    HumanTask,
    Incident,
    ModelVersion,
    Person,
    Scheme,
    User,
)


@dataclass(frozen=True)
class CaseVisibility:
    """The cases a user who does not see every case may see: a case with a task that meets one
    of `task_conditions` (on HumanTask), or a case that meets one of `case_conditions`."""

    task_conditions: tuple[ColumnElement[bool], ...]
    case_conditions: tuple[ColumnElement[bool], ...]

    def criterion(self) -> ColumnElement[bool]:
        """The rule as one criterion on Case, for a case or a few (one look at each case's
        tasks)."""
        if not self.task_conditions:
            return or_(*self.case_conditions)
        involved = exists().where(HumanTask.case_id == Case.id, or_(*self.task_conditions))
        return or_(involved, *self.case_conditions)

    def ways(self) -> list[Select[tuple[int]]]:
        """The same rule as queries of case ids, one for each way a case becomes visible; a
        case is visible if one of them selects it. Each is answered from an index of its own
        (`ix_human_tasks_role_case`, ...), newest case first, so a list of the newest visible
        cases can take the newest of each and merge them (`engine.case_search`): the OR of
        them all (`criterion`) cannot be read from an index, so PostgreSQL tests every case
        against it, or first hashes every task of the user's roles."""
        return [select(HumanTask.case_id).where(c) for c in self.task_conditions] + [
            select(Case.id).where(c) for c in self.case_conditions
        ]


def case_visibility(user: User) -> CaseVisibility | None:
    """Which cases `user` may see (the rule in the module's docstring); None: every case."""
    if user.role_names & OVERSIGHT_ROLES:
        return None
    staff_roles = sorted(user.role_names - {"applicant", "certified_person"})
    involved = (
        [HumanTask.role == role for role in staff_roles]
        + [HumanTask.assignee_id == user.id, HumanTask.completed_by_id == user.id]
        if staff_roles
        else []
    )
    own = [Case.person_id == user.person_id] if user.person_id is not None else []
    return CaseVisibility(tuple(involved), (Case.started_by_id == user.id, *own))


def visible_cases_criteria(user: User) -> list[Any]:
    """SQL criteria on Case for the cases `user` may see."""
    visibility = case_visibility(user)
    return [] if visibility is None else [visibility.criterion()]


def can_view_case(session: Session, user: User, case_id: int) -> bool:
    return (
        session.scalar(select(Case.id).where(Case.id == case_id, *visible_cases_criteria(user)))
        is not None
    )


def visible_case(session: Session, user: User, case_id: int) -> Case:
    case = session.scalar(select(Case).where(Case.id == case_id, *visible_cases_criteria(user)))
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist or is not yours to see")
    return case


APPLICANT_VISIBLE_ACTIONS = (
    "case_started",
    "document_added",
    "certificate_issued",
    "refusal_letter_issued",
    "applicant_notified",
    "case_completed",
    "appeal_lodged",
    "complaint_lodged",
    "certificate_suspended",
    "certificate_reinstated",
    "certificate_withdrawn",
    "certificate_scope_reduced",
    "certificate_expired",
    "certificate_renewed",
    "certificate_surveillance_passed",
)


@dataclass
class TimelineEntry:
    at: datetime
    actor: str
    action: str
    message: str
    task_id: int | None
    after: dict[str, Any] | None


@dataclass
class CaseDetail:
    case: Case
    person: Person | None
    scheme: Scheme | None
    model: ModelVersion
    ready_tasks: list[HumanTask]
    completed_tasks: list[HumanTask]
    timeline: list[TimelineEntry]
    documents: list[Document]
    certificates: list[Certificate]
    links: list[tuple[str, int]] = field(default_factory=list)
    completed_by: dict[int, str] = field(default_factory=dict)
    # Jobs that failed on this case and wait for a retry (staff only).
    incidents: list[Incident] = field(default_factory=list)


def case_detail(session: Session, user: User, case_id: int) -> CaseDetail:
    case = visible_case(session, user, case_id)
    tasks = list(
        session.scalars(
            select(HumanTask).where(HumanTask.case_id == case.id).order_by(HumanTask.id)
        )
    )
    names = dict(
        session.execute(
            select(User.id, User.display_name).where(
                User.id.in_({t.completed_by_id for t in tasks if t.completed_by_id})
            )
        ).all()
    )
    events = select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(AuditEvent.seq)
    if not user.is_staff:
        # Applicants follow the milestones of their case; the staff's working record (who
        # examined, impartiality checks, notes) stays with the staff (7.3, 7.4).
        events = events.where(AuditEvent.action.in_(APPLICANT_VISIBLE_ACTIONS))
        tasks = [t for t in tasks if t.role == "applicant" or t.status == "ready"]
    timeline = [
        TimelineEntry(e.at, e.actor, e.action, e.message, e.task_id, e.after)
        for e in session.scalars(events)
    ]
    links = [
        (link.kind, link.to_case_id)
        for link in session.scalars(select(CaseLink).where(CaseLink.from_case_id == case.id))
    ] + [
        (f"{link.kind} (from)", link.from_case_id)
        for link in session.scalars(select(CaseLink).where(CaseLink.to_case_id == case.id))
    ]
    return CaseDetail(
        case=case,
        person=session.get(Person, case.person_id) if case.person_id else None,
        scheme=session.get(Scheme, case.scheme_id) if case.scheme_id else None,
        model=session.get(ModelVersion, case.model_version_id),
        ready_tasks=[t for t in tasks if t.status == "ready"],
        completed_tasks=[t for t in tasks if t.status == "completed"],
        timeline=timeline,
        documents=list(
            session.scalars(
                select(Document).where(Document.case_id == case.id).order_by(Document.id)
            )
        ),
        certificates=list(
            session.scalars(
                select(Certificate)
                .where(or_(Certificate.case_id == case.id, Certificate.id == case.certificate_id))
                .order_by(Certificate.id)
            )
        ),
        links=links,
        completed_by=names,
        incidents=open_incidents(session, case_id=case.id) if user.is_staff else [],
    )


def diagram_state(detail: CaseDetail, now: datetime) -> dict[str, list[str]]:
    """Element ids to highlight on the case's diagram: done, current and overdue steps."""
    completed = sorted({t.task_spec_id for t in detail.completed_tasks})
    current = sorted({t.task_spec_id for t in detail.ready_tasks})
    overdue = sorted({t.task_spec_id for t in detail.ready_tasks if t.due_at and t.due_at < now})
    return {"completed": completed, "current": current, "overdue": overdue}


def visible_task(session: Session, user: User, task_id: int) -> tuple[HumanTask, Case]:
    """A task and its case, if `user` may see the case; applicants see only their own steps."""
    # An alias, so that the visibility criteria's own subqueries over human_tasks stay theirs.
    task_row = aliased(HumanTask)
    found = session.execute(
        select(task_row, Case)
        .join(Case, Case.id == task_row.case_id)
        .where(task_row.id == task_id, *visible_cases_criteria(user))
    ).first()
    if found is None or (not user.is_staff and found[0].role != "applicant"):
        raise NotFoundError(f"task {task_id} does not exist or is not yours to see")
    task, case = found
    return task, case


def task_refusals(
    session: Session, user: User, task: HumanTask, case: Case, now: datetime | None = None
) -> list[str]:
    """Why `user` cannot complete `task` now (empty: they can); the same checks, in the same
    order, as `cases.complete_task`, for pages that show a form read-only with the reason."""
    from . import assignment

    if task.status == "completed":
        by = session.get(User, task.completed_by_id) if task.completed_by_id else None
        when = f" on {task.completed_at:%d %b %Y %H:%M}" if task.completed_at else ""
        return [f"this task was already completed by {by.display_name if by else 'someone'}{when}"]
    if task.status == "cancelled":
        return ["this task was cancelled: the case no longer needs it"]
    if case.status != "running":
        return [f"the case is {case.status}; its tasks cannot be worked on"]
    found = []
    if task.assignee_id is not None and task.assignee_id != user.id:
        holder = session.get(User, task.assignee_id)
        found.append(f"this task is claimed by {holder.display_name if holder else 'someone else'}")
    found.extend(r.reason for r in assignment.refusals(user, task, case, session=session, now=now))
    return found
