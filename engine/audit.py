"""The audit trail: append-only, hash-chained events, and `verify`.

Each event's hash covers the previous event's hash and the event's own content, so editing,
deleting or reordering any stored event breaks the chain from that point on. Appends are
ordered by the single `audit_chain_head` row, locked for the rest of the transaction, so
concurrent writers cannot fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64


def event_hash(prev_hash: str, content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def _content(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "case_id": event.case_id,
        "task_id": event.task_id,
        "before": event.before,
        "after": event.after,
        "message": event.message,
    }


@dataclass
class PendingEvent:
    at: datetime
    actor: str
    action: str
    message: str
    case_id: int | None
    task_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditLog:
    """Collects the events of one unit of work and chains them in at the end.

    Taking the chain lock last keeps it held only for the final statements of a transaction.
    """

    def __init__(self) -> None:
        self.pending: list[PendingEvent] = []

    def record(
        self,
        at: datetime,
        actor: str,
        action: str,
        message: str = "",
        *,
        case_id: int | None = None,
        task_id: int | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        self.pending.append(
            PendingEvent(at, actor, action, message, case_id, task_id, before, after)
        )

    def flush(self, session: Session) -> list[AuditEvent]:
        if not self.pending:
            return []
        head = session.execute(
            select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            head = AuditChainHead(id=1, last_seq=0, last_hash=GENESIS_HASH)
            session.add(head)
        written = []
        for pending in self.pending:
            event = AuditEvent(
                seq=head.last_seq + 1,
                at=pending.at,
                actor=pending.actor,
                action=pending.action,
                case_id=pending.case_id,
                task_id=pending.task_id,
                before=pending.before,
                after=pending.after,
                message=pending.message,
                prev_hash=head.last_hash,
            )
            event.hash = event_hash(event.prev_hash, _content(event))
            head.last_seq, head.last_hash = event.seq, event.hash
            session.add(event)
            written.append(event)
        self.pending.clear()
        return written


@dataclass
class VerifyResult:
    ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify_chain(session: Session, batch_size: int = 5000) -> VerifyResult:
    """Recompute every hash in order; report the first event that does not match."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    last_id = 0
    while True:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.id > last_id)
            .order_by(AuditEvent.id)
            .limit(batch_size)
        ).all()
        if not events:
            break
        for event in events:
            if event.seq != expected_seq:
                return VerifyResult(
                    False,
                    checked,
                    event.seq,
                    f"expected sequence {expected_seq}, found {event.seq} (an event is missing or reordered)",
                )
            if event.prev_hash != prev_hash:
                return VerifyResult(
                    False,
                    checked,
                    event.seq,
                    "its previous-hash does not match the event before it",
                )
            if event_hash(prev_hash, _content(event)) != event.hash:
                return VerifyResult(
                    False,
                    checked,
                    event.seq,
                    "its content does not match its hash (the event was edited)",
                )
            prev_hash = event.hash
            expected_seq += 1
            checked += 1
            last_id = event.id
        session.expunge_all()
    head = session.get(AuditChainHead, 1)
    if head is not None and (head.last_seq != checked or head.last_hash != prev_hash):
        return VerifyResult(
            False,
            checked,
            head.last_seq,
            "the chain head does not match the last event (events were deleted from the end)",
        )
    return VerifyResult(True, checked)
