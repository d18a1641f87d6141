"""Operations on people and accounts: applicant registration, and who may see what is kept
about a person (their record, their certificates in full)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from .errors import ConflictError, NotFoundError, ValidationError
from .models import OVERSIGHT_ROLES, Case, Person, User, UserRole
from .passwords import hash_password
from .unit_of_work import UnitOfWork

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10


def registration_problems(
    given_name: str, family_name: str, email: str, password: str | None
) -> dict[str, list[str]]:
    """Each registration field's problems (empty when the form may be submitted)."""
    fields: dict[str, list[str]] = {}
    if not (given_name or "").strip():
        fields["given_name"] = ["Given name is required"]
    if not (family_name or "").strip():
        fields["family_name"] = ["Family name is required"]
    if not _EMAIL.match((email or "").strip().lower()):
        fields["email"] = ["E-mail address is not valid"]
    if password is not None and len(password) < MIN_PASSWORD:
        fields["password"] = [f"Password must have at least {MIN_PASSWORD} characters"]
    return fields


def register_applicant(
    uow: UnitOfWork,
    given_name: str,
    family_name: str,
    email: str,
    password: str | None,
    username: str | None = None,
) -> User:
    """Create a person and their applicant account (self-registration, or a simulation)."""
    fields = registration_problems(given_name, family_name, email, password)
    if fields:
        raise ValidationError("the registration is incomplete", fields)
    email = (email or "").strip().lower()
    session = uow.session
    taken = session.scalar(select(func.count()).select_from(Person).where(Person.email == email))
    if taken:
        raise ConflictError("an account with this e-mail address already exists")
    person = Person(
        given_name=given_name.strip(),
        family_name=family_name.strip(),
        email=email,
        created_at=uow.now,
    )
    session.add(person)
    session.flush()
    user = User(
        username=username or email,
        display_name=person.full_name,
        email=email,
        password_hash=hash_password(password) if password else None,
        person_id=person.id,
        created_at=uow.now,
    )
    user.roles = [UserRole(role="applicant")]
    session.add(user)
    session.flush()
    uow.audit.record(
        uow.now,
        user.username,
        "applicant_registered",
        f"{person.full_name} registered",
        after={"person_id": person.id},
    )
    return user


def may_see_person(session, user: User, person_id: int) -> bool:
    """Whether `user` may see what is kept about a person (their record, their certificates'
    history and the reasons for a suspension or withdrawal): the person themself, oversight
    roles, and staff who may see one of the person's cases. Personal data is confidential
    (ISO/IEC 17024 7.3): an examiner learns nothing of candidates they have no part in."""
    from .case_views import visible_cases_criteria

    return (
        user.person_id == person_id
        or bool(user.role_names & OVERSIGHT_ROLES)
        or (
            user.is_staff
            and session.scalar(
                select(Case.id)
                .where(Case.person_id == person_id, *visible_cases_criteria(user))
                .limit(1)
            )
            is not None
        )
    )


def visible_person(session, user: User, person_id: int) -> Person:
    """The person record if `user` may see it (`may_see_person`); otherwise "not found", so
    ids reveal nothing."""
    person = session.get(Person, person_id)
    if person is None or not may_see_person(session, user, person_id):
        raise NotFoundError(f"person {person_id} does not exist or is not yours to see")
    return person
