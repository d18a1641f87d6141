"""Demo data: two schemes, staff for every role, a few applicants. Loading is idempotent."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Person, Scheme, User, UserRole
from .passwords import hash_demo_password
from .unit_of_work import UnitOfWork

DEMO_PASSWORD = "certrail-demo"

SCHEMES = [
    dict(
        code="CWI",
        version="2026.1",
        name="Certified Welding Inspector",
        scope="Visual and documentary inspection of fusion welds on steel structures (ISO 5817, level B-D)",
        prerequisites=["3 years of welding practice", "eye test within the last 12 months"],
        has_practical=True,
        pass_mark=70,
        validity_months=36,
        surveillance_months=12,
        recertification={"cpd_hours": 60, "or": "re-examination"},
    ),
    dict(
        code="DPO",
        version="2026.1",
        name="Data Protection Officer",
        scope="Advising and monitoring compliance with the GDPR in organisations of any size",
        prerequisites=["2 years of professional experience in data protection or law"],
        has_practical=False,
        pass_mark=65,
        validity_months=24,
        surveillance_months=12,
        recertification={"cpd_hours": 40},
    ),
]

# username, display name, roles, external?
STAFF = [
    ("clerk", "Clara Clerk", ["clerk"], False),
    ("reviewer", "Rafael Reviewer", ["reviewer"], False),
    ("examiner", "Erika Examiner", ["examiner"], True),
    ("examiner2", "Ethan Examiner", ["examiner"], False),
    ("invigilator", "Ivo Invigilator", ["invigilator"], True),
    ("decider", "Dana Decider", ["decision_maker"], False),
    ("decider2", "Diego Decider", ["decision_maker"], False),
    ("examiner_decider", "Max Multirole", ["examiner", "decision_maker"], False),
    ("reviewer_panel", "Rita Panel", ["reviewer", "appeals_panel"], False),
    ("panel", "Paula Panel", ["appeals_panel"], False),
    ("complaints", "Carl Complaints", ["complaints_officer"], False),
    ("quality", "Quinn Quality", ["quality_manager"], False),
    ("owner", "Olga Owner", ["process_owner"], False),
    ("manager", "Mona Manager", ["manager"], False),
    ("admin", "Adam Admin", ["admin"], False),
]

APPLICANTS = [
    ("alice", "Alice", "Applicant", "alice@example.org", date(1988, 4, 2)),
    ("bob", "Bob", "Builder", "bob@example.org", date(1979, 11, 23)),
    ("chen", "Chen", "Li", "chen@example.org", date(1992, 7, 9)),
]


def load_demo(uow: UnitOfWork) -> dict[str, int]:
    session = uow.session
    counts = {"schemes": 0, "staff": 0, "applicants": 0}
    password = hash_demo_password(DEMO_PASSWORD)
    for spec in SCHEMES:
        exists = session.scalars(
            select(Scheme).where(Scheme.code == spec["code"], Scheme.version == spec["version"])
        ).first()
        if exists is None:
            session.add(Scheme(**spec))
            counts["schemes"] += 1
    counts["staff"] = add_staff(uow, STAFF, password)
    counts["applicants"] = add_applicants(uow, APPLICANTS, password)
    if any(counts.values()):
        uow.audit.record(uow.now, "system", "demo_loaded", "demo data loaded", after=counts)
    return counts


def add_staff(uow: UnitOfWork, staff, password: str) -> int:
    """Staff accounts (username, display name, roles, external?) who have signed the current
    commitment; returns how many were new."""
    session = uow.session
    added = 0
    for username, name, roles, external in staff:
        if _user(session, username) is None:
            user = User(
                username=username,
                display_name=name,
                email=f"{username}@certrail.example",
                password_hash=password,
                is_external=external,
                created_at=uow.now,
            )
            user.roles = [UserRole(role=r) for r in roles]
            session.add(user)
            added += 1
    _sign_commitments(uow, session, [username for username, *_ in staff])
    return added


def add_applicants(uow: UnitOfWork, applicants, password: str) -> int:
    """Applicants with their own accounts (username, given, family, e-mail, born); returns
    how many were new."""
    session = uow.session
    added = 0
    for username, given, family, email, born in applicants:
        if _user(session, username) is not None:
            continue
        person = Person(
            given_name=given,
            family_name=family,
            email=email,
            date_of_birth=born,
            created_at=uow.now,
        )
        session.add(person)
        session.flush()
        user = User(
            username=username,
            display_name=f"{given} {family}",
            email=email,
            password_hash=password,
            person_id=person.id,
            created_at=uow.now,
        )
        user.roles = [UserRole(role="applicant")]
        session.add(user)
        added += 1
    return added


def _sign_commitments(uow: UnitOfWork, session: Session, usernames: list[str]) -> None:
    """Every demo staff member has signed the current commitment (SOD-COMMIT)."""
    from .impartiality.register import sign_commitment
    from .models import Commitment

    session.flush()
    admin = _user(session, "admin")
    for username in usernames:
        user = _user(session, username)
        if (
            session.scalar(select(Commitment.id).where(Commitment.user_id == user.id).limit(1))
            is None
        ):
            sign_commitment(uow, admin, user)


def _user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


# Demo cases: (applicant, scheme, the task the case waits at or None to finish it, examiner).
# Bob's exam was scored by Max Multirole, who is also a decision maker: the impartiality
# rules keep him off Bob's decision (see `certrail sod explain`).
DEMO_CASES = [
    ("chen", "CWI", None, "examiner"),
    ("bob", "DPO", "decide_certification", "examiner_decider"),
    ("alice", "CWI", "review_eligibility", "examiner"),
]


def load_demo_cases(engine) -> int:
    """Start the demo applicants' cases and drive each to its step (only on an empty system)."""
    from .models import Case

    with engine.sessions() as session:
        if session.scalar(select(Case.id).limit(1)) is not None:
            return 0
    for username, scheme, stop_at, examiner in DEMO_CASES:
        applicant = engine.user(username)
        case = engine.start_case(
            "application", actor=username, person_id=applicant.person_id, scheme_code=scheme
        )
        drive_case(engine, case.case_id, username, stop_at, {"examiner": examiner})
    return len(DEMO_CASES)


# Who does each kind of step in the demo stories.
DEMO_STAFF = {
    "clerk": "clerk",
    "reviewer": "reviewer",
    "invigilator": "invigilator",
    "decision_maker": "decider",
    "manager": "manager",
}


def drive_case(
    engine,
    case_id: int,
    holder: str,
    stop_at: str | None = None,
    overrides: dict | None = None,
    staff: dict[str, str] | None = None,
) -> None:
    """Complete the case's steps on the happy path (with `overrides` for form fields), the
    holder's steps as `holder`, until `stop_at` is ready or the case waits for nobody."""
    from .simulation import HAPPY_PATH, valid_form_data

    staff = {**DEMO_STAFF, **(staff or {})}
    while True:
        ready = engine.ready_tasks(case_id)
        if not ready or any(t.task_spec_id == stop_at for t in ready):
            return
        for task in ready:
            values = dict(HAPPY_PATH.get(task.form, {}))
            form = engine.task_form(task)
            schema = form.schema if form is not None else {}
            values.update(
                {k: v for k, v in (overrides or {}).items() if k in schema.get("properties", {})}
            )
            performer = (
                holder
                if task.role == "applicant"
                else (task.candidates or [staff.get(task.role)])[0]
            )
            engine.complete(task.id, performer, valid_form_data(schema, values))
