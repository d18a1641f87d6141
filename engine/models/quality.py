"""Quality records: stored statistical reviews of exam forms (ISO/IEC 17024 9.3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class ItemAnalysis(Base):
    """One item analysis of one exam form, as computed when its responses were uploaded.

    The result is kept as computed (`engine.item_analysis.FormAnalysis.as_dict()`), with the
    thresholds and pass mark it was computed with and the checksums of the files it came
    from, so that a later change of thresholds or code never rewrites a past review.
    """

    __tablename__ = "item_analyses"

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_form: Mapped[str] = mapped_column(String(200))
    scheme_id: Mapped[int | None] = mapped_column(ForeignKey("schemes.id"), index=True)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(index=True)
    thresholds: Mapped[dict[str, Any]]
    pass_mark: Mapped[float | None]
    candidates: Mapped[int]
    item_count: Mapped[int]
    kr20: Mapped[float | None]
    flagged_items: Mapped[int]
    result: Mapped[dict[str, Any]]
    source_checksum: Mapped[str] = mapped_column(String(64))
    key_checksum: Mapped[str | None] = mapped_column(String(64))
