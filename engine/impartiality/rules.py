"""The segregation-of-duties rules (DESIGN §4) and their explanations.

`evaluate` answers, from the facts in the database now, whether a user may work on a task
and, if not, every rule that bars them, in plain words with the clause. The same rules give
SQL criteria (`claimable_criteria`) so that lists never offer a barred task, and the bars
that follow from who did earlier steps are stored when a task becomes ready (`task_bars`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    Date,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from ..models import Case, CaseLink, Commitment, ConflictOfInterest, HumanTask, TaskBar, User
from .policy import Policy, current_policy

CLAUSES = {
    "SOD-DECIDE": "ISO/IEC 17024 9.4 bars anyone who examined or trained a candidate from the certification decision",
    "SOD-APPEAL": "ISO/IEC 17024 9.8 requires appeals to be decided by people not involved in the appealed decision",
    "SOD-COMPLAINT": "ISO/IEC 17024 9.9 requires the response to a complaint to be approved by someone not involved in its subject",
    "SOD-COI": "ISO/IEC 17024 4.3 and 6.2.2 bar staff from work on a person they have a declared conflict of interest with",
    "SOD-COMMIT": "ISO/IEC 17024 6.1 requires a current signed confidentiality and impartiality commitment before any task",
    "SOD-SELF": "nobody may act on their own certification case",
    "SOD-INTERNAL": "ISO/IEC 17024 4.2 keeps certification decisions with the body's own staff, not external or outsourced staff",
    "SOD-4EYES": "ISO/IEC 17024 10.2 document control requires approval by someone other than the author",
    "SOD-AUDIT": "ISO/IEC 17024 10.2.6 (and ISO 19011) bars internal auditors from auditing their own work",
}

# How an earlier step reads in an explanation ("You scored this candidate's written exam").
STEP_VERBS = {
    "administer_exam": "invigilated this candidate's examination",
    "score_written": "scored this candidate's written exam",
    "score_practical": "scored this candidate's practical exam",
    "decide_certification": "decided on this candidate's certification",
    "review_file": "reviewed this candidate's certification file",
}


@dataclass(frozen=True)
class Bar:
    rule: str
    reason: str
    facts: dict[str, Any]


@dataclass(frozen=True)
class KnownCommitment:
    id: int
    day: date  # its expiry, as in `_commitments_and_conflicts`


@dataclass(frozen=True)
class UserFacts:
    """What the rules need to know of one user for one case, read ahead with the user (see
    `user_facts_columns`): the user's latest commitment, if any, and how many current
    conflicts of interest the user declared with the case's person."""

    commitment: KnownCommitment | None
    conflicts_with_person: int


def user_facts_columns(user_id, person_id, today) -> tuple[Any, ...]:
    """Columns that give `UserFacts` for the user and person columns `user_id` and
    `person_id` of another statement, on the date `today` (a bound parameter): the lock
    of a task's case reads them with the completing user, which spares a statement."""
    latest = (
        select(Commitment.id, Commitment.expires_on)
        .where(Commitment.user_id == user_id)
        .order_by(Commitment.signed_on.desc(), Commitment.id.desc())
        .limit(1)
    )
    conflicts = select(func.count()).where(
        ConflictOfInterest.staff_user_id == user_id,
        ConflictOfInterest.person_id == person_id,
        *_current_conflict(today),
    )
    return (
        latest.with_only_columns(Commitment.id).scalar_subquery().label("commitment_id"),
        latest.with_only_columns(Commitment.expires_on)
        .scalar_subquery()
        .label("commitment_expires_on"),
        conflicts.scalar_subquery().label("conflicts_with_person"),
    )


def user_facts(commitment_id: int | None, expires_on: date | None, conflicts: int) -> UserFacts:
    """`UserFacts` from the values of `user_facts_columns`."""
    known = KnownCommitment(commitment_id, expires_on) if commitment_id is not None else None
    return UserFacts(known, conflicts)


def _current_conflict(today) -> tuple[Any, ...]:
    return (
        ConflictOfInterest.ended_at.is_(None),
        ConflictOfInterest.valid_from <= today,
        or_(ConflictOfInterest.valid_until.is_(None), ConflictOfInterest.valid_until >= today),
    )


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


