"""Certificates and the history of their status."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

CERTIFICATE_STATUSES = ("active", "suspended", "withdrawn", "expired", "reduced")
# Statuses in which a certificate is still held (surveillance and recertification go on).
HELD_STATUSES = ("active", "reduced", "suspended")
CERTIFICATE_EVENTS = (
    "issued",
    "suspended",
    "reinstated",
    "withdrawn",
    "scope_reduced",
    "expired",
    "renewed",
    "surveillance_passed",
)


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (
        # Certificates still held, by expiry date (the dashboard's expiring lists).
        Index(
            "ix_certificates_held_expiry",
            "expires_on",
            postgresql_include=["id", "scheme_code"],
            postgresql_where=text("status IN ('active', 'reduced', 'suspended')"),
            sqlite_where=text("status IN ('active', 'reduced', 'suspended')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    scheme_id: Mapped[int] = mapped_column(ForeignKey("schemes.id"))
    scheme_code: Mapped[str] = mapped_column(String(40))
    scheme_version: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    issued_at: Mapped[datetime]
    effective_on: Mapped[date]
    expires_on: Mapped[date] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    # Work the lifecycle jobs start when its date comes; None once started (or not due).
    next_surveillance_on: Mapped[date | None] = mapped_column(index=True)
    recertification_opens_on: Mapped[date | None] = mapped_column(index=True)
    last_surveillance_on: Mapped[date | None]
    renewed_count: Mapped[int] = mapped_column(default=0, server_default="0")


# Case search: certificates by the start of their number, whatever its case.
Index(
    "ix_certificates_number_prefix",
    func.upper(Certificate.number).label("number_upper"),
    postgresql_ops={"number_upper": "text_pattern_ops"},
)


class CertificateStatusChange(Base):
    """One entry of a certificate's history: a status change, a renewal, a passed surveillance."""

    __tablename__ = "certificate_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), index=True)
    event: Mapped[str] = mapped_column(String(30), default="issued", server_default="issued")
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    changed_at: Mapped[datetime]
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))


class CertificateSequence(Base):
    """Next serial number per scheme and year; row-locked while a number is drawn."""

    __tablename__ = "certificate_sequences"

    scheme_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    next_serial: Mapped[int] = mapped_column(default=1)
