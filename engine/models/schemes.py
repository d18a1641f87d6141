"""Certification schemes: versioned programme data, not code."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from ..errors import ValidationError
from .base import Base

# Months records are kept beyond one certification cycle unless the scheme says otherwise.
RETENTION_MONTHS_BEYOND_VALIDITY = 12


def default_retention_months(validity_months: int) -> int:
    return validity_months + RETENTION_MONTHS_BEYOND_VALIDITY


def _default_retention(context) -> int:
    return default_retention_months(int(context.get_current_parameters()["validity_months"]))


class Scheme(Base):
    __tablename__ = "schemes"
    __table_args__ = (UniqueConstraint("code", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(Text)
    prerequisites: Mapped[list[Any]] = mapped_column(default=list)
    has_practical: Mapped[bool] = mapped_column(default=False)
    pass_mark: Mapped[int] = mapped_column(default=70)
    validity_months: Mapped[int]
    surveillance_months: Mapped[int] = mapped_column(default=12)
    # Days the certified person has to make a surveillance declaration once it is asked for.
    declaration_days: Mapped[int] = mapped_column(default=30, server_default="30")
    # Days before expiry at which the recertification case opens.
    recertification_window_days: Mapped[int] = mapped_column(default=90, server_default="90")
    # Days a suspended holder has to remedy the cause before the certificate is withdrawn.
    remedy_days: Mapped[int] = mapped_column(default=60, server_default="60")
    recertification: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(default=True)
    # How long an ended case's records are kept (at least one certification cycle).
    retention_months: Mapped[int] = mapped_column(default=_default_retention)

    def as_case_data(self) -> dict[str, Any]:
        """What a process sees of its scheme (`scheme[...]` in conditions and scripts)."""
        return {
            "code": self.code,
            "version": self.version,
            "name": self.name,
            "scope": self.scope,
            "has_practical": self.has_practical,
            "pass_mark": self.pass_mark,
            "validity_months": self.validity_months,
            "surveillance_months": self.surveillance_months,
            "declaration_days": self.declaration_days,
            "recertification_window_days": self.recertification_window_days,
            "remedy_days": self.remedy_days,
        }


def check_retention_period(validity_months: int | None, retention_months: int | None) -> None:
    """A scheme keeps its records for at least one full certification cycle."""
    if retention_months is None or validity_months is None:
        return
    if retention_months < validity_months:
        raise ValidationError(
            f"the retention period ({retention_months} months) is shorter than one "
            f"certification cycle ({validity_months} months)",
            {"retention_months": [f"must be at least {validity_months} months"]},
        )


@event.listens_for(Scheme, "before_insert")
@event.listens_for(Scheme, "before_update")
def _retention_covers_a_cycle(_mapper, _connection, scheme: Scheme) -> None:
    check_retention_period(scheme.validity_months, scheme.retention_months)
