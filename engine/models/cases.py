"""Cases: one process instance about one person and scheme, with its serialized state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

CASE_STATUSES = ("running", "completed", "errored", "cancelled")


class Case(Base):
    """The workflow state is stored once per case (one JSON document), never per task.

    `lock_version` is the optimistic lock: two units of work that loaded the same version
    cannot both commit; the loser gets a ConflictError.
    """

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_process", "status", "process_id"),
        Index("ix_cases_person", "person_id"),
        # The cases a user started, newest first (`engine.case_views.CaseVisibility.ways`).
        Index("ix_cases_started_by", "started_by_id", "id"),
        Index(
            "ix_cases_open_recertification",
            "certificate_id",
            postgresql_where=text(
                "process_id = 'recertification' AND status IN ('running', 'errored')"
            ),
            sqlite_where=text(
                "process_id = 'recertification' AND status IN ('running', 'errored')"
            ),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[str] = mapped_column(String(100))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    # {process_id: model_version_id} of the call-activity models pinned when the case started.
    subprocess_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    scheme_id: Mapped[int | None] = mapped_column(ForeignKey("schemes.id"), index=True)
    # The certificate a surveillance, recertification or suspension case is about.
    # (Created after both tables: certificates also point at the case that issued them.)
    certificate_id: Mapped[int | None] = mapped_column(
        ForeignKey("certificates.id", use_alter=True), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="running")
    error_message: Mapped[str | None] = mapped_column(Text)
    error_element: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(Text)
    lock_version: Mapped[int] = mapped_column(default=1)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # A legal hold stops the disposal of the case's records (who placed it, when and why).
    legal_hold: Mapped[bool] = mapped_column(default=False, server_default=false())
    legal_hold_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    legal_hold_at: Mapped[datetime | None]
    legal_hold_reason: Mapped[str | None] = mapped_column(Text)

    __mapper_args__ = {"version_id_col": lock_version}


class CaseLink(Base):
    """A directed link between cases (an appeal points at the decision it appeals)."""

    __tablename__ = "case_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    from_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    to_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