def rules_of(task: HumanTask, policy: Policy) -> tuple[str, ...]:
    if task.role == "applicant":
        return ()
    return policy.rules_for(task.task_spec_id, _split(task.sod_rules))


def _linked_cases(case_id: int, kind: str | None = None):
    """The cases `case_id` links to (of `kind`), as a subquery."""
    query = select(CaseLink.to_case_id).where(CaseLink.from_case_id == case_id)
    return query.where(CaseLink.kind == kind) if kind is not None else query


def _when(value: datetime | None) -> str:
    return f"{value.day} {value:%b %Y}" if value else "an earlier date"


def performer_bars(
    session: Session,
    task: HumanTask,
    case: Case,
    policy: Policy,
    user_id: int | None = None,
    names: dict[int, str] | None = None,
) -> dict[int, list[Bar]]:
    """Bars that follow from who did earlier steps of this case and of the cases it links to.
    `names`, when given, receives the display name of each barred performer."""
    rules = rules_of(task, policy)
    excluded_here = set(_split(task.excluded_performers_of))
    if "SOD-DECIDE" in rules:
        excluded_here |= set(policy.examination_tasks)
    if not excluded_here and not {"SOD-APPEAL", "SOD-COMPLAINT", "SOD-AUDIT"} & set(rules):
        return {}  # most steps: no earlier performer is barred (and no statement is built)
    wanted: list[tuple[str, Any]] = []
    if excluded_here:
        wanted.append(
            ("here", and_(HumanTask.case_id == case.id, HumanTask.task_spec_id.in_(excluded_here)))
        )
    linked = _linked_cases(case.id)
    if "SOD-APPEAL" in rules:
        specs = set(policy.examination_tasks) | set(policy.decision_tasks) | excluded_here
        wanted.append(
            ("appeal", and_(HumanTask.case_id.in_(linked), HumanTask.task_spec_id.in_(specs)))
        )
    if "SOD-COMPLAINT" in rules:
        wanted.append(("complaint", HumanTask.case_id.in_(linked)))
    if "SOD-DECIDE" in rules and excluded_here:
        wanted.append(
            ("here", and_(HumanTask.case_id.in_(linked), HumanTask.task_spec_id.in_(excluded_here)))
        )
        # A decision re-opened by an upheld appeal is never taken by the original deciders.
        redecided = HumanTask.task_spec_id.in_(policy.decision_tasks)
        reopened = _linked_cases(case.id, kind="reopens")
        wanted.append(("appeal", and_(HumanTask.case_id.in_(reopened), redecided)))
    bars: dict[int, list[Bar]] = audit_bars(session, case, user_id) if "SOD-AUDIT" in rules else {}
    # One statement for every scope, each row labelled with its scope, in their order.
    parts = []
    for position, (scope, criterion) in enumerate(wanted):
        part = select(
            literal(position).label("position"),
            literal(scope).label("scope"),
            HumanTask.completed_by_id,
            HumanTask.task_spec_id,
            HumanTask.name,
            HumanTask.completed_at,
            HumanTask.case_id,
            HumanTask.id.label("task_id"),
            User.display_name,
        ).where(
            criterion,
            HumanTask.status == "completed",
            User.id == HumanTask.completed_by_id,  # only performers with a user row
        )
        if user_id is not None:
            part = part.where(HumanTask.completed_by_id == user_id)
        parts.append(part)
    rows = session.execute(union_all(*parts).order_by("position", "task_id")).all() if parts else []
    for _position, scope, performer, spec_id, name, completed_at, on_case, _id, who in rows:
        if names is not None:
            names[performer] = who
        rule = {"here": "SOD-DECIDE", "appeal": "SOD-APPEAL", "complaint": "SOD-COMPLAINT"}[scope]
        if scope == "here" and "SOD-DECIDE" not in rules:
            rule = (set(rules) & {"SOD-APPEAL", "SOD-COMPLAINT"} or {"SOD-DECIDE"}).pop()
        verb = STEP_VERBS.get(spec_id, f"did the step '{name}'")
        where = "" if on_case == case.id else f" (case {on_case})"
        reason = f"You {verb}{where} on {_when(completed_at)}; {CLAUSES[rule]}."
        facts = {
            "task": spec_id,
            "case_id": on_case,
            "completed_at": completed_at.isoformat() if completed_at else None,
        }
        bar = Bar(rule, reason, facts)
        if bar not in bars.setdefault(performer, []):
            bars[performer].append(bar)
    return bars


