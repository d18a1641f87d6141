"""Case search: the staff case list's filters, one page of it and how many cases match.

Every filter is answered from an index, so a search costs about the same with 10,000 or
1,000,000 cases:

- a person is found by the start of a given name, family name or e-mail address (each word
  of the query must start one of them, case-insensitively): "smi" finds Smith, not Nesmith;
- a certificate number from its start, case-insensitively ("CWI-2026-" finds every CWI
  certificate of 2026), matching the case that issued the certificate;
- scheme, status and process exactly.

The count stops at COUNT_LIMIT + 1 matching cases: beyond that the list says "more than
COUNT_LIMIT", because counting every case of a broad search reads every one of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session

from .case_views import visible_cases_criteria
from .models import Case, Certificate, HumanTask, ModelVersion, Person, Scheme, User

COUNT_LIMIT = 10_000
MAX_QUERY_WORDS = 5


@dataclass(frozen=True)
class CaseFilters:
    q: str = ""
    certificate: str = ""
    scheme: str = ""
    status: str = ""
    process: str = ""


@dataclass(frozen=True)
class CaseRow:
    id: int
    process_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    given_name: str | None
    family_name: str | None
    code: str | None


@dataclass
class CasePage:
    rows: list[CaseRow]
    # Matching cases, counted up to COUNT_LIMIT; `more` when there are more than that.
    total: int
    more: bool
    page: int
    per_page: int
    has_next: bool

    @property
    def pages(self) -> int | None:
        """The number of pages, unknown (None) when the count stopped at COUNT_LIMIT."""
        return None if self.more else max(1, -(-self.total // self.per_page))


def _prefix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def case_query(user: User, filters: CaseFilters) -> Select[Any]:
    """The cases `user` may see that match `filters` (unordered)."""
    query = (
        select(
            Case.id,
            Case.process_id,
            Case.status,
            Case.started_at,
            Case.ended_at,
            Person.given_name,
            Person.family_name,
            Scheme.code,
        )
        .outerjoin(Person, Person.id == Case.person_id)
        .outerjoin(Scheme, Scheme.id == Case.scheme_id)
        .where(*visible_cases_criteria(user))
    )
    for word in filters.q.split()[:MAX_QUERY_WORDS]:
        pattern = _prefix(word.lower())
        query = query.where(
            or_(
                func.lower(Person.given_name).like(pattern, escape="\\"),
                func.lower(Person.family_name).like(pattern, escape="\\"),
                func.lower(Person.email).like(pattern, escape="\\"),
            )
        )
    if filters.certificate:
        query = query.where(
            exists().where(
                Certificate.case_id == Case.id,
                func.upper(Certificate.number).like(
                    _prefix(filters.certificate.upper()), escape="\\"
                ),
            )
        )
    if filters.scheme:
        query = query.where(Scheme.code == filters.scheme)
    if filters.status:
        query = query.where(Case.status == filters.status)
    if filters.process:
        query = query.where(Case.process_id == filters.process)
    return query


def capped_count(session: Session, query: Select[Any], limit: int = COUNT_LIMIT) -> int:
    """How many rows `query` returns, counting no further than limit + 1."""
    return session.scalar(select(func.count()).select_from(query.limit(limit + 1).subquery())) or 0


def search_cases(
    session: Session,
    user: User,
    filters: CaseFilters,
    page: int = 1,
    per_page: int = 25,
    count_limit: int = COUNT_LIMIT,
) -> CasePage:
    """One page of the matching cases, newest first, and how many match (up to count_limit)."""
    page = max(1, page)
    query = case_query(user, filters)
    found = session.execute(
        query.order_by(Case.id.desc()).limit(per_page + 1).offset((page - 1) * per_page)
    ).all()
    counted = capped_count(session, query, count_limit)
    return CasePage(
        rows=[CaseRow(*r) for r in found[:per_page]],
        total=min(counted, count_limit),
        more=counted > count_limit,
        page=page,
        per_page=per_page,
        has_next=len(found) > per_page,
    )


def case_extras(
    session: Session, case_ids: list[int]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Open task names and certificate numbers of the listed cases (two queries)."""
    tasks: dict[int, list[str]] = defaultdict(list)
    certificates: dict[int, list[str]] = defaultdict(list)
    if case_ids:
        for case_id, name in session.execute(
            select(HumanTask.case_id, HumanTask.name)
            .where(HumanTask.case_id.in_(case_ids), HumanTask.status == "ready")
            .order_by(HumanTask.id)
        ):
            tasks[case_id].append(name)
        for case_id, number in session.execute(
            select(Certificate.case_id, Certificate.number)
            .where(Certificate.case_id.in_(case_ids))
            .order_by(Certificate.id)
        ):
            certificates[case_id].append(number)
    return tasks, certificates


def filter_choices(session: Session) -> tuple[list[str], list[str]]:
    """The schemes and the processes the case list can be filtered by (from the scheme and
    model tables, not from the cases)."""
    schemes = list(session.scalars(select(Scheme.code).distinct().order_by(Scheme.code)))
    processes = list(
        session.scalars(
            select(ModelVersion.process_id).distinct().order_by(ModelVersion.process_id)
        )
    )
    return schemes, processes
