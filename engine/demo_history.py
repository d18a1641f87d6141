"""Demo history: certified people whose certificates have lived for up to three years, so
that a fresh `make run` shows every lifecycle state and real overdue work, and the management
system's year around them (engine.demo_quality: an appeal, a complaint, an internal audit,
corrective actions, management reviews, feedback).

The stories are played in date order on an engine whose clock is set to each moment in the
past, running the scheduler's jobs at each moment as a worker would have: surveillance and
recertification cases start on their dates, timers fire, reminders and escalations go out.
The result is the same records the live system would have written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from .clock import FixedClock
from .demo import add_applicants, drive_case
from .models import Case, Certificate
from .passwords import hash_demo_password
from .scheduler import run_jobs_until_idle

# username, given, family, e-mail, born
HOLDERS = [
    ("emma", "Emma", "Evans", "emma@example.org", date(1985, 2, 14)),
    ("farid", "Farid", "Haddad", "farid@example.org", date(1990, 6, 1)),
    ("grace", "Grace", "Green", "grace@example.org", date(1976, 9, 30)),
    ("hugo", "Hugo", "Hart", "hugo@example.org", date(1983, 12, 5)),
    ("ines", "Ines", "Iveson", "ines@example.org", date(1994, 3, 22)),
    ("jon", "Jon", "Jansen", "jon@example.org", date(1980, 8, 17)),
    ("kim", "Kim", "Kowalski", "kim@example.org", date(1988, 1, 9)),
    ("lena", "Lena", "Lind", "lena@example.org", date(1991, 10, 3)),
]

# What a manager finds on the dashboard after `make run` (days relative to today).
STORY = """
emma  CWI certified 405 days ago; surveillance opened 40 days ago, declaration overdue
farid DPO certified 390 days ago; declared 20 days ago, the reviewer's step is overdue
grace CWI certified 36 months less 75 days ago; two surveillances passed; recertification open
hugo  DPO certified 24 months and 10 days ago; no recertification evidence: expired
ines  CWI certified 14 months ago; surveillance passed; suspended 20 days ago, remedy awaited
jon   DPO certified 20 months ago; suspended 80 days ago, not remedied: withdrawn
kim   CWI certified 6 months ago; scope reduced a month ago
lena  DPO certified 23 months ago; surveillance passed; renewed a month ago
"""


@dataclass
class Moment:
    at: datetime
    act: Callable[[object], None]


def load_demo_history(engine, password: str) -> int:
    """Play the stories (only once: nothing happens when the holders exist); returns how many
    holders' stories were played."""
    from .demo import _user

    with engine.unit_of_work() as uow:
        if _user(uow.session, HOLDERS[0][0]) is not None:
            return 0
        add_applicants(uow, HOLDERS, hash_demo_password(password))
    now = engine.clock.now().replace(microsecond=0)

    def days_ago(days: float) -> datetime:
        return now - timedelta(days=days)

    def months_ago(months: int, days: int = 0) -> datetime:
        from .certificates import add_months

        return datetime.combine(add_months(now.date(), -months), now.time()) - timedelta(days=days)

    moments: list[Moment] = []

    def at(when: datetime, act: Callable[[object], None]) -> None:
        moments.append(Moment(when, act))

    at(days_ago(405), certify("emma", "CWI"))
    at(days_ago(390), certify("farid", "DPO"))
    at(days_ago(20), lifecycle_steps("farid", "surveillance", stop_at="review_surveillance"))
    at(months_ago(36, -75), certify("grace", "CWI"))
    at(months_ago(24, -77), lifecycle_steps("grace", "surveillance"))
    at(months_ago(12, -77), lifecycle_steps("grace", "surveillance"))
    at(months_ago(24, 10), certify("hugo", "DPO"))
    at(months_ago(12, 7), lifecycle_steps("hugo", "surveillance"))
    at(months_ago(14), certify("ines", "CWI"))
    at(months_ago(2, -3), lifecycle_steps("ines", "surveillance"))
    at(
        days_ago(20),
        suspend("ines", "Complaint upheld: inspection reports signed without site visits"),
    )
    at(months_ago(20), certify("jon", "DPO"))
    at(months_ago(8, -3), lifecycle_steps("jon", "surveillance"))
    at(days_ago(80), suspend("jon", "Surveillance found no continued practice for 12 months"))
    at(months_ago(6), certify("kim", "CWI"))
    at(
        days_ago(30),
        reduce_scope(
            "kim", "Visual inspection of fusion welds on steel structures (ISO 5817 level D only)"
        ),
    )
    at(months_ago(23), certify("lena", "DPO"))
    at(months_ago(11, -3), lifecycle_steps("lena", "surveillance"))
    at(days_ago(30), lifecycle_steps("lena", "recertification"))
    from .demo_quality import quality_story

    first = min(m.at for m in moments)
    for when, act in quality_story(now, first, password):
        at(when, act)
    moments.sort(key=lambda m: m.at)

    from . import Engine

    past = Engine(sql_engine=engine.db, clock=FixedClock(moments[0].at), settings=engine.settings)
    for moment in moments:
        _travel(past, moment.at)
        moment.act(past)
    _travel(past, now)
    run_jobs_until_idle(engine)
    return len(HOLDERS)