# SOD-AUDIT reads the audit plan: the step that plans an internal audit and its fields.
AUDIT_PLAN_TASK = "plan_audit"
AUDITED_PROCESS, AUDIT_FROM, AUDIT_TO = "audited_process", "audit_period_from", "audit_period_to"


def audit_bars(session: Session, case: Case, user_id: int | None = None) -> dict[int, list[Bar]]:
    """SOD-AUDIT: nobody audits their own work. Bars whoever planned this audit, and whoever
    completed a step of the audited process (in any case but this one) within the audited
    period, as the plan of this case names them."""
    plan = session.execute(
        select(HumanTask.completed_by_id, HumanTask.completed_at, HumanTask.submitted_data)
        .where(
            HumanTask.case_id == case.id,
            HumanTask.task_spec_id == AUDIT_PLAN_TASK,
            HumanTask.status == "completed",
        )
        .order_by(HumanTask.id.desc())
        .limit(1)
    ).first()
    if plan is None:
        return {}
    planner, planned_at, data = plan
    bars: dict[int, list[Bar]] = {}
    if planner is not None and user_id in (None, planner):
        reason = f"You planned this internal audit on {_when(planned_at)}; {CLAUSES['SOD-AUDIT']}."
        bars[planner] = [Bar("SOD-AUDIT", reason, {"task": AUDIT_PLAN_TASK, "case_id": case.id})]
    data = data or {}
    process = data.get(AUDITED_PROCESS)
    try:
        first = date.fromisoformat(str(data.get(AUDIT_FROM)))
        last = date.fromisoformat(str(data.get(AUDIT_TO)))
    except ValueError:
        return bars
    if not process:
        return bars
    start = datetime.combine(first, time.min)
    end = datetime.combine(last + timedelta(days=1), time.min)
    query = (
        select(
            HumanTask.completed_by_id,
            func.count(),
            func.min(HumanTask.completed_at),
            func.max(HumanTask.completed_at),
        )
        .where(
            or_(HumanTask.process_id == process, HumanTask.case_process_id == process),
            HumanTask.case_id != case.id,
            HumanTask.status == "completed",
            HumanTask.completed_by_id.is_not(None),
            HumanTask.completed_at >= start,
            HumanTask.completed_at < end,
        )
        .group_by(HumanTask.completed_by_id)
    )
    if user_id is not None:
        query = query.where(HumanTask.completed_by_id == user_id)
    period = f"{_when(start)} to {_when(end - timedelta(days=1))}"
    for performer, steps, earliest, latest in session.execute(query):
        reason = (
            f"You completed {steps} step{'s' if steps != 1 else ''} of the '{process}' process "
            f"in the audited period ({period}), the last on {_when(latest)}; "
            f"{CLAUSES['SOD-AUDIT']}."
        )
        facts = {
            "audited_process": process,
            "period": [first.isoformat(), last.isoformat()],
            "steps": steps,
            "first_completed_at": earliest.isoformat() if earliest else None,
            "last_completed_at": latest.isoformat() if latest else None,
        }
        bars.setdefault(performer, []).append(Bar("SOD-AUDIT", reason, facts))
    return bars


def evaluate(
    session: Session,
    user: User,
    task: HumanTask,
    case: Case,
    now: datetime,
    known: UserFacts | None = None,
) -> list[Bar]:
    """Every impartiality rule that bars `user` from `task` now (empty: allowed); `known`:
    the user's facts for this case, already read (see `user_facts_columns`)."""
    return bars_for_users(session, [user], task, case, now, known)[user.id]


