"""The impartiality report for a period: every blocked check, every conflict declaration and
every task for which auto-assignment found nobody — what an assessor asks to see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import AuditEvent

REPORTED_ACTIONS = {
    "sod_check_failed": "impartiality check blocked",
    "conflict_declared": "conflict of interest declared",
    "conflict_ended": "conflict of interest ended",
    "no_eligible_assignee": "no eligible assignee",
    "assignment_refused": "named assignee refused",
    "commitment_signed": "commitment signed",
}


@dataclass
class ReportLine:
    at: datetime
    kind: str
    actor: str
    case_id: int | None
    task_id: int | None
    rules: list[str]
    detail: str

    def as_row(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "kind": self.kind,
            "actor": self.actor,
            "case_id": self.case_id or "",
            "task_id": self.task_id or "",
            "rules": " ".join(self.rules),
            "detail": self.detail,
        }


def impartiality_report(session: Session, start: datetime, end: datetime) -> list[ReportLine]:
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action.in_(REPORTED_ACTIONS), AuditEvent.at >= start, AuditEvent.at < end)
        .order_by(AuditEvent.seq)
    )
    lines = []
    for event in events:
        after = event.after or {}
        rules = [r.get("rule", "") for r in after.get("rules", []) if isinstance(r, dict)]
        rules += [r for r in after.get("rules", []) if isinstance(r, str)]
        if event.action == "no_eligible_assignee":
            rules = sorted({rule for barred in after.get("barred", {}).values() for rule in barred})
        lines.append(
            ReportLine(
                event.at,
                REPORTED_ACTIONS[event.action],
                event.actor,
                event.case_id,
                event.task_id,
                rules,
                event.message,
            )
        )
    return lines
