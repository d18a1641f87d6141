"""Raising a corrective action (ISO/IEC 17024 10.2.7): from an internal audit's
nonconformity, a complaint, an appeal or an incident.

A `corrective_action` case is about no person (the impartiality rules about a candidate do
not apply to it). It carries its source in the case data (`nonconformity`) and, when the
source is a case, a `raised_from` link to it, so the source's scheme and history stay one
click away. The internal audit raises one per nonconformity when it is closed (system
operation `raise_corrective_actions`); staff raise one with `raise_corrective_action`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import NotFoundError, PermissionDenied, ValidationError
from .models import Case, Incident, Scheme, User
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from . import Engine

PROCESS = "corrective_action"
# source -> the process of the case it refers to (None: the reference is no case).
SOURCES: dict[str, str | None] = {
    "internal_audit": "internal_audit",
    "complaint": "complaint",
    "appeal": "appeal",
    "incident": None,
    "other": None,
}
RAISER_ROLES = frozenset({"quality_manager", "complaints_officer", "manager", "admin"})


def raise_corrective_action(
    engine: Engine,
    uow: UnitOfWork,
    actor: User | None,
    source: str,
    reference: Any,
    description: str,
) -> Case:
    """Start a corrective action for a nonconformity found through `source`; `reference` is
    the id of the case (audit, complaint, appeal) or incident it comes from. `actor` None:
    raised by the system (the close of an internal audit)."""
    from .cases import start_case

    if actor is not None and not (actor.role_names & RAISER_ROLES):
        raise PermissionDenied(
            "only quality managers, complaints officers, managers and admins can raise a "
            "corrective action"
        )
    if source not in SOURCES:
        raise ValidationError(
            "unknown source", {"source": [f"must be one of: {', '.join(SOURCES)}"]}
        )
    description = (description or "").strip()
    if len(description) < 10:
        raise ValidationError(
            "describe the nonconformity", {"description": ["at least 10 characters"]}
        )
    if len(description) > 4000:
        raise ValidationError("too long", {"description": ["at most 4,000 characters"]})
    links: dict[str, int] = {}
    scheme = None
    process = SOURCES[source]
    if process is not None or source == "incident":
        number = _whole_number(reference)
        if number is None:
            raise ValidationError(
                "say where it comes from",
                {"reference": [f"give the id of the {source.replace('_', ' ')} it comes from"]},
            )
        reference = number
    if process is not None:
        subject = uow.session.get(Case, reference)
        if subject is None or subject.process_id != process:
            raise NotFoundError(f"{process.replace('_', ' ')} case {reference} does not exist")
        links["raised_from"] = subject.id
        scheme = uow.session.get(Scheme, subject.scheme_id) if subject.scheme_id else None
    elif source == "incident":
        if uow.session.get(Incident, reference) is None:
            raise NotFoundError(f"incident {reference} does not exist")
    elif reference is not None:
        reference = str(reference).strip()[:200] or None
    nonconformity = {"source": source, "reference": reference, "description": description}
    case, _run = start_case(
        engine,
        uow,
        PROCESS,
        actor,
        None,
        scheme,
        data={"nonconformity": nonconformity},
        links=links,
    )
    uow.audit.record(
        uow.now,
        actor.username if actor else "system",
        "corrective_action_raised",
        f"corrective action raised from {source.replace('_', ' ')}"
        + (f" {reference}" if reference is not None else "")
        + f": {description[:200]}",
        case_id=case.id,
        after=nonconformity,
    )
    return case


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
