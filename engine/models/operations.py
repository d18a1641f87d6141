"""What the background jobs leave behind (incidents to look at, the outbox of messages), and
the request counters that every web process shares."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

INCIDENT_STATUSES = ("open", "resolved")
NOTIFICATION_STATUSES = ("queued", "sent", "logged", "failed")


class Incident(Base):
    """A job failed on one case or certificate. While open, the job leaves that item alone;
    staff retry it (which resolves the incident) once the cause is fixed."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status_job", "status", "job"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(50))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"), index=True)
    timer_id: Mapped[int | None] = mapped_column(ForeignKey("timers.id"))
    message: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="open")
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Notification(Base):
    """An e-mail written in the transaction of the change it reports (an outbox): the sender
    job delivers it by SMTP, or only logs it when no SMTP host is configured."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"))
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    # A failed delivery is tried again from this moment on (backing off), until it gives up.
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class RateLimitWindow(Base):
    """Requests counted per client in the current fixed window, shared by every web process
    (an in-memory count would let each process allow its own share)."""

    __tablename__ = "rate_limit_windows"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(index=True)
    hits: Mapped[int]
