"""Read-only queries behind the impartiality pages: declarations, commitments, flagged tasks,
people to pick, and the commitment text itself. No rules here (they are in `rules`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from ..models import (
    STAFF_ROLES,
    Case,
    Commitment,
    ConflictOfInterest,
    HumanTask,
    Person,
    Scheme,
    User,
    UserRole,
)
from .policy import current_policy

# The commitment staff sign (ISO/IEC 17024 6.1), by text version (`policy.json`).
COMMITMENT_TEXTS = {
    "2026-1": (
        "I will keep confidential all information about applicants, candidates and certified "
        "persons that I obtain in my work for the certification body, and use it only for that "
        "work, unless the person agrees in writing or the law requires its disclosure.",
        "I will act impartially: I will not let commercial, financial or other pressures, or my "
        "own interests, influence any step of a certification, and I will not take part in a "
        "decision about a candidate I have trained or examined.",
        "I will declare without delay any relationship with an applicant, candidate or "
        "certified person that could threaten my impartiality (having trained them, being or "
        "having been their employer or colleague, being related to them, or any other link), "
        "and I will not work on their case while it lasts.",
        "I understand that this commitment is valid for a limited period and that I must renew "
        "it before it expires to keep working on certification tasks.",
    ),
}


def commitment_text(version: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The current (or given) text version and its paragraphs."""
    version = version or current_policy().commitment_text_version
    return version, COMMITMENT_TEXTS.get(
        version, (f"Confidentiality and impartiality commitment, text version {version}.",)
    )


@dataclass
class DeclarationRow:
    id: int
    staff_username: str
    staff_name: str
    person_id: int
    person_name: str
    person_email: str
    relationship: str
    valid_from: date
    valid_until: date | None
    note: str
    declared_by: str
    declared_at: object
    ended_at: object
    ended_by: str | None

    def active_on(self, today: date) -> bool:
        return (
            self.ended_at is None
            and self.valid_from <= today
            and (self.valid_until is None or self.valid_until >= today)
        )

    def status_on(self, today: date) -> str:
        if self.ended_at is not None:
            return "ended"
        if self.valid_until is not None and self.valid_until < today:
            return "expired"
        if self.valid_from > today:
            return "future"
        return "active"


def active_criterion(today: date):
    return and_(
        ConflictOfInterest.ended_at.is_(None),
        ConflictOfInterest.valid_from <= today,
        or_(ConflictOfInterest.valid_until.is_(None), ConflictOfInterest.valid_until >= today),
    )


def declarations(
    session: Session,
    today: date,
    *,
    staff_user_id: int | None = None,
    person_id: int | None = None,
    person_query: str | None = None,
    active: bool | None = None,
    limit: int = 500,
) -> list[DeclarationRow]:
    """Conflict declarations, newest first, with names resolved."""
    staff = aliased(User)
    declarer = aliased(User)
    ender = aliased(User)
    query = (
        select(
            ConflictOfInterest,
            staff.username,
            staff.display_name,
            Person.given_name,
            Person.family_name,
            Person.email,
            declarer.username,
            ender.username,
        )
        .join(staff, staff.id == ConflictOfInterest.staff_user_id)
        .join(Person, Person.id == ConflictOfInterest.person_id)
        .join(declarer, declarer.id == ConflictOfInterest.declared_by_id)
        .outerjoin(ender, ender.id == ConflictOfInterest.ended_by_id)
        .order_by(ConflictOfInterest.declared_at.desc(), ConflictOfInterest.id.desc())
        .limit(limit)
    )
    if staff_user_id is not None:
        query = query.where(ConflictOfInterest.staff_user_id == staff_user_id)
    if person_id is not None:
        query = query.where(ConflictOfInterest.person_id == person_id)
    if person_query:
        query = query.where(_person_matches(person_query))
    if active is True:
        query = query.where(active_criterion(today))
    elif active is False:
        query = query.where(~active_criterion(today))
    return [
        DeclarationRow(
            c.id,
            username,
            name,
            c.person_id,
            f"{given} {family}",
            email,
            c.relationship,
            c.valid_from,
            c.valid_until,
            c.note or "",
            declared_by,
            c.declared_at,
            c.ended_at,
            ended_by,
        )
        for c, username, name, given, family, email, declared_by, ended_by in session.execute(query)
    ]


