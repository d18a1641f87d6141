"""The impartiality register: conflict-of-interest declarations, signed commitments, and the
bars an open task carries against named staff."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

RELATIONSHIPS = ("trained", "employer", "colleague", "relative", "other")


class ConflictOfInterest(Base):
    """A staff member's relationship to a person. Never deleted: ended instead."""

    __tablename__ = "conflicts_of_interest"
    __table_args__ = (Index("ix_coi_staff_person", "staff_user_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    relationship: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[date]
    valid_until: Mapped[date | None]
    note: Mapped[str] = mapped_column(Text, default="")
    declared_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    declared_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Commitment(Base):
    """A signed confidentiality and impartiality commitment (clause 6.1)."""

    __tablename__ = "commitments"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    text_version: Mapped[str] = mapped_column(String(20))
    signed_on: Mapped[date]
    expires_on: Mapped[date]
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime]


class TaskBar(Base):
    """A staff member barred from an open task, with the rule and the facts behind it.

    Written when the task becomes ready (from facts that cannot change afterwards: who did
    earlier steps of the case and its linked cases), so lists can exclude barred users in SQL.
    """

    __tablename__ = "task_bars"
    __table_args__ = (Index("ix_task_bars_task_user", "task_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_tasks.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    rule: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
