"""A certificate's life after issue (ISO/IEC 17024 9.5, 9.6): surveillance, suspension,
reinstatement, scope reduction, withdrawal, expiry and renewal.

Every change is one function here. Each checks that the change is allowed from the current
status, writes the certificate's history entry and an audit event, and tells the holder by
e-mail, all in the caller's unit of work. The dates on which the lifecycle jobs start
surveillance and recertification cases are derived here too (`schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from .audit import AuditLog
from .certificates import add_months, certificate_summary
from .errors import ConflictError
from .models import Certificate, CertificateStatusChange, Person, Scheme
from .notifications import notify_person


@dataclass
class LifecycleChange:
    """Who changes a certificate, when, in which case, and the record to write to."""

    session: Session
    audit: AuditLog
    now: datetime
    actor: str
    actor_id: int | None = None
    case_id: int | None = None


# event -> (statuses it may start from, status it leaves, what the holder is told)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "suspended": (("active", "reduced"), "suspended", "has been suspended"),
    "reinstated": (("suspended",), None, "has been reinstated"),
    "withdrawn": (("active", "reduced", "suspended"), "withdrawn", "has been withdrawn"),
    "scope_reduced": (("active", "reduced"), "reduced", "has had its scope reduced"),
    "expired": (("active", "reduced", "suspended"), "expired", "has expired"),
    "renewed": (("active", "reduced", "expired"), None, "has been renewed"),
    "surveillance_passed": (("active", "reduced"), None, "has passed surveillance"),
}


def schedule(certificate: Certificate, scheme: Scheme, after: date) -> None:
    """Set the next surveillance date (the first interval boundary of the current cycle after
    `after`, if it comes before recertification opens) and the recertification date."""
    opens = certificate.expires_on - timedelta(days=scheme.recertification_window_days)
    cycle_start = add_months(certificate.expires_on, -scheme.validity_months)
    certificate.recertification_opens_on = opens
    certificate.next_surveillance_on = next_surveillance_date(
        cycle_start, scheme.surveillance_months, after, opens
    )


def next_surveillance_date(
    cycle_start: date, interval_months: int, after: date, recertification_opens: date
) -> date | None:
    if interval_months <= 0:
        return None
    step = 1
    while True:
        due = add_months(cycle_start, step * interval_months)
        if due >= recertification_opens:
            return None
        if due > after:
            return due
        step += 1


def suspend(change: LifecycleChange, certificate: Certificate, reason: str) -> None:
    _apply(change, certificate, "suspended", reason)


def reinstate(change: LifecycleChange, certificate: Certificate, reason: str) -> None:
    """Back to the status it had before the suspension (active, or reduced scope)."""
    restored = "reduced" if certificate.scope != _original_scope(change, certificate) else "active"
    _apply(change, certificate, "reinstated", reason, to_status=restored)


def withdraw(change: LifecycleChange, certificate: Certificate, reason: str) -> None:
    _apply(change, certificate, "withdrawn", reason)
    certificate.next_surveillance_on = None
    certificate.recertification_opens_on = None


def reduce_scope(
    change: LifecycleChange, certificate: Certificate, new_scope: str, reason: str
) -> None:
    new_scope = (new_scope or "").strip()
    if not new_scope:
        raise ConflictError("a scope reduction needs the new, narrower scope")
    if new_scope == certificate.scope:
        raise ConflictError("the new scope is the same as the current scope")
    previous = certificate.scope
    certificate.scope = new_scope
    _apply(
        change,
        certificate,
        "scope_reduced",
        reason,
        details={"previous_scope": previous, "scope": new_scope},
    )


def expire(change: LifecycleChange, certificate: Certificate, reason: str) -> bool:
    """Expire a certificate past its end date; False (and nothing done) if it is no longer
    held, e.g. expired already by the expiry job."""
    if certificate.status not in TRANSITIONS["expired"][0]:
        return False
    _apply(change, certificate, "expired", reason)
    certificate.next_surveillance_on = None
    certificate.recertification_opens_on = None
    return True


def renew(change: LifecycleChange, certificate: Certificate, scheme: Scheme, reason: str) -> None:
    """A new certification cycle: valid for the scheme's validity period from the old expiry
    date (or from today, when it has lapsed meanwhile); surveillance starts over."""
    today = change.now.date()
    start = certificate.expires_on if certificate.expires_on > today else today
    previous_expiry = certificate.expires_on
    certificate.expires_on = add_months(start, scheme.validity_months)
    certificate.renewed_count = (certificate.renewed_count or 0) + 1
    to_status = "active" if certificate.status == "expired" else certificate.status
    _apply(
        change,
        certificate,
        "renewed",
        reason,
        to_status=to_status,
        details={
            "previous_expires_on": previous_expiry.isoformat(),
            "expires_on": certificate.expires_on.isoformat(),
        },
    )
    schedule(certificate, scheme, after=start)


def record_surveillance(change: LifecycleChange, certificate: Certificate, reason: str) -> None:
    certificate.last_surveillance_on = change.now.date()
    _apply(change, certificate, "surveillance_passed", reason)


def _apply(
    change: LifecycleChange,
    certificate: Certificate,
    event: str,
    reason: str,
    *,
    to_status: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    allowed_from, leaves, told = TRANSITIONS[event]
    if certificate.status not in allowed_from:
        raise ConflictError(
            f"certificate {certificate.number} is {certificate.status}; "
            f"it cannot be {event.replace('_', ' ')} (only when {' or '.join(allowed_from)})"
        )
    before = certificate.status
    certificate.status = to_status or leaves or certificate.status
    reason = (reason or "").strip() or event.replace("_", " ")
    change.session.add(
        CertificateStatusChange(
            certificate_id=certificate.id,
            event=event,
            from_status=before,
            to_status=certificate.status,
            reason=reason,
            details=details,
            changed_at=change.now,
            changed_by_id=change.actor_id,
            case_id=change.case_id,
        )
    )
    change.audit.record(
        change.now,
        change.actor,
        f"certificate_{event}",
        f"certificate {certificate.number} {told.removeprefix('has been ').removeprefix('has ')}: {reason}",
        case_id=change.case_id,
        before={"status": before},
        after={**certificate_summary(certificate), **(details or {}), "reason": reason},
    )
    person = change.session.get(Person, certificate.person_id)
    if person is not None:
        notify_person(
            change.session,
            change.now,
            person,
            f"certificate_{event}",
            f"Your certificate {certificate.number} {told}",
            f"Dear {person.full_name},\n\nyour certificate {certificate.number} "
            f"({certificate.scheme_code}) {told}.\nReason: {reason}\n"
            f"Status: {certificate.status}; valid until {certificate.expires_on:%d %b %Y}.\n",
            case_id=change.case_id,
            certificate_id=certificate.id,
        )


def _original_scope(change: LifecycleChange, certificate: Certificate) -> str:
    scheme = change.session.get(Scheme, certificate.scheme_id)
    return scheme.scope if scheme is not None else certificate.scope
