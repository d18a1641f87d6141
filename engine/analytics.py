"""Management figures for a period: how much work came in and went out, how decisions went,
how long each step takes, where steps run late, and how appeals and complaints ended.

Every query works the same on SQLite and PostgreSQL: months come from SQL `extract` (which
SQLAlchemy renders for both), form answers from the JSON column's portable accessors, and the
medians are taken in Python over at most `MAX_DURATIONS` completed steps.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import case as when
from sqlalchemy import extract, func, or_, select
from sqlalchemy.orm import Session

from .certificates import add_months
from .dashboard import InvalidFilter
from .models import Case, HumanTask, Scheme

DEFAULT_MONTHS = 12
MAX_MONTHS = 60
MAX_DURATIONS = 300_000
TOP_OVERDUE = 10
NO_SCHEME = "(none)"
# The step that decides on certification and its answer (forms/certification_decision.json).
DECISION_STEP = "decide_certification"
DECISION_FIELD = "certification_decision"
# Where an appeal or a complaint ends, and the answer that says how (forms/*.json).
OUTCOME_STEPS = {
    "appeal": [("decide_appeal", "appeal_outcome"), ("validate_appeal", "appeal_valid")],
    "complaint": [
        ("close_complaint", "complaint_closure_outcome"),
        ("confirm_relevance", "complaint_relevant"),
    ],
}
# A "no" at the validity/relevance step ends the case there.
REJECTED_AT_INTAKE = {"appeal_valid": "invalid", "complaint_relevant": "not_relevant"}


@dataclass(frozen=True)
class AnalyticsQuery:
    first_month: date
    last_month: date
    scheme: str | None = None

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_month, datetime.min.time())

    @property
    def end(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(add_months(self.last_month, 1), datetime.min.time())

    @property
    def months(self) -> list[date]:
        found, month = [], self.first_month
        while month <= self.last_month:
            found.append(month)
            month = add_months(month, 1)
        return found


def parse_query(params: Mapping[str, str], today: date) -> AnalyticsQuery:
    """`from` and `to` as YYYY-MM (default: the last 12 months up to this one) and an
    optional `scheme` code. A value that cannot be right raises InvalidFilter naming it."""
    this_month = today.replace(day=1)
    last = _month(params, "to") or this_month
    first = _month(params, "from") or add_months(last, 1 - DEFAULT_MONTHS)
    if first > last:
        raise InvalidFilter("from", f"must not be after 'to' ({last:%Y-%m})")
    if len(AnalyticsQuery(first, last).months) > MAX_MONTHS:
        raise InvalidFilter("from", f"must be at most {MAX_MONTHS} months before 'to'")
    scheme = (params.get("scheme") or "").strip() or None
    if scheme is not None and (len(scheme) > 40 or not scheme.replace("-", "").isalnum()):
        raise InvalidFilter("scheme", f"must be a scheme code, not {scheme!r}")
    return AnalyticsQuery(first, last, scheme)


def _month(params: Mapping[str, str], name: str) -> date | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise InvalidFilter(name, f"must be a month as YYYY-MM, not {value[:20]!r}") from None
    if parsed.year < 2000:
        raise InvalidFilter(name, "must be a month from the year 2000 on")
    return parsed


def scheme_codes(session: Session) -> list[str]:
    return sorted(set(session.scalars(select(Scheme.code))))


# -- cases started and completed --------------------------------------------------------------


@dataclass(frozen=True)
class CaseCount:
    month: date
    scheme: str
    process: str
    started: int
    completed: int


def cases_per_month(session: Session, query: AnalyticsQuery) -> list[CaseCount]:
    """Cases started and cases completed in each month, per scheme and process."""
    counts: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for column, index, extra in (
        (Case.started_at, 0, None),
        (Case.ended_at, 1, Case.status == "completed"),
    ):
        year, month = extract("year", column), extract("month", column)
        statement = (
            select(year, month, Scheme.code, Case.process_id, func.count())
            .select_from(Case)
            .outerjoin(Scheme, Scheme.id == Case.scheme_id)
            .where(column >= query.start, column < query.end)
            .group_by(year, month, Scheme.code, Case.process_id)
        )
        if extra is not None:
            statement = statement.where(extra)
        statement = _for_scheme(statement, Scheme.code, query)
        for y, m, code, process, count in session.execute(statement):
            counts[(date(int(y), int(m), 1), code or NO_SCHEME, process)][index] += count
    return [
        CaseCount(month, scheme, process, started, completed)
        for (month, scheme, process), (started, completed) in sorted(counts.items())
    ]


# -- certification decisions ------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionCount:
    month: date
    scheme: str
    granted: int
    refused: int

    @property
    def pass_rate(self) -> float | None:
        decided = self.granted + self.refused
        return self.granted / decided if decided else None


def certification_decisions(session: Session, query: AnalyticsQuery) -> list[DecisionCount]:
    """Certification decisions taken in each month, granted and refused, per scheme."""
    year, month = extract("year", HumanTask.completed_at), extract("month", HumanTask.completed_at)
    answer = HumanTask.submitted_data[DECISION_FIELD].as_string()
    statement = (
        select(year, month, Scheme.code, answer, func.count())
        .select_from(HumanTask)
        .outerjoin(Scheme, Scheme.id == HumanTask.scheme_id)
        .where(
            HumanTask.task_spec_id == DECISION_STEP,
            HumanTask.status == "completed",
            HumanTask.completed_at >= query.start,
            HumanTask.completed_at < query.end,
        )
        .group_by(year, month, Scheme.code, answer)
    )
    counts: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    for y, m, code, decision, count in session.execute(_for_scheme(statement, Scheme.code, query)):
        key = (date(int(y), int(m), 1), code or NO_SCHEME)
        if decision == "grant":
            counts[key][0] += count
        elif decision == "refuse":
            counts[key][1] += count
    return [DecisionCount(m, s, g, r) for (m, s), (g, r) in sorted(counts.items())]


def pass_rates(decisions: list[DecisionCount]) -> list[DecisionCount]:
    """The period's decisions per scheme (month = the first month with a decision)."""
    totals: dict[str, list] = {}
    for d in decisions:
        entry = totals.setdefault(d.scheme, [d.month, 0, 0])
        entry[1] += d.granted
        entry[2] += d.refused
    return [DecisionCount(m, scheme, g, r) for scheme, (m, g, r) in sorted(totals.items())]


