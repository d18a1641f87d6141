"""Versions of BPMN process models: the controlled documents the engine executes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

MODEL_STATUSES = ("draft", "in_review", "approved", "published", "retired")


class ModelVersion(Base):
    """One version of one process (one BPMN file).

    `spec_json` holds the parsed, serialized SpiffWorkflow spec so that a worker can restore
    it without re-parsing; `checksum` (SHA-256 of the BPMN source) identifies the document.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("process_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    bpmn_xml: Mapped[str] = mapped_column(Text)
    spec_json: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    change_summary: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
