"""The manager's dashboard: open steps that are overdue or soon due, where they pile up, how
overdue work went over the last weeks, and which certificates expire soon.

Everything is computed in SQL (filters, sorting, pagination, counts), so the page stays fast
with a million cases: the step list walks the due dates of the open steps in order and stops
after one page; the counts are one grouped query whose few hundred groups are rolled up here;
the weekly chart is two range scans of due dates (open steps, steps completed late) with a
conditional sum per week; the expiring certificates are one range scan of expiry dates.
`bench/dashboard.py` times them with 1,000,000 cases and names the indexes they want.

Words used here:
- a *step* is an open human task (status 'ready') of a running case (or of one that failed
  and waits for a retry); it is *overdue* when now > due_at, *due soon* when it is due
  within the next `soon_days` days (7 unless asked otherwise);
- its *process* is the procedure of its case (`cases.process_id`: application, surveillance,
  recertification, ...), also for a step of a model the case called (a decision);
- *days overdue* are whole days past the due time, rounded down; negative for a step not yet
  due: -1 means due within a day, -7 within seven days (so it is >= 0 exactly when overdue).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, select, text, union_all
from sqlalchemy.orm import Session, aliased

from .errors import CertrailError
from .models import (
    HELD_STATUSES,
    Case,
    Certificate,
    HumanTask,
    ModelVersion,
    Person,
    Scheme,
    User,
)

# The procedures managers watch most closely: listed first and highlighted.
PRIORITY_PROCESSES = ("surveillance", "recertification")
WINDOWS = ("both", "overdue", "due_soon")
UNASSIGNED = "unassigned"
DEFAULT_SOON_DAYS = 7
MAX_SOON_DAYS = 90
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000
EXPIRY_HORIZONS = (30, 60, 90)
EXPIRING_LIST_LIMIT = 100
CHART_WEEKS = 12
# A case still needs work while it runs (or waits for someone to retry it after an error).
OPEN_CASE_STATUSES = ("running", "errored")
MAX_TEXT = 200
_SPEC_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_NO_SPACE = re.compile(r"^\S+$")

# Sort orders of the step list; every one ends with the task id so pages never overlap.
SORTS: dict[str, tuple[Any, ...]] = {
    "overdue": (HumanTask.due_at.asc(), HumanTask.id.asc()),
    "-overdue": (HumanTask.due_at.desc(), HumanTask.id.desc()),
    "case": (HumanTask.case_id.asc(), HumanTask.id.asc()),
    "person": (
        Person.family_name.asc().nulls_last(),
        Person.given_name.asc().nulls_last(),
        HumanTask.due_at.asc(),
        HumanTask.id.asc(),
    ),
    "assignee": (User.username.asc().nulls_first(), HumanTask.due_at.asc(), HumanTask.id.asc()),
    "expiry": (
        Certificate.expires_on.asc().nulls_last(),
        HumanTask.due_at.asc(),
        HumanTask.id.asc(),
    ),
}
DEFAULT_SORT = "overdue"
# Sorts an index on the steps themselves can deliver in order.
INDEX_ORDERED_SORTS = frozenset({"overdue", "-overdue", "case"})


class InvalidFilter(CertrailError):
    """A dashboard filter value that makes no sense; the message names the parameter."""

    def __init__(self, parameter: str, problem: str):
        super().__init__(f"the parameter '{parameter}' {problem}")
        self.parameter = parameter


def tuned_for_short_reads(session: Session) -> None:
    """Turn PostgreSQL's JIT compilation and parallel workers off for the rest of this
    transaction (every query here does): on these short index-only reads they cost far more
    than they save (measured at 1,000,000 cases: 200-260 ms of JIT compilation on counts
    that need under 100 ms without it; starting workers made the weekly chart 103 ms
    instead of 51 ms)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def const(value: str) -> Any:
    """A fixed value written into the SQL rather than sent as a parameter, so PostgreSQL can
    match the partial indexes on it in every plan (a prepared statement's generic plan
    cannot prove `status = $1` implies an index's `status = 'ready'`)."""
    return literal(value, literal_execute=True)


def consts(values: tuple[str, ...]) -> list[Any]:
    return [const(v) for v in values]


