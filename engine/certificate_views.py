"""A certificate's life as pages show it: its history with who made each change, the cases
about it, and since when its current status holds (for the public verification).

Queries only; every change to a certificate is in `certificate_lifecycle`. Who may see a
certificate in full is `certificates.certificate_for_viewer` (whoever may see its holder:
the holder, oversight roles, staff on one of the holder's cases); what anyone may learn is
`certificates.public_record` (ISO/IEC 17024 7.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Case, Certificate, CertificateStatusChange, User

# The history events that put a certificate into each status other than active.
STATUS_EVENTS: dict[str, tuple[str, ...]] = {
    "suspended": ("suspended",),
    "withdrawn": ("withdrawn",),
    "expired": ("expired",),
    "reduced": ("scope_reduced",),
}


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a certificate's history, with the name of the staff member who made it
    (None for changes made by the system, e.g. expiry)."""

    changed_at: datetime
    event: str
    from_status: str | None
    to_status: str
    reason: str
    details: dict[str, Any]
    by: str | None
    case_id: int | None


def certificate_histories(
    session: Session, certificate_ids: list[int]
) -> dict[int, list[HistoryEntry]]:
    """The history of each certificate, oldest first (two queries for any number)."""
    histories: dict[int, list[HistoryEntry]] = {cid: [] for cid in certificate_ids}
    if not certificate_ids:
        return histories
    rows = list(
        session.execute(
            select(CertificateStatusChange, User.display_name)
            .outerjoin(User, User.id == CertificateStatusChange.changed_by_id)
            .where(CertificateStatusChange.certificate_id.in_(certificate_ids))
            .order_by(CertificateStatusChange.id)
        )
    )
    for change, by in rows:
        histories[change.certificate_id].append(
            HistoryEntry(
                changed_at=change.changed_at,
                event=change.event,
                from_status=change.from_status,
                to_status=change.to_status,
                reason=change.reason,
                details=dict(change.details or {}),
                by=by,
                case_id=change.case_id,
            )
        )
    return histories


def certificate_cases(session: Session, certificate: Certificate) -> list[Case]:
    """The case that issued the certificate, then the surveillance, recertification and
    suspension cases about it, oldest first."""
    criteria = Case.certificate_id == certificate.id
    if certificate.case_id is not None:
        criteria = criteria | (Case.id == certificate.case_id)
    return list(session.scalars(select(Case).where(criteria).order_by(Case.id)))


def status_since(session: Session, certificate: Certificate) -> date | None:
    """The day the certificate entered its current status (suspended, withdrawn, expired,
    reduced scope): the date of the latest history entry that put it there; None when it is
    active or no such entry exists."""
    events = STATUS_EVENTS.get(certificate.status)
    if not events:
        return None
    changed_at = session.scalar(
        select(CertificateStatusChange.changed_at)
        .where(
            CertificateStatusChange.certificate_id == certificate.id,
            CertificateStatusChange.event.in_(events),
        )
        .order_by(CertificateStatusChange.id.desc())
        .limit(1)
    )
    return changed_at.date() if changed_at else None


def public_status_since(session: Session, number: str) -> date | None:
    """`status_since` for the certificate with this number (None if there is none)."""
    certificate = session.scalars(
        select(Certificate).where(Certificate.number == number.strip().upper())
    ).first()
    return status_since(session, certificate) if certificate is not None else None