# -- time per step ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepTime:
    process: str
    step: str
    name: str
    completed: int
    median_days: float


@dataclass
class StepTimes:
    steps: list[StepTime]
    sampled: bool = False


def median_time_per_step(session: Session, query: AnalyticsQuery) -> StepTimes:
    """For each step completed in the period: how many, and the median time from the step
    becoming ready to its completion, slowest first."""
    statement = (
        select(
            HumanTask.process_id,
            HumanTask.task_spec_id,
            HumanTask.name,
            HumanTask.created_at,
            HumanTask.completed_at,
        )
        .where(
            HumanTask.status == "completed",
            HumanTask.completed_at >= query.start,
            HumanTask.completed_at < query.end,
        )
        .limit(MAX_DURATIONS + 1)
    )
    if query.scheme:
        statement = statement.where(HumanTask.scheme_id.in_(_scheme_ids(query.scheme)))
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    names: dict[tuple[str, str], str] = {}
    rows = 0
    for process, step, name, created, completed in session.execute(statement).yield_per(5000):
        rows += 1
        if rows > MAX_DURATIONS:
            break
        durations[(process, step)].append((completed - created).total_seconds() / 86400)
        names[(process, step)] = name
    steps = [
        StepTime(process, step, names[(process, step)], len(days), statistics.median(days))
        for (process, step), days in durations.items()
    ]
    steps.sort(key=lambda s: (-s.median_days, s.process, s.step))
    return StepTimes(steps, sampled=rows > MAX_DURATIONS)


# -- overdue steps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueStep:
    process: str
    step: str
    name: str
    overdue: int
    still_open: int