def bars_for_users(
    session: Session,
    users: list[User],
    task: HumanTask,
    case: Case,
    now: datetime,
    known: UserFacts | None = None,
) -> dict[int, list[Bar]]:
    """The impartiality bars of each of `users` for `task`, from a handful of set queries
    (so a manager's view or auto-assignment over hundreds of staff stays fast). `known`
    (one user only): that user's facts for this case, already read."""
    policy = current_policy()
    rules = rules_of(task, policy)
    result: dict[int, list[Bar]] = {user.id: [] for user in users}
    if not rules or not users:
        return result
    ids = list(result)
    today = now.date()
    person_id = case.person_id if "SOD-COI" in rules else None
    if (
        known is not None
        and len(ids) == 1
        and (person_id is None or not known.conflicts_with_person)
    ):
        commitments = {ids[0]: known.commitment} if known.commitment is not None else {}
        conflicts: list[Any] = []
    else:
        commitments, conflicts = _commitments_and_conflicts(
            session, ids, person_id, today, with_commitments="SOD-COMMIT" in rules
        )
    if "SOD-COMMIT" in rules:
        for user_id in ids:
            signed = commitments.get(user_id)
            if signed is None:
                result[user_id].append(
                    Bar(
                        "SOD-COMMIT",
                        f"You have not signed the confidentiality and impartiality commitment; {CLAUSES['SOD-COMMIT']}.",
                        {},
                    )
                )
            elif signed.day < today:
                result[user_id].append(
                    Bar(
                        "SOD-COMMIT",
                        f"Your confidentiality and impartiality commitment expired on {signed.day.day} {signed.day:%b %Y}; {CLAUSES['SOD-COMMIT']}.",
                        {"commitment_id": signed.id, "expires_on": signed.day.isoformat()},
                    )
                )
    if "SOD-SELF" in rules and case.person_id is not None:
        for user in users:
            if user.person_id == case.person_id:
                result[user.id].append(
                    Bar(
                        "SOD-SELF",
                        f"This is your own case; {CLAUSES['SOD-SELF']}.",
                        {"person_id": case.person_id},
                    )
                )
    for conflict in conflicts:
        result[conflict.user_id].append(
            Bar(
                "SOD-COI",
                f"You declared a conflict of interest with this person ({conflict.relationship}, since {conflict.day.day} {conflict.day:%b %Y}); {CLAUSES['SOD-COI']}.",
                {"declaration_id": conflict.id, "relationship": conflict.relationship},
            )
        )
    if "SOD-INTERNAL" in rules:
        for user in users:
            if user.is_external:
                result[user.id].append(
                    Bar(
                        "SOD-INTERNAL",
                        f"You are registered as external staff; {CLAUSES['SOD-INTERNAL']}.",
                        {"external": True},
                    )
                )
    performer = performer_bars(
        session, task, case, policy, user_id=users[0].id if len(users) == 1 else None
    )
    for user_id, bars in performer.items():
        if user_id in result:
            result[user_id].extend(bars)
    return result


def _commitments_and_conflicts(
    session: Session, ids: list[int], person_id: int | None, today, *, with_commitments: bool
) -> tuple[dict[int, Any], list[Any]]:
    """In one statement: each user's latest commitment (`day` = its expiry) when
    `with_commitments`, and their current conflicts of interest with `person_id` (`day` =
    valid from) when it is given. Rows, not ORM objects: hundreds of staff have several
    commitments each."""
    if not with_commitments and person_id is None:
        return {}, []
    as_array = _ids_as_array(session, ids)
    query = _commitments_and_conflicts_query(with_commitments, person_id is not None, as_array)
    params = {"ids": list(ids), "person_id": person_id, "today": today}
    rows = session.execute(query, params).all()
    latest = {row.user_id: row for row in rows if row.kind == "commitment"}
    return latest, [row for row in rows if row.kind == "conflict"]


@functools.lru_cache(maxsize=8)
def _commitments_and_conflicts_query(with_commitments: bool, with_conflicts: bool, as_array: bool):
    """The statement of `_commitments_and_conflicts` for one shape, built once: it runs at
    every claim and completion, and building it cost more than running it."""
    ids = (
        bindparam("ids", type_=ARRAY(Integer))
        if as_array
        else bindparam("ids", expanding=True, type_=Integer)
    )

    def user_in(column):
        return column == any_(ids) if as_array else column.in_(ids)

    parts = []
    if with_commitments:
        parts.append(
            select(
                literal("commitment").label("kind"),
                Commitment.user_id.label("user_id"),
                Commitment.id.label("id"),
                Commitment.expires_on.label("day"),
                Commitment.signed_on.label("signed_on"),
                cast(null(), String(20)).label("relationship"),
            ).where(user_in(Commitment.user_id))
        )
    if with_conflicts:
        today = bindparam("today", type_=Date)
        parts.append(
            select(
                literal("conflict").label("kind"),
                ConflictOfInterest.staff_user_id.label("user_id"),
                ConflictOfInterest.id.label("id"),
                ConflictOfInterest.valid_from.label("day"),
                ConflictOfInterest.valid_from.label("signed_on"),
                ConflictOfInterest.relationship.label("relationship"),
            ).where(
                user_in(ConflictOfInterest.staff_user_id),
                *_current_conflict(today),
                ConflictOfInterest.person_id == bindparam("person_id", type_=Integer),
            )
        )
    query = parts[0] if len(parts) == 1 else union_all(*parts)
    return query.order_by("kind", "signed_on", "id")


