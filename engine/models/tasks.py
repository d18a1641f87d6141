"""Human tasks and timers: query tables materialised from the workflow state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

TASK_STATUSES = ("ready", "completed", "cancelled")


class HumanTask(Base):
    """A READY user task, kept in step with the case state in the same transaction."""

    __tablename__ = "human_tasks"
    __table_args__ = (
        Index("ix_human_tasks_status_role_due", "status", "role", "due_at"),
        Index("ix_human_tasks_assignee_status", "assignee_id", "status"),
        Index("ix_human_tasks_completed_by", "completed_by_id", "completed_at"),
        Index("ix_human_tasks_case_status", "case_id", "status"),
        # Who may see a case (`engine.case_views.CaseVisibility.ways`): the cases with a task
        # of a role, assigned to or done by a user, each read newest case first.
        Index("ix_human_tasks_role_case", "role", "case_id"),
        Index("ix_human_tasks_assignee_case", "assignee_id", "case_id"),
        Index("ix_human_tasks_completed_by_case", "completed_by_id", "case_id"),
        # The inbox's "available" tab, counted on every inbox page: open steps of a role that
        # nobody holds, by due date (without it PostgreSQL intersects the bitmap of every
        # unassigned task ever, 1.2M entries at 1M cases).
        Index(
            "ix_human_tasks_claimable",
            "role",
            "due_at",
            postgresql_where=text("status = 'ready' AND assignee_id IS NULL"),
            sqlite_where=text("status = 'ready' AND assignee_id IS NULL"),
        ),
        # The dashboard's scans: open steps by due date, and steps completed late (the
        # weekly chart), answered from the index alone on PostgreSQL.
        Index(
            "ix_human_tasks_open_due",
            "due_at",
            postgresql_include=[
                "case_process_id",
                "task_spec_id",
                "scheme_id",
                "assignee_id",
                "case_id",
                "name",
            ],
            postgresql_where=text("status = 'ready'"),
            sqlite_where=text("status = 'ready'"),
        ),
        Index(
            "ix_human_tasks_late_due",
            "due_at",
            postgresql_include=["case_process_id", "task_spec_id", "scheme_id", "assignee_id"],
            postgresql_where=text("status = 'completed' AND completed_at > due_at"),
            sqlite_where=text("status = 'completed' AND completed_at > due_at"),
        ),
        # What the service-level jobs look for: open tasks whose moment has not been acted on.
        Index(
            "ix_human_tasks_reminder_pending",
            "remind_at",
            postgresql_where=text("status = 'ready' AND reminded_at IS NULL"),
            sqlite_where=text("status = 'ready' AND reminded_at IS NULL"),
        ),
        Index(
            "ix_human_tasks_overdue_pending",
            "due_at",
            postgresql_where=text("status = 'ready' AND overdue_at IS NULL"),
            sqlite_where=text("status = 'ready' AND overdue_at IS NULL"),
        ),
        Index(
            "ix_human_tasks_escalation_pending",
            "escalate_at",
            postgresql_where=text("status = 'ready' AND escalated_at IS NULL"),
            sqlite_where=text("status = 'ready' AND escalated_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    task_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    task_spec_id: Mapped[str] = mapped_column(String(200))
    process_id: Mapped[str] = mapped_column(String(100))
    # The case's process and scheme, copied when the task becomes ready (they never change)
    # so that the dashboard counts and filters open steps without joining their cases.
    case_process_id: Mapped[str | None] = mapped_column(String(100))
    scheme_id: Mapped[int | None] = mapped_column(ForeignKey("schemes.id"))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    form: Mapped[str | None] = mapped_column(String(100))
    instructions: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="ready")
    priority: Mapped[int] = mapped_column(default=0)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Usernames allowed to take the task; None means anyone holding `role`.
    candidates: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[datetime | None]
    submitted_data: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Impartiality declarations copied from the model when the task became ready.
    sod_rules: Mapped[str | None] = mapped_column(String(200))
    excluded_performers_of: Mapped[str | None] = mapped_column(String(500))
    # Set when auto-assignment found nobody eligible ("no eligible assignee").
    assignment_flag: Mapped[str | None] = mapped_column(String(200))
    # Service levels, fixed when the task becomes ready: a reminder before due_at, an
    # escalation after it; and when the jobs acted on each (at most once).
    remind_at: Mapped[datetime | None]
    escalate_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    overdue_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]


class Timer(Base):
    """A waiting BPMN timer event and when it is due."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_status_fire_at", "status", "fire_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    task_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    task_spec_id: Mapped[str] = mapped_column(String(200))
    fire_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    fired_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
