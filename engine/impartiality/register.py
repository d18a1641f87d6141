"""Operations on the impartiality register: conflict declarations and commitments.

Declarations are never deleted: ending one records who ended it and when. Every change is
an audit event; a manager may record a declaration on a staff member's behalf.
"""

from __future__ import annotations

from datetime import date

from ..certificates import add_months
from ..errors import NotFoundError, PermissionDenied, ValidationError
from ..models import RELATIONSHIPS, Commitment, ConflictOfInterest, Person, User
from ..unit_of_work import UnitOfWork
from .policy import current_policy

MANAGING_ROLES = {"manager", "admin"}


def declare_conflict(
    uow: UnitOfWork,
    actor: User,
    staff: User,
    person_id: int,
    relationship: str,
    valid_from: date,
    valid_until: date | None = None,
    note: str = "",
) -> ConflictOfInterest:
    if actor.id != staff.id and not (actor.role_names & MANAGING_ROLES):
        raise PermissionDenied(
            "only the staff member or a manager may declare their conflicts of interest"
        )
    fields: dict[str, list[str]] = {}
    if relationship not in RELATIONSHIPS:
        fields["relationship"] = [f"must be one of: {', '.join(RELATIONSHIPS)}"]
    if valid_until is not None and valid_until < valid_from:
        fields["valid_until"] = ["must not be before valid_from"]
    if uow.session.get(Person, person_id) is None:
        fields["person_id"] = [f"person {person_id} does not exist"]
    if fields:
        raise ValidationError("the declaration is incomplete", fields)
    conflict = ConflictOfInterest(
        staff_user_id=staff.id,
        person_id=person_id,
        relationship=relationship,
        valid_from=valid_from,
        valid_until=valid_until,
        note=note,
        declared_by_id=actor.id,
        declared_at=uow.now,
    )
    uow.session.add(conflict)
    uow.session.flush()
    on_behalf = "" if actor.id == staff.id else f" (recorded by {actor.username})"
    uow.audit.record(
        uow.now,
        actor.username,
        "conflict_declared",
        f"{staff.username} declared a conflict of interest ({relationship}) with person {person_id}{on_behalf}",
        after={
            "declaration_id": conflict.id,
            "staff": staff.username,
            "person_id": person_id,
            "relationship": relationship,
            "valid_from": valid_from.isoformat(),
            "valid_until": valid_until.isoformat() if valid_until else None,
        },
    )
    return conflict


def end_conflict(uow: UnitOfWork, actor: User, declaration_id: int) -> ConflictOfInterest:
    conflict = uow.session.get(ConflictOfInterest, declaration_id)
    if conflict is None:
        raise NotFoundError(f"declaration {declaration_id} does not exist")
    if actor.id != conflict.staff_user_id and not (actor.role_names & MANAGING_ROLES):
        raise PermissionDenied("only the staff member or a manager may end this declaration")
    if conflict.ended_at is None:
        conflict.ended_at = uow.now
        conflict.ended_by_id = actor.id
        uow.audit.record(
            uow.now,
            actor.username,
            "conflict_ended",
            f"declaration {declaration_id} ended",
            after={"declaration_id": declaration_id},
        )
    return conflict


def sign_commitment(
    uow: UnitOfWork, actor: User, staff: User, signed_on: date | None = None
) -> Commitment:
    if actor.id != staff.id and not (actor.role_names & MANAGING_ROLES):
        raise PermissionDenied("only the staff member or a manager may record their commitment")
    policy = current_policy()
    signed_on = signed_on or uow.now.date()
    commitment = Commitment(
        user_id=staff.id,
        text_version=policy.commitment_text_version,
        signed_on=signed_on,
        expires_on=add_months(signed_on, policy.commitment_validity_months),
        recorded_by_id=actor.id,
        recorded_at=uow.now,
    )
    uow.session.add(commitment)
    uow.session.flush()
    uow.audit.record(
        uow.now,
        actor.username,
        "commitment_signed",
        f"{staff.username} signed the confidentiality and impartiality commitment v{commitment.text_version}",
        after={
            "staff": staff.username,
            "signed_on": signed_on.isoformat(),
            "expires_on": commitment.expires_on.isoformat(),
        },
    )
    return commitment