def most_overdue_steps(
    session: Session, query: AnalyticsQuery, now: datetime, limit: int = TOP_OVERDUE
) -> list[OverdueStep]:
    """Steps due in the period that were completed late or are still open past their due
    time (as of `now`), the step with the most first."""
    late = or_(
        (HumanTask.status == "completed") & (HumanTask.completed_at > HumanTask.due_at),
        HumanTask.status == "ready",
    )
    overdue = func.count()
    statement = (
        select(
            HumanTask.process_id,
            HumanTask.task_spec_id,
            func.max(HumanTask.name),
            overdue,
            func.sum(when((HumanTask.status == "ready", 1), else_=0)),
        )
        .where(
            HumanTask.due_at >= query.start,
            HumanTask.due_at < min(query.end, now),
            late,
        )
        .group_by(HumanTask.process_id, HumanTask.task_spec_id)
        .order_by(overdue.desc(), HumanTask.process_id, HumanTask.task_spec_id)
        .limit(limit)
    )
    if query.scheme:
        statement = statement.where(HumanTask.scheme_id.in_(_scheme_ids(query.scheme)))
    return [
        OverdueStep(process, step, name, count, int(still_open or 0))
        for process, step, name, count, still_open in session.execute(statement)
    ]


# -- appeals and complaints -------------------------------------------------------------------


@dataclass(frozen=True)
class AppealOrComplaint:
    case_id: int
    kind: str
    scheme: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str


@dataclass
class OutcomeCounts:
    kind: str
    outcomes: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


def appeals_and_complaints(session: Session, query: AnalyticsQuery) -> list[AppealOrComplaint]:
    """Each appeal and complaint received in the period, with how it ended so far: the
    panel's or the officer's outcome, `invalid` / `not_relevant` when turned away at intake,
    `open` while it runs."""
    statement = (
        select(Case.id, Case.process_id, Scheme.code, Case.status, Case.started_at, Case.ended_at)
        .outerjoin(Scheme, Scheme.id == Case.scheme_id)
        .where(
            Case.process_id.in_(list(OUTCOME_STEPS)),
            Case.started_at >= query.start,
            Case.started_at < query.end,
        )
        .order_by(Case.started_at, Case.id)
    )
    cases = session.execute(_for_scheme(statement, Scheme.code, query)).all()
    answers = _outcome_answers(session, [row[0] for row in cases])
    found = []
    for case_id, kind, code, status, started_at, ended_at in cases:
        outcome = "open" if status == "running" else status
        for step, answer_field in reversed(OUTCOME_STEPS[kind]):
            value = answers.get((case_id, step), {}).get(answer_field)
            if answer_field in REJECTED_AT_INTAKE:
                if value is False:
                    outcome = REJECTED_AT_INTAKE[answer_field]
            elif isinstance(value, str) and value:
                outcome = value
        found.append(
            AppealOrComplaint(case_id, kind, code or NO_SCHEME, started_at, ended_at, outcome)
        )
    return found


def outcome_counts(found: list[AppealOrComplaint]) -> list[OutcomeCounts]:
    counts = {kind: OutcomeCounts(kind) for kind in OUTCOME_STEPS}
    for entry in found:
        counts[entry.kind].outcomes[entry.outcome] += 1
    return list(counts.values())


def _outcome_answers(session: Session, case_ids: list[int]) -> dict[tuple[int, str], dict]:
    steps = [step for kind in OUTCOME_STEPS.values() for step, _ in kind]
    answers: dict[tuple[int, str], dict] = {}
    for chunk in range(0, len(case_ids), 500):
        rows = session.execute(
            select(HumanTask.case_id, HumanTask.task_spec_id, HumanTask.submitted_data)
            .where(
                HumanTask.case_id.in_(case_ids[chunk : chunk + 500]),
                HumanTask.task_spec_id.in_(steps),
                HumanTask.status == "completed",
            )
            .order_by(HumanTask.id)
        )
        for case_id, step, data in rows:
            answers[(case_id, step)] = data or {}
    return answers


# -- shared -----------------------------------------------------------------------------------


def _scheme_ids(code: str):
    return select(Scheme.id).where(Scheme.code == code)


def _for_scheme(statement, column, query: AnalyticsQuery):
    return statement.where(column == query.scheme) if query.scheme else statement