def third_person(reason: str, name: str) -> str:
    """An explanation written to the barred user, rephrased for a manager."""
    return (
        reason.replace("You ", f"{name} ", 1)
        .replace("Your ", f"{name}'s ", 1)
        .replace("This is your own case", f"This is {name}'s own case")
    )


def id_in(session: Session | None, column, ids: list[int]):
    """`column IN ids`; on PostgreSQL a long list is one array parameter (`= ANY(:ids)`), so
    hundreds of ids are neither rendered one by one nor re-parsed on every call."""
    if _ids_as_array(session, ids):
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    return column.in_(ids)


def _ids_as_array(session: Session | None, ids: list[int]) -> bool:
    return len(ids) > 20 and session is not None and session.get_bind().dialect.name == "postgresql"


def _active_conflicts_of(user_ids: list[int], today, session: Session | None = None):
    return select(ConflictOfInterest).where(
        id_in(session, ConflictOfInterest.staff_user_id, user_ids), *_current_conflict(today)
    )


def claimable_criteria(session: Session | None, user: User, now: datetime) -> list[Any]:
    """SQL criteria on HumanTask leaving out the tasks `evaluate` would refuse `user`."""
    policy = current_policy()
    today = now.date()
    staff_task = HumanTask.role != "applicant"
    criteria: list[Any] = [
        not_(exists().where(TaskBar.task_id == HumanTask.id, TaskBar.user_id == user.id))
    ]
    if "SOD-COMMIT" in policy.rules_for_every_task:
        current = exists().where(Commitment.user_id == user.id, Commitment.expires_on >= today)
        criteria.append(or_(not_(staff_task), current))
    if "SOD-SELF" in policy.rules_for_every_task and user.person_id is not None:
        own = HumanTask.case_id.in_(select(Case.id).where(Case.person_id == user.person_id))
        criteria.append(or_(not_(staff_task), not_(own)))
    if "SOD-COI" in policy.rules_for_every_task:
        conflicted = HumanTask.case_id.in_(
            select(Case.id).where(
                Case.person_id.in_(
                    _active_conflicts_of([user.id], today).with_only_columns(
                        ConflictOfInterest.person_id
                    )
                )
            )
        )
        criteria.append(or_(not_(staff_task), not_(conflicted)))
    if user.is_external and "SOD-INTERNAL" in policy.rules_for_decision_tasks:
        decision = or_(
            HumanTask.task_spec_id.in_(policy.decision_tasks),
            *[
                func.coalesce(HumanTask.sod_rules, "").like(f"%{rule}%")
                for rule in policy.decision_rules
            ],
        )
        criteria.append(not_(decision))
    return criteria


def store_bars(session: Session, task: HumanTask, case: Case) -> list[TaskBar]:
    """Record, for a task that just became ready, whom earlier steps bar from it (the
    reasons in the third person: they are read by managers and assessors)."""
    rows = []
    names: dict[int, str] = {}
    bars = performer_bars(session, task, case, current_policy(), names=names)
    unnamed = [user_id for user_id in bars if user_id not in names]  # SOD-AUDIT's, say
    if unnamed:
        names.update(
            session.execute(select(User.id, User.display_name).where(User.id.in_(unnamed))).all()
        )
    for user_id, user_bars in bars.items():
        for bar in user_bars:
            reason = third_person(bar.reason, names.get(user_id, f"user {user_id}"))
            row = TaskBar(
                task_id=task.id, user_id=user_id, rule=bar.rule, reason=reason, facts=bar.facts
            )
            session.add(row)
            rows.append(row)
    return rows
