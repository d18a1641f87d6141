"""Records of the management system about people's records: feedback invitations and
responses (the feedback loop), and proposals to dispose of records past their retention."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

FEEDBACK_KINDS = ("certification", "complaint")
DISPOSAL_STATUSES = ("proposed", "disposed")


class FeedbackInvitation(Base):
    """A single-use feedback link sent after a certification decision or a complaint's
    closure. Only the SHA-256 of its token is stored; the link expires after 60 days."""

    __tablename__ = "feedback_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    scheme_id: Mapped[int | None] = mapped_column(ForeignKey("schemes.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class FeedbackResponse(Base):
    """What one invitee answered (one response per invitation, enforced by the database)."""

    __tablename__ = "feedback_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("feedback_invitations.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    scheme_id: Mapped[int | None] = mapped_column(ForeignKey("schemes.id"), index=True)
    overall_rating: Mapped[int]
    clarity_rating: Mapped[int]
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = mapped_column(index=True)


class RecordDisposal(Base):
    """The disposal of one ended case's personal records: proposed by one user, approved
    (and carried out) by another quality manager or manager."""

    __tablename__ = "record_disposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    reason: Mapped[str] = mapped_column(Text, default="")
    proposed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[datetime]
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    disposed_at: Mapped[datetime | None]
    documents_deleted: Mapped[int] = mapped_column(default=0)
    tasks_tombstoned: Mapped[int] = mapped_column(default=0)
    person_anonymised: Mapped[bool] = mapped_column(default=False)