def _travel(engine, until: datetime, step: timedelta = timedelta(days=7)) -> None:
    """Move the clock forward to `until` a week at a time, running the jobs at each stop."""
    while engine.clock.now() < until:
        engine.clock.set(min(engine.clock.now() + step, until))
        run_jobs_until_idle(engine)


def certify(username: str, scheme: str) -> Callable[[object], None]:
    def act(engine) -> None:
        person_id = engine.user(username).person_id
        case = engine.start_case(
            "application", actor=username, person_id=person_id, scheme_code=scheme
        )
        drive_case(engine, case.case_id, username, overrides={"examiner": "examiner2"})

    return act


def lifecycle_steps(
    username: str, process_id: str, stop_at: str | None = None
) -> Callable[[object], None]:
    """Work the holder's open `process_id` case on the happy path (until `stop_at`)."""

    def act(engine) -> None:
        case_id = _open_case(engine, username, process_id)
        drive_case(engine, case_id, username, stop_at)

    return act


def suspend(username: str, reasons: str) -> Callable[[object], None]:
    def act(engine) -> None:
        case_id = engine.request_suspension(
            _certificate_number(engine, username), "manager", reasons
        )
        drive_case(
            engine,
            case_id,
            username,
            stop_at="submit_remedy_evidence",
            overrides={"suspension_action": "suspend", "suspension_reasons": reasons},
        )

    return act


def reduce_scope(username: str, scope: str) -> Callable[[object], None]:
    def act(engine) -> None:
        reasons = "Practical competence for levels B and C not shown at surveillance"
        case_id = engine.request_suspension(_certificate_number(engine, username), "clerk", reasons)
        drive_case(
            engine,
            case_id,
            username,
            overrides={
                "suspension_action": "reduce_scope",
                "suspension_reasons": reasons,
                "reduced_scope": scope,
            },
        )

    return act


def _certificate_number(engine, username: str) -> str:
    person_id = engine.user(username).person_id
    with engine.sessions() as session:
        return session.scalars(
            select(Certificate.number)
            .where(Certificate.person_id == person_id)
            .order_by(Certificate.id.desc())
        ).first()


def _open_case(engine, username: str, process_id: str) -> int:
    person_id = engine.user(username).person_id
    with engine.sessions() as session:
        case_id = session.scalars(
            select(Case.id).where(
                Case.person_id == person_id,
                Case.process_id == process_id,
                Case.status == "running",
            )
        ).first()
    if case_id is None:
        raise RuntimeError(f"demo story: {username} has no open {process_id} case")
    return case_id
