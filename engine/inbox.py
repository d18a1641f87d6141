"""The staff task inbox: what is assigned to a user, what they may take, what they did.

Lists are built in SQL (filters, sort, pagination) so they stay fast with 100,000 open
tasks. Who may take a task is decided by `assignment`: its SQL criteria narrow the list of
claimable tasks, so a task a user is barred from is never offered.

The page's total and the tab counts are display counts: given a `count_limit` they stop at
limit + 1 matching tasks (`engine.counting`), so their cost stops growing there however many
tasks a user has; beyond the limit the page says "10,000+" and the number of pages is
unknown, while "next page" still follows from the rows themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from . import assignment
from .counting import CappedCount, capped_count
from .models import Case, HumanTask, Person, Scheme, User

TABS = ("assigned", "available", "completed")
SORTS = {
    "due": (HumanTask.due_at.asc().nulls_last(), HumanTask.id.asc()),
    "-due": (HumanTask.due_at.desc().nulls_last(), HumanTask.id.desc()),
    "age": (HumanTask.created_at.asc(), HumanTask.id.asc()),
    "-age": (HumanTask.created_at.desc(), HumanTask.id.desc()),
    "completed": (HumanTask.completed_at.desc(), HumanTask.id.desc()),
}
MAX_PER_PAGE = 200


@dataclass
class InboxFilters:
    process: str | None = None
    scheme: str | None = None
    task: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue_only: bool = False


@dataclass
class InboxRow:
    task_id: int
    case_id: int
    task_spec_id: str
    task_name: str
    role: str
    process_id: str
    person_name: str | None
    scheme_code: str | None
    due_at: datetime | None
    created_at: datetime
    assignee_id: int | None
    completed_at: datetime | None
    overdue: bool


@dataclass
class InboxPage:
    tab: str
    rows: list[InboxRow]
    # Matching tasks, counted up to the count limit; `more` when there are more than that.
    total: int
    page: int
    per_page: int
    counts: dict[str, CappedCount] = field(default_factory=dict)
    more: bool = False
    # Another page of rows follows this one (known from the rows, whatever the count).
    has_next: bool = False

    @property
    def pages(self) -> int | None:
        """The number of pages, unknown (None) when the count stopped at its limit."""
        return None if self.more else max(1, -(-self.total // self.per_page))


def _base() -> Select[Any]:
    return (
        select(
            HumanTask.id,
            HumanTask.case_id,
            HumanTask.task_spec_id,
            HumanTask.name,
            HumanTask.role,
            HumanTask.process_id,
            Person.given_name,
            Person.family_name,
            Scheme.code,
            HumanTask.due_at,
            HumanTask.created_at,
            HumanTask.assignee_id,
            HumanTask.completed_at,
        )
        .join(Case, Case.id == HumanTask.case_id)
        .outerjoin(Person, Person.id == Case.person_id)
        .outerjoin(Scheme, Scheme.id == Case.scheme_id)
    )


def tab_criteria(user: User, tab: str, now: datetime | None = None) -> list[Any]:
    if tab == "assigned":
        return [HumanTask.status == "ready", HumanTask.assignee_id == user.id]
    if tab == "completed":
        return [HumanTask.status == "completed", HumanTask.completed_by_id == user.id]
    if tab == "available":
        return [
            HumanTask.status == "ready",
            HumanTask.assignee_id.is_(None),
            *assignment.claimable_criteria(user, now),
        ]
    raise ValueError(f"unknown inbox tab '{tab}' (known: {', '.join(TABS)})")


def filter_criteria(filters: InboxFilters, now: datetime) -> list[Any]:
    criteria: list[Any] = []
    if filters.process:
        criteria.append(HumanTask.process_id == filters.process)
    if filters.scheme:
        criteria.append(Scheme.code == filters.scheme)
    if filters.task:
        criteria.append(HumanTask.task_spec_id == filters.task)
    if filters.due_before:
        criteria.append(HumanTask.due_at < filters.due_before)
    if filters.due_after:
        criteria.append(HumanTask.due_at >= filters.due_after)
    if filters.overdue_only:
        criteria.append(and_(HumanTask.status == "ready", HumanTask.due_at < now))
    return criteria


def inbox(
    session: Session,
    user: User,
    now: datetime,
    tab: str = "assigned",
    filters: InboxFilters | None = None,
    sort: str = "due",
    page: int = 1,
    per_page: int = 25,
    count_limit: int | None = None,
) -> InboxPage:
    """One page of a tab, its total and the count of every tab.

    The counts stop at `count_limit` (the inbox page passes COUNT_LIMIT); None counts every
    matching task, for callers that promise an exact total (the API's `total`)."""
    filters = filters or InboxFilters()
    if sort not in SORTS:
        raise ValueError(f"unknown sort '{sort}' (known: {', '.join(SORTS)})")
    page = max(1, page)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    narrowing = filter_criteria(filters, now)
    criteria = tab_criteria(user, tab, now) + narrowing
    query = (
        _base()
        .where(*criteria)
        .order_by(*SORTS["completed" if tab == "completed" and sort == "due" else sort])
    )
    found = session.execute(query.limit(per_page + 1).offset((page - 1) * per_page)).all()
    counts = {t: tab_count(session, user, t, now, count_limit) for t in TABS}
    # Without filters the list is the whole tab, already counted.
    total = _filtered_count(session, criteria, filters, count_limit) if narrowing else counts[tab]
    return InboxPage(
        tab=tab,
        rows=[_row(r, now) for r in found[:per_page]],
        total=total.value,
        page=page,
        per_page=per_page,
        counts=counts,
        more=total.more,
        has_next=len(found) > per_page,
    )


def _filtered_count(
    session: Session, criteria: list[Any], filters: InboxFilters, limit: int | None
) -> CappedCount:
    query = select(HumanTask.id)
    if filters.scheme:
        query = query.join(Case, Case.id == HumanTask.case_id).outerjoin(
            Scheme, Scheme.id == Case.scheme_id
        )
    return capped_count(session, query.where(*criteria), limit)


def tab_count(
    session: Session,
    user: User,
    tab: str,
    now: datetime | None = None,
    limit: int | None = None,
) -> CappedCount:
    """How many tasks the tab lists, counted up to `limit` (every one when None)."""
    return capped_count(session, select(HumanTask.id).where(*tab_criteria(user, tab, now)), limit)


def _row(r: Any, now: datetime) -> InboxRow:
    name = f"{r.given_name} {r.family_name}" if r.given_name else None
    return InboxRow(
        task_id=r.id,
        case_id=r.case_id,
        task_spec_id=r.task_spec_id,
        task_name=r.name,
        role=r.role,
        process_id=r.process_id,
        person_name=name,
        scheme_code=r.code,
        due_at=r.due_at,
        created_at=r.created_at,
        assignee_id=r.assignee_id,
        completed_at=r.completed_at,
        overdue=r.completed_at is None and r.due_at is not None and r.due_at < now,
    )


def process_choices(session: Session) -> list[str]:
    return list(
        session.scalars(select(HumanTask.process_id).distinct().order_by(HumanTask.process_id))
    )


def task_choices(session: Session) -> list[tuple[str, str]]:
    return [
        tuple(r)
        for r in session.execute(
            select(HumanTask.task_spec_id, func.min(HumanTask.name))
            .group_by(HumanTask.task_spec_id)
            .order_by(HumanTask.task_spec_id)
        )
    ]
