"""Certificate numbering and issue.

Numbers look like `CWI-2026-000042`: scheme code, year of issue, serial per scheme and year.
The serial row is locked while a number is drawn, and the number column is unique, so two
decisions granted at the same moment can never share a number.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .audit import AuditLog
from .errors import NotFoundError
from .models import Case, Certificate, CertificateSequence, CertificateStatusChange, Person, Scheme
from .notifications import notify_person
from .people import may_see_person
from .row_writes import insert_new


def add_months(start: date, months: int) -> date:
    month_index = start.month - 1 + months
    year = start.year + month_index // 12
    month = month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def next_certificate_number(session: Session, scheme_code: str, year: int) -> str:
    """Draw the next serial of the scheme's year in one statement: the year's counter is
    created at 2 (serial 1 drawn) or moved on by one, its row locked until the commit, so
    a concurrent grant waits for it and then draws the serial after."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    statement = _DRAW_SERIAL_POSTGRESQL if postgresql else _DRAW_SERIAL_SQLITE
    after = session.execute(statement, {"scheme_code": scheme_code, "year": year}).scalar_one()
    return f"{scheme_code}-{year}-{after - 1:06d}"


def _draw_serial(insert):
    table = CertificateSequence.__table__
    statement = insert(table).values(
        scheme_code=bindparam("scheme_code"), year=bindparam("year"), next_serial=2
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.scheme_code, table.c.year],
        set_={"next_serial": table.c.next_serial + 1},
    ).returning(table.c.next_serial)


_DRAW_SERIAL_POSTGRESQL = _draw_serial(postgresql_insert)
_DRAW_SERIAL_SQLITE = _draw_serial(sqlite_insert)


def issue_certificate(
    session: Session,
    audit: AuditLog,
    case: Case,
    person: Person,
    scheme: Scheme,
    now: datetime,
    actor: str,
) -> Certificate:
    """Grant: a new active certificate valid for the scheme's validity period."""
    effective = now.date()
    certificate = Certificate(
        number=next_certificate_number(session, scheme.code, effective.year),
        person_id=person.id,
        scheme_id=scheme.id,
        scheme_code=scheme.code,
        scheme_version=scheme.version,
        scope=scheme.scope,
        case_id=case.id,
        issued_at=now,
        effective_on=effective,
        expires_on=add_months(effective, scheme.validity_months),
        status="active",
    )
    from .certificate_lifecycle import schedule

    schedule(certificate, scheme, after=effective)
    insert_new(session, [certificate])
    session.add(
        CertificateStatusChange(
            certificate_id=certificate.id,
            event="issued",
            from_status=None,
            to_status="active",
            reason="certification granted",
            changed_at=now,
            case_id=case.id,
        )
    )
    audit.record(
        now,
        actor,
        "certificate_issued",
        f"certificate {certificate.number} issued to {person.full_name} ({scheme.code} v{scheme.version})",
        case_id=case.id,
        after=certificate_summary(certificate),
    )
    notify_person(
        session,
        now,
        person,
        "certificate_issued",
        f"Your certificate {certificate.number} has been issued",
        f"Dear {person.full_name},\n\nyou are certified: {scheme.name} "
        f"({scheme.code} v{scheme.version}), certificate {certificate.number}, valid from "
        f"{certificate.effective_on:%d %b %Y} until {certificate.expires_on:%d %b %Y}.\n",
        case_id=case.id,
        certificate_id=certificate.id,
    )
    return certificate


def certificate_summary(certificate: Certificate) -> dict[str, str]:
    return {
        "number": certificate.number,
        "scope": certificate.scope,
        "scheme": certificate.scheme_code,
        "scheme_version": certificate.scheme_version,
        "status": certificate.status,
        "effective_on": certificate.effective_on.isoformat(),
        "expires_on": certificate.expires_on.isoformat(),
    }


def public_record(session: Session, number: str) -> dict[str, str] | None:
    """What anyone may learn about a certificate by its number (ISO/IEC 17024 7.2):
    holder name, scheme, scope, status and dates; nothing else about the person."""
    certificate = session.scalars(
        select(Certificate).where(Certificate.number == number.strip().upper())
    ).first()
    if certificate is None:
        return None
    person = session.get(Person, certificate.person_id)
    scheme = session.get(Scheme, certificate.scheme_id)
    return {
        "number": certificate.number,
        "holder": person.full_name if person else "",
        "scheme": f"{scheme.name} ({certificate.scheme_code} v{certificate.scheme_version})"
        if scheme
        else certificate.scheme_code,
        "scope": certificate.scope,
        "status": certificate.status,
        "issued_on": certificate.issued_at.date().isoformat(),
        "effective_on": certificate.effective_on.isoformat(),
        "expires_on": certificate.expires_on.isoformat(),
    }


def certificate_for_viewer(session: Session, user, number: str, lock: bool = False) -> Certificate:
    """The certificate in full (its history, the reasons for a suspension or withdrawal) for
    those who may see its holder (`people.may_see_person`: the holder, oversight roles and
    staff on one of the holder's cases); anyone else is told it does not exist, as for a
    person record. What anyone may learn is `public_record`. `lock` holds the row until the
    transaction ends, for a change that depends on its status."""
    query = select(Certificate).where(Certificate.number == number.strip().upper())
    certificate = session.scalars(query.with_for_update() if lock else query).first()
    if certificate is None or not may_see_person(session, user, certificate.person_id):
        raise NotFoundError(f"certificate {number} does not exist or is not yours to see")
    return certificate
