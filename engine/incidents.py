"""Incidents: a background job failed on one case or certificate.

The job records the error here and goes on with the others; while the incident is open the
job leaves that item alone (no retry storm every few seconds). Staff see open incidents on
the case page and the dashboard; `retry` resolves the incident, makes the item due again and
runs the job at once, which records a new incident if the cause is still there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, select

from .errors import ConflictError, NotFoundError, PermissionDenied
from .models import Certificate, Incident, Timer, User
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from . import Engine

RETRY_ROLES = frozenset({"manager", "admin"})


def record_incident(
    uow: UnitOfWork,
    job: str,
    error: BaseException,
    *,
    case_id: int | None = None,
    certificate_id: int | None = None,
    timer_id: int | None = None,
) -> Incident:
    message = f"{type(error).__name__}: {error}"[:4000]
    incident = Incident(
        job=job,
        case_id=case_id,
        certificate_id=certificate_id,
        timer_id=timer_id,
        message=message,
        occurred_at=uow.now,
        status="open",
    )
    uow.session.add(incident)
    uow.audit.record(
        uow.now,
        "scheduler",
        "incident_opened",
        f"{job} failed: {message}",
        case_id=case_id,
        after={"job": job, "certificate_id": certificate_id, "timer_id": timer_id},
    )
    return incident


def no_open_incident(job: str, **item):
    """SQL criterion: the item (a certificate_id=... or timer_id=... column) has no open
    incident of `job`."""
    [(column, value)] = item.items()
    return ~exists().where(
        and_(Incident.job == job, Incident.status == "open", getattr(Incident, column) == value)
    )


def open_incidents(session, *, case_id: int | None = None) -> list[Incident]:
    query = select(Incident).where(Incident.status == "open").order_by(Incident.id)
    if case_id is not None:
        query = query.where(Incident.case_id == case_id)
    return list(session.scalars(query))


def resolve_for_retry(uow: UnitOfWork, incident_id: int, user: User) -> Incident:
    if not (user.role_names & RETRY_ROLES):
        raise PermissionDenied("only a manager or an administrator can retry a failed job")
    incident = uow.session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise NotFoundError(f"incident {incident_id} does not exist")
    if incident.status != "open":
        raise ConflictError(f"incident {incident_id} was already resolved")
    incident.status = "resolved"
    incident.resolved_at = uow.now
    incident.resolved_by_id = user.id
    if incident.timer_id is not None:
        timer = uow.session.get(Timer, incident.timer_id)
        if timer is not None and timer.status == "failed":
            timer.status = "waiting"
            timer.last_error = None
    uow.audit.record(
        uow.now,
        user.username,
        "incident_retried",
        f"{incident.job} retried after: {incident.message}",
        case_id=incident.case_id,
        after={"incident_id": incident.id, "job": incident.job},
    )
    return incident


def retry(engine: Engine, incident_id: int, username: str) -> dict[str, int]:
    """Resolve the incident and run its job once now; returns what the job did."""
    from .cases import find_user
    from .scheduler import JOBS

    with engine.unit_of_work() as uow:
        incident = resolve_for_retry(uow, incident_id, find_user(uow, username))
        job = incident.job
    return {job: JOBS[job](engine)} if job in JOBS else {}


@dataclass(frozen=True)
class IncidentRow:
    """An open incident as the dashboard lists it."""

    id: int
    job: str
    message: str
    occurred_at: datetime
    case_id: int | None
    certificate_number: str | None


def open_incident_rows(session, limit: int = 50) -> list[IncidentRow]:
    """The open incidents, oldest first, with the certificate each is about."""
    query = (
        select(
            Incident.id,
            Incident.job,
            Incident.message,
            Incident.occurred_at,
            Incident.case_id,
            Certificate.number,
        )
        .outerjoin(Certificate, Certificate.id == Incident.certificate_id)
        .where(Incident.status == "open")
        .order_by(Incident.id)
        .limit(limit)
    )
    return [IncidentRow(*row) for row in session.execute(query)]
