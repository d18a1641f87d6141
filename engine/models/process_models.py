"""Versions of BPMN process models: the controlled documents the engine executes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

MODEL_STATUSES = ("draft", "in_review", "approved", "published", "retired")
# Versions not yet published or retired: the ones still moving through review.
OPEN_STATUSES = ("draft", "in_review", "approved")


class ModelVersion(Base):
    """One version of one process (one BPMN file), with its document-control record.

    `spec_json` holds the parsed, serialized SpiffWorkflow spec so that a worker can restore
    it without re-parsing ("" for a draft that does not parse); `checksum` (SHA-256 of the
    BPMN source) identifies the document. A version is immutable once published: its
    source, spec and forms never change again, only its status.

    Versions synchronised from the shipped `bpmn/` files have no author; versions saved in the
    modeler name their author and everyone who saved them (`contributor_ids`), who may not
    approve them (SOD-4EYES). `forms_json` holds the forms edited with this version
    (name -> JSON Schema); its user tasks look their form up there first, then in `forms/`.
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
    contributor_ids: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    change_summary: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    # Who last reviewed the version (approved it, or returned it to draft) and what they said.
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    review_comment: Mapped[str | None] = mapped_column(Text)
    approved_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    retired_at: Mapped[datetime | None]
    # The periodic review of a published version, and the due date last reminded of.
    review_due_on: Mapped[date | None]
    review_reminded_on: Mapped[date | None]
    forms_json: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")

    @property
    def shipped(self) -> bool:
        """Synchronised from a `bpmn/` file rather than saved in the modeler."""
        return self.author_id is None

    @property
    def contributors(self) -> set[int]:
        """Everyone who wrote this version: its author and whoever saved or submitted it."""
        ids = {int(i) for i in self.contributor_ids or []}
        if self.author_id is not None:
            ids.add(self.author_id)
        return ids