def _person_matches(text: str):
    pattern = f"%{text.lower()}%"
    full = func.lower(Person.given_name + " " + Person.family_name)
    return or_(full.like(pattern), func.lower(Person.email).like(pattern))


def find_people(session: Session, text: str, limit: int = 10) -> list[Person]:
    """People matching `text`: an id ("12" or "#12"), or part of the name or e-mail."""
    text = text.strip()
    if text.lstrip("#").isdigit():
        person = session.get(Person, int(text.lstrip("#")))
        return [person] if person is not None else []
    if not text:
        return []
    return list(
        session.scalars(
            select(Person)
            .where(_person_matches(text))
            .order_by(Person.family_name, Person.given_name, Person.id)
            .limit(limit)
        )
    )


def staff_users(session: Session) -> list[User]:
    """Active staff accounts, by name."""
    ids = select(UserRole.user_id).where(UserRole.role.in_(STAFF_ROLES))
    return list(
        session.scalars(
            select(User)
            .where(User.id.in_(ids), User.active.is_(True))
            .order_by(User.display_name, User.username)
        )
    )


@dataclass
class CommitmentStatus:
    user: User
    latest: Commitment | None
    today: date

    @property
    def status(self) -> str:
        if self.latest is None:
            return "missing"
        if self.latest.expires_on < self.today:
            return "expired"
        if (self.latest.expires_on - self.today).days <= 30:
            return "expiring"
        return "current"


def latest_commitment(session: Session, user_id: int) -> Commitment | None:
    return session.scalars(
        select(Commitment)
        .where(Commitment.user_id == user_id)
        .order_by(Commitment.signed_on.desc(), Commitment.id.desc())
        .limit(1)
    ).first()


def commitments_overview(session: Session, today: date) -> list[CommitmentStatus]:
    """Every active staff member with their latest commitment: missing / expired first."""
    users = staff_users(session)
    latest: dict[int, Commitment] = {}
    if users:
        for commitment in session.scalars(
            select(Commitment)
            .where(Commitment.user_id.in_([u.id for u in users]))
            .order_by(Commitment.signed_on, Commitment.id)
        ):
            latest[commitment.user_id] = commitment
    rows = [CommitmentStatus(u, latest.get(u.id), today) for u in users]
    order = {"missing": 0, "expired": 1, "expiring": 2, "current": 3}
    return sorted(rows, key=lambda r: (order[r.status], r.user.display_name))


@dataclass
class OpenTaskRow:
    task: HumanTask
    case: Case
    person_name: str | None
    scheme_code: str | None
    assignee_name: str | None


def open_staff_tasks(
    session: Session, *, flagged_only: bool = False, role: str | None = None, limit: int = 100
) -> list[OpenTaskRow]:
    """Ready staff tasks (flagged ones first, then by due date), with case and names."""
    assignee = aliased(User)
    query = (
        select(
            HumanTask,
            Case,
            Person.given_name,
            Person.family_name,
            Scheme.code,
            assignee.display_name,
        )
        .join(Case, Case.id == HumanTask.case_id)
        .outerjoin(Person, Person.id == Case.person_id)
        .outerjoin(Scheme, Scheme.id == Case.scheme_id)
        .outerjoin(assignee, assignee.id == HumanTask.assignee_id)
        .where(HumanTask.status == "ready", HumanTask.role != "applicant")
        .order_by(
            HumanTask.assignment_flag.is_(None),
            HumanTask.due_at.is_(None),
            HumanTask.due_at,
            HumanTask.id,
        )
        .limit(limit)
    )
    if flagged_only:
        query = query.where(HumanTask.assignment_flag.is_not(None))
    if role:
        query = query.where(HumanTask.role == role)
    return [
        OpenTaskRow(task, case, f"{given} {family}" if given else None, code, name)
        for task, case, given, family, code, name in session.execute(query)
    ]


def flagged_tasks(session: Session, limit: int = 100) -> list[OpenTaskRow]:
    """Open tasks for which auto-assignment found nobody eligible."""
    return open_staff_tasks(session, flagged_only=True, limit=limit)


def staff_roles_in_use(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(HumanTask.role)
            .where(HumanTask.status == "ready", HumanTask.role != "applicant")
            .distinct()
            .order_by(HumanTask.role)
        )
    )
