"""The certificate lifecycle jobs: surveillance and recertification cases start on their
dates, and certificates past their end date expire.

Each certificate is handled in its own unit of work. On PostgreSQL its row is claimed with
`FOR UPDATE SKIP LOCKED`, and the date that made it due is cleared or moved in the same
transaction as the case it starts, so with any number of workers each surveillance and each
recertification starts exactly once. A failure on one certificate becomes an incident and
the job goes on with the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, exists, select

from . import cases
from . import certificate_lifecycle as lifecycle_ops
from .certificates import add_months, certificate_for_viewer
from .errors import ConflictError, PermissionDenied, ValidationError
from .incidents import no_open_incident, record_incident
from .models import Case, Certificate, Person, Scheme
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from . import Engine

log = logging.getLogger(__name__)

OPEN_CASE_STATUSES = ("running", "errored")


def lifecycle_case_data(certificate: Certificate) -> dict[str, Any]:
    """What a surveillance, recertification or suspension case knows of its certificate.
    `expires_at` is the end of the last valid day, usable as a BPMN timeDate."""
    end = certificate.expires_on + timedelta(days=1)
    return {
        "number": certificate.number,
        "status": certificate.status,
        "scope": certificate.scope,
        "effective_on": certificate.effective_on.isoformat(),
        "expires_on": certificate.expires_on.isoformat(),
        "expires_at": f"{end.isoformat()}T00:00:00+00:00",
    }


def start_lifecycle_case(
    engine: Engine,
    uow: UnitOfWork,
    process_id: str,
    certificate: Certificate,
    *,
    actor=None,
    data: dict[str, Any] | None = None,
    follows: Case | None = None,
) -> Case:
    """A case about a certificate, linked to the case that certified the holder (so that
    SOD-DECIDE keeps that case's examiners off its decisions) and to the case it follows."""
    person = uow.session.get(Person, certificate.person_id)
    scheme = uow.session.get(Scheme, certificate.scheme_id)
    links = {}
    if certificate.case_id is not None:
        links["certified_in"] = certificate.case_id
    if follows is not None:
        links["follows"] = follows.id
    case, _run = cases.start_case(
        engine,
        uow,
        process_id,
        actor,
        person,
        scheme,
        data={"certificate": lifecycle_case_data(certificate), **(data or {})},
        links=links,
        certificate_id=certificate.id,
    )
    return case


def open_case_exists(process_id: str):
    return exists().where(
        Case.certificate_id == Certificate.id,
        Case.process_id == process_id,
        Case.status.in_(OPEN_CASE_STATUSES),
    )


# -- the jobs ---------------------------------------------------------------------------------


def start_due_surveillance(engine: Engine, limit: int = 100) -> int:
    """Start a surveillance case for each held certificate whose surveillance date has come
    (while no other surveillance of it is open), and set the next date of the cycle."""

    def due(today: date):
        return (
            Certificate.status.in_(("active", "reduced")),
            Certificate.next_surveillance_on <= today,
            ~open_case_exists("surveillance"),
        )

    def act(uow: UnitOfWork, certificate: Certificate) -> None:
        scheme = uow.session.get(Scheme, certificate.scheme_id)
        start_lifecycle_case(engine, uow, "surveillance", certificate)
        today = uow.now.date()
        certificate.next_surveillance_on = lifecycle_ops.next_surveillance_date(
            add_months(certificate.expires_on, -scheme.validity_months),
            scheme.surveillance_months,
            today,
            certificate.recertification_opens_on or certificate.expires_on,
        )

    return _each_due_certificate(engine, "start_due_surveillance", due, act, limit)


def open_due_recertifications(engine: Engine, limit: int = 100) -> int:
    """Open the recertification case of each held certificate whose window has opened."""

    def due(today: date):
        return (
            Certificate.status.in_(("active", "reduced")),
            Certificate.recertification_opens_on <= today,
            ~open_case_exists("recertification"),
        )

    def act(uow: UnitOfWork, certificate: Certificate) -> None:
        start_lifecycle_case(engine, uow, "recertification", certificate)
        certificate.recertification_opens_on = None

    return _each_due_certificate(engine, "open_due_recertifications", due, act, limit)


def expire_certificates(engine: Engine, limit: int = 100) -> int:
    """Expire every held certificate whose last valid day has passed."""

    def due(today: date):
        return (
            Certificate.status.in_(("active", "reduced", "suspended")),
            Certificate.expires_on < today,
        )

    def act(uow: UnitOfWork, certificate: Certificate) -> None:
        change = lifecycle_ops.LifecycleChange(uow.session, uow.audit, uow.now, "scheduler")
        lifecycle_ops.expire(
            change, certificate, f"validity period ended on {certificate.expires_on:%d %b %Y}"
        )

    return _each_due_certificate(engine, "expire_certificates", due, act, limit)


def _each_due_certificate(
    engine: Engine,
    job: str,
    due: Callable[[date], tuple[Any, ...]],
    act: Callable[[UnitOfWork, Certificate], None],
    limit: int,
) -> int:
    handled = 0
    for _ in range(limit):
        with engine.unit_of_work() as uow:
            query = _first_due_certificate(job, due(uow.now.date()))
            if engine.db.dialect.name == "postgresql":
                query = query.with_for_update(of=Certificate, skip_locked=True)
            certificate = uow.session.scalars(query).first()
            if certificate is None:
                return handled
            certificate_id, number = certificate.id, certificate.number
            try:
                act(uow, certificate)
            except Exception as exc:  # noqa: BLE001 - one broken item must not stop the others
                log.exception("%s failed on certificate %s", job, number)
                uow.restart()  # this also gave up the certificate's lock: take it again
                query = _first_due_certificate(
                    job, due(uow.now.date()), Certificate.id == certificate_id
                )
                if uow.session.scalars(query.with_for_update(of=Certificate)).first() is None:
                    continue  # another worker handled it, or recorded its failure, meanwhile
                record_incident(uow, job, exc, certificate_id=certificate_id)
        handled += 1
    return handled


def _first_due_certificate(job: str, due: tuple[Any, ...], *only: Any) -> Select:
    """The first certificate `job` is due to act on and has no open failure of."""
    return (
        select(Certificate)
        .where(*due, no_open_incident(job, certificate_id=Certificate.id), *only)
        .order_by(Certificate.id)
        .limit(1)
    )


# -- requested by staff -----------------------------------------------------------------------

SUSPENSION_REQUESTERS = frozenset(
    {"manager", "admin", "clerk", "complaints_officer", "decision_maker", "quality_manager"}
)


def request_suspension(
    engine: Engine, uow: UnitOfWork, user, certificate_number: str, reasons: str
) -> Case:
    """Staff ask for a decision on suspending, reducing or withdrawing a certificate (after a
    complaint, say): a `suspension` case whose decision task a decision maker takes. Whoever
    may not see the certificate (`certificates.certificate_for_viewer`) is told it does not
    exist; whoever sees it without a requesting role is refused."""
    certificate = certificate_for_viewer(uow.session, user, certificate_number, lock=True)
    if not (user.role_names & SUSPENSION_REQUESTERS):
        raise PermissionDenied(
            "only managers, clerks, complaints officers, decision makers and quality managers "
            "can ask for a suspension decision"
        )
    reasons = (reasons or "").strip()
    if not reasons:
        raise ValidationError("say why", {"reasons": ["give the reasons for the request"]})
    if len(reasons) > 2000:
        raise ValidationError("too long", {"reasons": ["at most 2,000 characters"]})
    if certificate.status not in ("active", "reduced", "suspended"):
        raise ConflictError(f"certificate {certificate.number} is {certificate.status}")
    pending = uow.session.scalar(
        select(Case.id).where(
            Case.certificate_id == certificate.id,
            Case.process_id == "suspension",
            Case.status.in_(OPEN_CASE_STATUSES),
        )
    )
    if pending is not None:
        raise ConflictError(
            f"a suspension decision on {certificate.number} is already open (case {pending})"
        )
    case = start_lifecycle_case(
        engine, uow, "suspension", certificate, actor=user, data={"suspension_request": reasons}
    )
    uow.audit.record(
        uow.now,
        user.username,
        "suspension_requested",
        f"decision on suspending certificate {certificate.number} requested: {reasons}",
        case_id=case.id,
        after={"certificate": certificate.number, "reasons": reasons},
    )
    return case