# -- what is asked -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepFilters:
    process: str | None = None
    scheme: str | None = None
    # A username, or UNASSIGNED for steps nobody holds.
    assignee: str | None = None
    # A task spec id (the BPMN element id of the step, e.g. `decide_certification`).
    task: str | None = None
    window: str = "both"
    soon_days: int = DEFAULT_SOON_DAYS


@dataclass(frozen=True)
class DashboardQuery:
    filters: StepFilters = field(default_factory=StepFilters)
    sort: str = DEFAULT_SORT
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    # Which list of expiring certificates is shown: within 30, 60 or 90 days.
    horizon: int = EXPIRY_HORIZONS[0]


def parse_query(params: Mapping[str, str]) -> DashboardQuery:
    """The dashboard query from text parameters (a query string, CLI options). Raises
    InvalidFilter naming the parameter for a value that cannot be right."""

    def value_of(name: str) -> str | None:
        value = (params.get(name) or "").strip()
        if len(value) > MAX_TEXT:
            raise InvalidFilter(name, f"is too long (at most {MAX_TEXT} characters)")
        return value or None

    def whole_number(name: str, default: int, low: int, high: int) -> int:
        value = value_of(name)
        if value is None:
            return default
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise InvalidFilter(name, f"must be a whole number from {low} to {high}, not {value!r}")
        return int(value)

    process = value_of("process")
    if process is not None and not _SPEC_ID.match(process):
        raise InvalidFilter("process", f"must be a process id, not {process!r}")
    task = value_of("task")
    if task is not None and not _SPEC_ID.match(task):
        raise InvalidFilter("task", f"must be a step id such as review_eligibility, not {task!r}")
    assignee = value_of("assignee")
    if assignee is not None and not _NO_SPACE.match(assignee):
        raise InvalidFilter("assignee", f"must be a username or '{UNASSIGNED}', not {assignee!r}")
    window = value_of("window") or "both"
    if window not in WINDOWS:
        raise InvalidFilter("window", f"must be one of: {', '.join(WINDOWS)}")
    sort = value_of("sort") or DEFAULT_SORT
    if sort not in SORTS:
        raise InvalidFilter("sort", f"must be one of: {', '.join(SORTS)}")
    horizon = value_of("horizon") or str(EXPIRY_HORIZONS[0])
    if horizon not in {str(h) for h in EXPIRY_HORIZONS}:
        raise InvalidFilter("horizon", f"must be one of: {', '.join(map(str, EXPIRY_HORIZONS))}")
    return DashboardQuery(
        filters=StepFilters(
            process=process,
            scheme=value_of("scheme"),
            assignee=assignee,
            task=task,
            window=window,
            soon_days=whole_number("days", DEFAULT_SOON_DAYS, 1, MAX_SOON_DAYS),
        ),
        sort=sort,
        page=whole_number("page", 1, 1, MAX_PAGE),
        per_page=whole_number("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
        horizon=int(horizon),
    )


def check_filters(session: Session, filters: StepFilters) -> None:
    """Refuse filter values that name nothing in this database (InvalidFilter)."""
    if filters.process and filters.process not in process_choices(session):
        raise InvalidFilter("process", f"names no known process: {filters.process!r}")
    if filters.scheme and filters.scheme not in scheme_choices(session):
        raise InvalidFilter("scheme", f"names no known scheme: {filters.scheme!r}")
    if filters.assignee and filters.assignee != UNASSIGNED:
        found = session.scalar(select(User.id).where(User.username == filters.assignee))
        if found is None:
            raise InvalidFilter("assignee", f"names nobody: there is no user {filters.assignee!r}")


def process_choices(session: Session) -> list[str]:
    """Processes to filter by: the watched ones first, then every other published model."""
    known = set(session.scalars(select(ModelVersion.process_id).distinct()))
    return list(PRIORITY_PROCESSES) + sorted(known - set(PRIORITY_PROCESSES))


def scheme_choices(session: Session) -> list[str]:
    return list(session.scalars(select(Scheme.code).distinct().order_by(Scheme.code)))


# -- the step list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRow:
    task_id: int
    case_id: int
    process: str
    task_spec_id: str
    task_name: str
    role: str
    assignee_username: str | None
    assignee_name: str | None
    person_name: str | None
    scheme_code: str | None
    due_at: datetime
    days_overdue: int
    overdue: bool
    certificate_number: str | None
    certificate_expires_on: date | None

    @property
    def watched(self) -> bool:
        """A step of a surveillance or recertification case."""
        return self.process in PRIORITY_PROCESSES

    def as_report(self) -> dict[str, Any]:
        """The step as `certrail overdue --json` prints it (a product contract: keep keys)."""
        return {
            "case_id": self.case_id,
            "process": self.process,
            "task": self.task_spec_id,
            "task_name": self.task_name,
            "assignee": self.assignee_username,
            "person": self.person_name,
            "scheme": self.scheme_code,
            "due_at": self.due_at.isoformat(),
            "days_overdue": self.days_overdue,
            "certificate": self.certificate_number,
            "certificate_expires_on": (
                self.certificate_expires_on.isoformat() if self.certificate_expires_on else None
            ),
        }


def days_overdue(due_at: datetime, now: datetime) -> int:
    """Whole days past due, rounded down; negative while not yet due (-1: due within a day)."""
    return math.floor((now - due_at).total_seconds() / 86400)


def _window_criteria(filters: StepFilters, now: datetime) -> list[Any]:
    soon = now + timedelta(days=filters.soon_days)
    if filters.window == "overdue":
        return [HumanTask.due_at < now]
    if filters.window == "due_soon":
        return [HumanTask.due_at >= now, HumanTask.due_at < soon]
    return [HumanTask.due_at < soon]


def _assignee_criterion(username: str) -> Any:
    if username == UNASSIGNED:
        return HumanTask.assignee_id.is_(None)
    return HumanTask.assignee_id == (
        select(User.id).where(User.username == username).scalar_subquery()
    )


def _subject_criteria(filters: StepFilters) -> list[Any]:
    """The filters that do not depend on time: process, scheme, assignee, step."""
    criteria: list[Any] = []
    if filters.process:
        criteria.append(HumanTask.case_process_id == filters.process)
    if filters.scheme:
        criteria.append(
            HumanTask.scheme_id.in_(select(Scheme.id).where(Scheme.code == filters.scheme))
        )
    if filters.assignee:
        criteria.append(_assignee_criterion(filters.assignee))
    if filters.task:
        criteria.append(HumanTask.task_spec_id == filters.task)
    return criteria


def step_criteria(filters: StepFilters, now: datetime) -> list[Any]:
    """SQL criteria on HumanTask alone for the selected open steps. Only running (or
    errored, waiting for a retry) cases have ready tasks: a case that ends cancels its
    open tasks in the same unit of work."""
    return [
        HumanTask.status == const("ready"),
        *_window_criteria(filters, now),
        *_subject_criteria(filters),
    ]


def _step_select() -> Select[Any]:
    return (
        select(
            HumanTask.id,
            HumanTask.case_id,
            HumanTask.case_process_id,
            HumanTask.task_spec_id,
            HumanTask.name,
            HumanTask.role,
            User.username,
            User.display_name,
            Person.given_name,
            Person.family_name,
            Scheme.code,
            HumanTask.due_at,
            Certificate.number,
            Certificate.expires_on,
        )
        .select_from(HumanTask)
        .join(Case, Case.id == HumanTask.case_id)
        .outerjoin(Person, Person.id == Case.person_id)
        .outerjoin(Scheme, Scheme.id == HumanTask.scheme_id)
        .outerjoin(User, User.id == HumanTask.assignee_id)
        .outerjoin(Certificate, Certificate.id == Case.certificate_id)
    )


def _step_row(r: Any, now: datetime) -> StepRow:
    return StepRow(
        task_id=r.id,
        case_id=r.case_id,
        process=r.case_process_id,
        task_spec_id=r.task_spec_id,
        task_name=r.name,
        role=r.role,
        assignee_username=r.username,
        assignee_name=r.display_name,
        person_name=f"{r.given_name} {r.family_name}" if r.given_name is not None else None,
        scheme_code=r.code,
        due_at=r.due_at,
        days_overdue=days_overdue(r.due_at, now),
        overdue=r.due_at < now,
        certificate_number=r.number,
        certificate_expires_on=r.expires_on,
    )


def _ordered(sort: str) -> tuple[Any, ...]:
    if sort not in SORTS:
        raise InvalidFilter("sort", f"must be one of: {', '.join(SORTS)}")
    return SORTS[sort]


def step_page(
    session: Session,
    now: datetime,
    filters: StepFilters,
    sort: str = DEFAULT_SORT,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> list[StepRow]:
    """One page of the selected steps.

    Sorted by due date or case, the page is read in index order and stops early. Sorted by
    anything that lives on the case (person, certificate, assignee), the selected steps are
    found first (a materialised CTE over the open-steps index) and only they are joined and
    sorted: otherwise PostgreSQL may sort every case before looking for open steps."""
    tuned_for_short_reads(session)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    order = _ordered(sort)
    query = _step_select()
    if sort in INDEX_ORDERED_SORTS:
        query = query.where(*step_criteria(filters, now))
    else:
        selected = select(HumanTask.id).where(*step_criteria(filters, now)).cte("selected")
        if session.get_bind().dialect.name == "postgresql":
            selected = selected.prefix_with("MATERIALIZED")
        query = query.join(selected, selected.c.id == HumanTask.id)
    query = query.order_by(*order).limit(per_page).offset((max(1, page) - 1) * per_page)
    return [_step_row(r, now) for r in session.execute(query)]


def all_steps(
    session: Session,
    now: datetime,
    filters: StepFilters,
    sort: str = DEFAULT_SORT,
    limit: int | None = None,
) -> Iterator[StepRow]:
    """Every selected step (CSV export, `certrail overdue`), fetched in batches."""
    tuned_for_short_reads(session)
    query = _step_select().where(*step_criteria(filters, now)).order_by(*_ordered(sort))
    if limit is not None:
        query = query.limit(limit)
    for r in session.execute(query.execution_options(yield_per=2000)):
        yield _step_row(r, now)


def overdue_steps(session: Session, now: datetime) -> Iterator[StepRow]:
    """Every overdue open step, most overdue first."""
    return all_steps(session, now, StepFilters(window="overdue"))


# -- counts of the selection -------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """Selected steps sharing one value (a process, a step, a scheme, an assignee)."""

    key: str | None
    label: str
    total: int
    overdue: int

    @property
    def due_soon(self) -> int:
        return self.total - self.overdue


@dataclass(frozen=True)
class StepCounts:
    total: int
    overdue: int
    by_process: list[Tally]
    by_step: list[Tally]
    by_scheme: list[Tally]
    by_assignee: list[Tally]

    @property
    def due_soon(self) -> int:
        return self.total - self.overdue

    def watched_overdue(self) -> int:
        """Overdue steps of surveillance and recertification cases."""
        return sum(t.overdue for t in self.by_process if t.key in PRIORITY_PROCESSES)

    def unassigned_overdue(self) -> int:
        return sum(t.overdue for t in self.by_assignee if t.key is None)


def step_counts(session: Session, now: datetime, filters: StepFilters) -> StepCounts:
    """How many selected steps there are per process, step, scheme and assignee (and how
    many of them are overdue): one grouped query over the open-steps index alone; scheme
    codes and staff names are looked up for the few groups, and the groups rolled up here."""
    tuned_for_short_reads(session)
    overdue = func.sum(case((HumanTask.due_at < now, 1), else_=0))
    query = (
        select(
            HumanTask.case_process_id,
            HumanTask.task_spec_id,
            func.min(HumanTask.name),
            HumanTask.scheme_id,
            HumanTask.assignee_id,
            func.count(),
            overdue,
        )
        .where(*step_criteria(filters, now))
        .group_by(
            HumanTask.case_process_id,
            HumanTask.task_spec_id,
            HumanTask.scheme_id,
            HumanTask.assignee_id,
        )
    )
    groups_found = session.execute(query).all()
    scheme_codes = dict(
        session.execute(
            select(Scheme.id, Scheme.code).where(
                Scheme.id.in_({g[3] for g in groups_found if g[3] is not None})
            )
        ).all()
    )
    staff = {
        user_id: (username, display)
        for user_id, username, display in session.execute(
            select(User.id, User.username, User.display_name).where(
                User.id.in_({g[4] for g in groups_found if g[4] is not None})
            )
        )
    }
    process: dict[str | None, list[Any]] = {p: [p, 0, 0] for p in PRIORITY_PROCESSES}
    step: dict[str | None, list[Any]] = {}
    scheme: dict[str | None, list[Any]] = {}
    assignee: dict[str | None, list[Any]] = {}
    total = late = 0
    for proc, spec, name, scheme_id, assignee_id, count, n_overdue in groups_found:
        code = scheme_codes.get(scheme_id)
        username, display = staff.get(assignee_id, (None, None))
        n_overdue = int(n_overdue or 0)
        total += count
        late += n_overdue
        for groups, key, label in (
            (process, proc, proc),
            (step, spec, name),
            (scheme, code, code or "no scheme"),
            (assignee, username, display or "Unassigned"),
        ):
            entry = groups.setdefault(key, [label, 0, 0])
            entry[1] += count
            entry[2] += n_overdue

    def tallies(groups: dict[str | None, list[Any]]) -> list[Tally]:
        return [Tally(key, label, n, o) for key, (label, n, o) in groups.items()]

    def busiest(t: Tally) -> tuple[int, int, str]:
        return (-t.overdue, -t.total, t.label)

    watched = [t for t in tallies(process) if t.key in PRIORITY_PROCESSES]
    others = sorted((t for t in tallies(process) if t.key not in PRIORITY_PROCESSES), key=busiest)
    return StepCounts(
        total=total,
        overdue=late,
        by_process=watched + others,
        by_step=sorted(tallies(step), key=busiest),
        by_scheme=sorted(tallies(scheme), key=lambda t: (t.key is None, t.label)),
        by_assignee=sorted(tallies(assignee), key=lambda t: (t.key is not None, *busiest(t))),
    )


# -- overdue per week --------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueWeek:
    year: int
    week: int
    starts_on: date
    overdue: int

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def week_starts(now: datetime, weeks: int = CHART_WEEKS) -> list[datetime]:
    """The Mondays (00:00) of the last `weeks` ISO weeks, the current one last."""
    monday = datetime.combine(now.date() - timedelta(days=now.weekday()), datetime.min.time())
    return [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def overdue_per_week(
    session: Session, now: datetime, filters: StepFilters | None = None, weeks: int = CHART_WEEKS
) -> list[OverdueWeek]:
    """Steps that went overdue, by the ISO week of their due date, for the last `weeks`
    weeks: due in that week and completed after their due time, or still open past it.
    Two range scans of due dates (open steps; steps completed late) and a conditional sum
    per week."""
    tuned_for_short_reads(session)
    starts = week_starts(now, weeks)
    ends = starts[1:] + [starts[-1] + timedelta(weeks=1)]
    subject = _subject_criteria(filters) if filters is not None else []
    branches = []
    for state in (
        [HumanTask.status == const("ready")],
        [HumanTask.status == const("completed"), HumanTask.completed_at > HumanTask.due_at],
    ):
        branch = select(HumanTask.due_at.label("due_at")).where(
            *state, HumanTask.due_at >= starts[0], HumanTask.due_at < now
        )
        branches.append(branch.where(*subject))
    late = union_all(*branches).subquery()
    sums = [
        func.sum(case((and_(late.c.due_at >= low, late.c.due_at < high), 1), else_=0))
        for low, high in zip(starts, ends, strict=True)
    ]
    counts = session.execute(select(*sums)).one()
    result = []
    for start, count in zip(starts, counts, strict=True):
        year, week, _day = start.isocalendar()
        result.append(OverdueWeek(year, week, start.date(), int(count or 0)))
    return result


# -- certificates expiring soon ----------------------------------------------------------------


@dataclass(frozen=True)
class ExpiringCertificate:
    certificate_id: int
    number: str
    scheme_code: str
    status: str
    expires_on: date
    holder: str
    person_id: int
    days_left: int
    # The open recertification case about the certificate, if one has started.
    recertification_case_id: int | None

    @property
    def recertification_open(self) -> bool:
        return self.recertification_case_id is not None


@dataclass(frozen=True)
class ExpiryCount:
    days: int
    total: int
    without_recertification: int


@dataclass(frozen=True)
class ExpiringCertificates:
    horizon: int
    counts: list[ExpiryCount]
    rows: list[ExpiringCertificate]

    @property
    def shown_total(self) -> int:
        return next(c.total for c in self.counts if c.days == self.horizon)


def _open_recertifications() -> Any:
    """The certificates with an open recertification case (a subquery of their ids)."""
    return (
        select(Case.certificate_id.label("certificate_id"))
        .where(
            Case.process_id == const("recertification"),
            Case.status.in_(consts(OPEN_CASE_STATUSES)),
            Case.certificate_id.is_not(None),
        )
        .distinct()
        .subquery()
    )


def _expiring_criteria(today: date, days: int, scheme: str | None) -> list[Any]:
    criteria = [
        Certificate.status.in_(consts(HELD_STATUSES)),
        Certificate.expires_on >= today,
        Certificate.expires_on <= today + timedelta(days=days),
    ]
    if scheme:
        criteria.append(Certificate.scheme_code == scheme)
    return criteria


def expiring_counts(session: Session, today: date, scheme: str | None = None) -> list[ExpiryCount]:
    """Held certificates expiring within 30, 60 and 90 days, and how many of them have no
    open recertification case: one range scan of expiry dates, one of the open
    recertification cases."""
    tuned_for_short_reads(session)
    recertifying = _open_recertifications()
    missing = recertifying.c.certificate_id.is_(None)
    sums = []
    for days in EXPIRY_HORIZONS:
        within = Certificate.expires_on <= today + timedelta(days=days)
        sums.append(func.sum(case((within, 1), else_=0)))
        sums.append(func.sum(case((and_(within, missing), 1), else_=0)))
    query = (
        select(*sums)
        .select_from(Certificate)
        .outerjoin(recertifying, recertifying.c.certificate_id == Certificate.id)
        .where(*_expiring_criteria(today, max(EXPIRY_HORIZONS), scheme))
    )
    row = session.execute(query).one()
    return [
        ExpiryCount(days, int(row[2 * i] or 0), int(row[2 * i + 1] or 0))
        for i, days in enumerate(EXPIRY_HORIZONS)
    ]


def expiring_certificates(
    session: Session,
    today: date,
    horizon: int = EXPIRY_HORIZONS[0],
    scheme: str | None = None,
    limit: int = EXPIRING_LIST_LIMIT,
) -> ExpiringCertificates:
    """Held certificates expiring within `horizon` days (soonest first, at most `limit`),
    with their holder and open recertification case; plus the counts for every horizon."""
    if horizon not in EXPIRY_HORIZONS:
        raise InvalidFilter("horizon", f"must be one of: {', '.join(map(str, EXPIRY_HORIZONS))}")
    tuned_for_short_reads(session)
    recert = aliased(Case)
    recertification_case = (
        select(func.min(recert.id))
        .where(
            recert.certificate_id == Certificate.id,
            recert.process_id == const("recertification"),
            recert.status.in_(consts(OPEN_CASE_STATUSES)),
        )
        .scalar_subquery()
    )
    query = (
        select(
            Certificate.id,
            Certificate.number,
            Certificate.scheme_code,
            Certificate.status,
            Certificate.expires_on,
            Certificate.person_id,
            Person.given_name,
            Person.family_name,
            recertification_case,
        )
        .join(Person, Person.id == Certificate.person_id)
        .where(*_expiring_criteria(today, horizon, scheme))
        .order_by(Certificate.expires_on, Certificate.number)
        .limit(limit)
    )
    rows = [
        ExpiringCertificate(
            certificate_id=r.id,
            number=r.number,
            scheme_code=r.scheme_code,
            status=r.status,
            expires_on=r.expires_on,
            holder=f"{r.given_name} {r.family_name}",
            person_id=r.person_id,
            days_left=(r.expires_on - today).days,
            recertification_case_id=r[8],
        )
        for r in session.execute(query)
    ]
    return ExpiringCertificates(horizon, expiring_counts(session, today, scheme), rows)


# -- the whole dashboard -----------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    query: DashboardQuery
    rows: list[StepRow]
    counts: StepCounts
    weeks: list[OverdueWeek]
    expiring: ExpiringCertificates

    @property
    def pages(self) -> int:
        return max(1, -(-self.counts.total // self.query.per_page))


def dashboard(session: Session, now: datetime, query: DashboardQuery) -> Dashboard:
    """Everything the dashboard page shows, for one query (filters checked first)."""
    filters = query.filters
    check_filters(session, filters)
    return Dashboard(
        now=now,
        query=query,
        rows=step_page(session, now, filters, query.sort, query.page, query.per_page),
        counts=step_counts(session, now, filters),
        weeks=overdue_per_week(session, now, filters),
        expiring=expiring_certificates(session, now.date(), query.horizon, filters.scheme),
    )
