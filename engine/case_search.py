"""Case search: the staff case list's filters, one page of it and how many cases match.

Every filter is answered from an index, so a search costs about the same with 10,000 or
1,000,000 cases:

- a person is found by the start of a given name, family name or e-mail address (each word
  of the query must start one of them, case-insensitively): "smi" finds Smith, not Nesmith;
- a certificate number from its start, case-insensitively ("CWI-2026-" finds every CWI
  certificate of 2026), matching the case that issued the certificate;
- scheme, status and process exactly.

The count stops at COUNT_LIMIT + 1 matching cases (`engine.counting`): beyond that the list
says "more than COUNT_LIMIT", because counting every case of a broad search reads every one of
them.

Staff outside the oversight roles see only some cases (`engine.case_views`): those with a task
of one of their roles, one assigned to or done by them, those they started. Tested case by
case, that rule reads every case (or every task of their roles) before the first page, so
the list takes the newest matching cases of each of those ways from its own index and merges
them: a page, and the count up to its limit, cost the same with any number of cases. The
API's case list counts exactly (its contract has no "more than"): the ids of each way, read
from that way's index, counted once each.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select, union, union_all
from sqlalchemy.orm import Session

from .case_views import CaseVisibility, case_visibility, visible_cases_criteria
from .counting import COUNT_LIMIT, capped_count
from .models import Case, Certificate, HumanTask, ModelVersion, Person, Scheme, User

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


ROW_COLUMNS = (
    Case.id,
    Case.process_id,
    Case.status,
    Case.started_at,
    Case.ended_at,
    Person.given_name,
    Person.family_name,
    Scheme.code,
)


def _rows() -> Select[Any]:
    """The columns of the case list: each case with its person's name and scheme's code."""
    return (
        select(*ROW_COLUMNS)
        .outerjoin(Person, Person.id == Case.person_id)
        .outerjoin(Scheme, Scheme.id == Case.scheme_id)
    )


def _matching(filters: CaseFilters) -> list[ColumnElement[bool]]:
    """Criteria on Case for the cases matching `filters` (whoever asks); on the case's own
    columns, so that a list of case ids alone can be read from an index."""
    criteria: list[ColumnElement[bool]] = []
    words = [_prefix(word.lower()) for word in filters.q.split()[:MAX_QUERY_WORDS]]
    if words:
        criteria.append(
            Case.person_id.in_(
                select(Person.id).where(
                    *(
                        or_(
                            func.lower(Person.given_name).like(pattern, escape="\\"),
                            func.lower(Person.family_name).like(pattern, escape="\\"),
                            func.lower(Person.email).like(pattern, escape="\\"),
                        )
                        for pattern in words
                    )
                )
            )
        )
    if filters.certificate:
        criteria.append(
            exists().where(
                Certificate.case_id == Case.id,
                func.upper(Certificate.number).like(
                    _prefix(filters.certificate.upper()), escape="\\"
                ),
            )
        )
    if filters.scheme:
        criteria.append(Case.scheme_id.in_(select(Scheme.id).where(Scheme.code == filters.scheme)))
    if filters.status:
        criteria.append(Case.status == filters.status)
    if filters.process:
        criteria.append(Case.process_id == filters.process)
    return criteria


def case_query(user: User, filters: CaseFilters) -> Select[Any]:
    """The cases `user` may see that match `filters` (unordered)."""
    return _rows().where(*_matching(filters), *visible_cases_criteria(user))


def _newest_visible(
    visibility: CaseVisibility, criteria: list[ColumnElement[bool]], first: int
) -> Select[Any]:
    """Ids of cases meeting `criteria` that the user may see, the newest `first` of them
    included: the newest `first` such cases of each way a case becomes visible to them
    (`CaseVisibility.ways`), some ids more than once.

    Each way is read newest first from its own index and stops after `first` cases, so the
    cost follows `first`, not the number of cases. Without filters the case ids come from
    the index alone (every task's case exists)."""
    newest = []
    for way in visibility.ways():
        ids = select(Case.id).where(*criteria, Case.id.in_(way)) if criteria else way.distinct()
        case_id = ids.selected_columns[0]
        newest.append(ids.order_by(case_id.desc()).limit(first).subquery())
    return union_all(*(select(ids.c[0].label("id")) for ids in newest))


def _once_each(ids: Select[Any]) -> Select[Any]:
    """`ids` (newest first within each part of the union), each id once, newest first.

    The parts are merged in order and an id is kept when it differs from the one before it,
    so that counting the first n ids reads about n rows: a DISTINCT would read every part to
    its end first."""
    merged = ids.subquery()
    newer = func.lag(merged.c.id).over(order_by=merged.c.id.desc())
    stream = select(merged.c.id, newer.label("newer")).subquery()
    return select(stream.c.id).where(stream.c.newer.is_distinct_from(stream.c.id))


def newest_visible_criteria(
    user: User, filters: CaseFilters, newest: int
) -> list[ColumnElement[bool]]:
    """Criteria on Case selecting, of the cases `user` may see that match `filters`, at least
    the newest `newest` (every one when the user sees every case): what a page ending at
    `newest` needs, read through the indexes of `_newest_visible`."""
    visibility = case_visibility(user)
    criteria = _matching(filters)
    if visibility is None:
        return criteria
    return [Case.id.in_(_newest_visible(visibility, criteria, newest))]


def newest_cases(user: User, filters: CaseFilters, limit: int) -> Select[Any]:
    """The newest `limit` cases `user` may see that match `filters`, newest first, as rows of
    the case list (the CSV export)."""
    return (
        _rows()
        .where(*newest_visible_criteria(user, filters, limit))
        .order_by(Case.id.desc())
        .limit(limit)
    )


def count_visible(session: Session, user: User, filters: CaseFilters) -> int:
    """How many cases `user` may see match `filters`, exactly (the API's `total`).

    The ids of each way a case becomes visible are read from that way's index and counted
    once each (UNION): at 1,000,000 cases, 0.27 s for a reviewer who sees 95 % of them,
    where the rule tested case by case took 2.1 s."""
    visibility = case_visibility(user)
    criteria = _matching(filters)
    if visibility is None:
        ids = select(Case.id).where(*criteria)
    else:
        ids = union(
            *(
                select(Case.id).where(*criteria, Case.id.in_(way)) if criteria else way
                for way in visibility.ways()
            )
        )
    return session.scalar(select(func.count()).select_from(ids.subquery())) or 0


def visible_cases_page(
    session: Session, user: User, filters: CaseFilters, page: int, per_page: int
) -> tuple[list[Any], int]:
    """One page of the cases `user` may see that match `filters`, newest first, as rows of
    (Case, ModelVersion, Person, Scheme), and how many match, exactly (the API's list)."""
    offset = (max(1, page) - 1) * per_page
    rows = session.execute(
        select(Case, ModelVersion, Person, Scheme)
        .join(ModelVersion, ModelVersion.id == Case.model_version_id)
        .outerjoin(Person, Person.id == Case.person_id)
        .outerjoin(Scheme, Scheme.id == Case.scheme_id)
        .where(*newest_visible_criteria(user, filters, offset + per_page))
        .order_by(Case.id.desc())
        .limit(per_page)
        .offset(offset)
    ).all()
    return list(rows), count_visible(session, user, filters)


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
    offset = (page - 1) * per_page
    visibility = case_visibility(user)
    if visibility is None:
        query = case_query(user, filters)
        matching = query
    else:
        # The page and the count from the newest cases of each way the user sees cases: the
        # same cases as `case_query` selects (tests/engine/test_case_search.py).
        criteria = _matching(filters)
        query = _rows().where(
            Case.id.in_(_newest_visible(visibility, criteria, offset + per_page + 1))
        )
        matching = _once_each(_newest_visible(visibility, criteria, count_limit + 1))
    found = session.execute(query.order_by(Case.id.desc()).limit(per_page + 1).offset(offset)).all()
    counted = capped_count(session, matching, count_limit)
    return CasePage(
        rows=[CaseRow(*r) for r in found[:per_page]],
        total=counted.value,
        more=counted.more,
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
