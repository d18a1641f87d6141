"""The audit trail: append-only, hash-chained events, and `verify`.

Each event's hash covers the previous event's hash and the event's own content, so editing,
deleting or reordering any stored event breaks the chain from that point on. Appends are
ordered by the single `audit_chain_head` row, locked for the rest of the transaction, so
concurrent writers cannot fork the chain.

On PostgreSQL a process chains its events onto the head it last moved itself and sends them
in the statement that locks the head, which moves the head only if it is still the expected
one (one round trip instead of two). When another writer moved it meanwhile, that statement
has locked it all the same and returned it, and the events are chained again onto it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Engine,
    Integer,
    Select,
    String,
    TextClause,
    bindparam,
    column,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.orm import Session

from .models import AuditChainHead, AuditEvent
from .row_writes import execute_with_deferred

GENESIS_HASH = "0" * 64


def event_hash(prev_hash: str, content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


CONTENT_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "case_id",
    "task_id",
    "before",
    "after",
    "message",
)


EVENT_COLUMNS = (*CONTENT_FIELDS, "prev_hash", "hash")


def _content(event: AuditEvent) -> dict[str, Any]:
    return _row_content({name: getattr(event, name) for name in CONTENT_FIELDS})


def _row_content(row: dict[str, Any]) -> dict[str, Any]:
    content = {name: row[name] for name in CONTENT_FIELDS}
    content["at"] = row["at"].isoformat(timespec="microseconds")
    return content


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
        self._moved_head: tuple[Engine, int, str] | None = None

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

    def flush(self, session: Session) -> int:
        """Chain the pending events in after the head and move the head past them: on
        PostgreSQL one statement when the head is where this process last left it, else the
        head row is locked, then one statement writes the events and the new head (two on
        SQLite, whose single writer holds the database anyway). Returns how many were
        written."""
        if not self.pending:
            return 0
        bind = session.get_bind()
        expected = _LAST_HEADS.get(bind) if len(self.pending) <= EVENTS_PER_STATEMENT else None
        current = None
        if expected is not None:
            session.flush()
            rows = self._chained(*expected)
            current = _append_on_expected_head(session, rows, expected)
            if current is not None and current != expected:
                rows = self._chained(*current)
                _append_events(session, rows)
        if current is None:  # no head known here, or none in the database (it is created)
            rows = self._chained(*_lock_chain_head(session))
            _append_events(session, rows)
        self.pending.clear()
        if bind.dialect.name == "postgresql":
            self._moved_head = (bind, rows[-1]["seq"], rows[-1]["hash"])
        return len(rows)

    def committed(self) -> None:
        """The transaction that wrote the events committed: its head is the one to expect."""
        if self._moved_head is not None:
            bind, seq, hash_ = self._moved_head
            _LAST_HEADS[bind] = (seq, hash_)
            self._moved_head = None

    def _chained(self, last_seq: int, last_hash: str) -> list[dict[str, Any]]:
        rows = []
        for pending in self.pending:
            last_seq += 1
            row = {
                "seq": last_seq,
                "at": pending.at,
                "actor": pending.actor,
                "action": pending.action,
                "case_id": pending.case_id,
                "task_id": pending.task_id,
                "before": pending.before,
                "after": pending.after,
                "message": pending.message,
                "prev_hash": last_hash,
            }
            row["hash"] = last_hash = event_hash(last_hash, _row_content(row))
            rows.append(row)
        return rows


# The head each PostgreSQL database (engine) had after this process's last committed append.
# Only a guess: the append checks it in the database, so a stale one costs a statement.
_LAST_HEADS: weakref.WeakKeyDictionary[Engine, tuple[int, str]] = weakref.WeakKeyDictionary()


def _append_on_expected_head(
    session: Session, rows: list[dict[str, Any]], expected: tuple[int, str]
) -> tuple[int, str] | None:
    """Lock the head and, if it is still `expected`, write `rows` and move the head past
    them, in one statement carrying the deferred writes. Returns the head found: `expected`
    when the rows were written, else the head another writer left (locked now), or None
    when the database has no head row."""
    params = {
        "events": _events_json(rows),
        "expected_seq": expected[0],
        "expected_hash": expected[1],
        "head_seq": rows[-1]["seq"],
        "head_hash": rows[-1]["hash"],
    }
    found = execute_with_deferred(session.connection(), _APPEND_ON_EXPECTED_HEAD, params)
    if found.appended:
        return expected
    if found.last_seq is None:
        return None
    return found.last_seq, found.last_hash


def _events_json(rows: list[dict[str, Any]]) -> str:
    """The events as one JSON array, the form PostgreSQL's statements take them in: one
    parameter, so the statement's text is the same for any number of events."""
    return json.dumps([{**row, "at": row["at"].isoformat()} for row in rows])


# PostgreSQL: the events of the `events` parameter, as rows of the table.
_EVENT_ROWS = (
    f"INSERT INTO audit_events ({', '.join(EVENT_COLUMNS)}) "
    f"SELECT {', '.join(EVENT_COLUMNS)} "
    f"FROM json_populate_recordset(CAST(NULL AS audit_events), CAST(:events AS JSON))"
)


def _append_on_expected_head_statement() -> Select:
    """The statement of `_append_on_expected_head`. It locks the head and returns it as
    found, and whether it was the expected one: only then is the head moved and are the
    events inserted. The decision rests on the head found, not on where the head ends up:
    another writer may have chained the very same events onto the expected head, and left
    it exactly where these would."""
    found = (
        text("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
        .columns(column("last_seq", Integer), column("last_hash", String))
        .cte("found_head")
    )
    moved = (
        text(
            f"{_MOVE_HEAD} AND (SELECT last_seq = :expected_seq AND last_hash = :expected_hash "
            f"FROM found_head) RETURNING 1"
        )
        .columns()
        .cte("moved_head")
    )
    written = (
        text(f"{_EVENT_ROWS} WHERE EXISTS (SELECT 1 FROM moved_head)")
        .columns()
        .cte("written_events")
    )
    return select(
        select(found.c.last_seq).scalar_subquery().label("last_seq"),
        select(found.c.last_hash).scalar_subquery().label("last_hash"),
        literal_column("EXISTS (SELECT 1 FROM moved_head)", Boolean).label("appended"),
    ).add_cte(found, moved, written)


def _lock_chain_head(session: Session) -> tuple[int, str]:
    """The chain's last sequence number and hash, the head row locked (created if missing).

    The unit of work's pending changes are written first, as the commit would; the head is
    then read as a plain row, not through the ORM, in the same statement as the deferred
    updates of the case and its task (on PostgreSQL)."""
    session.flush()
    head = execute_with_deferred(session.connection(), _LOCKED_HEAD)
    if head is None:
        session.execute(insert(AuditChainHead).values(id=1, last_seq=0, last_hash=GENESIS_HASH))
        return 0, GENESIS_HASH
    return head.last_seq, head.last_hash


_LOCKED_HEAD = (
    select(AuditChainHead.last_seq, AuditChainHead.last_hash)
    .where(AuditChainHead.id == 1)
    .with_for_update()
)


def _append_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write the events, at most EVENTS_PER_STATEMENT a statement (SQLite caps the
    parameters of one), each statement moving the head to its last event."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(rows), EVENTS_PER_STATEMENT):
        batch = rows[start : start + EVENTS_PER_STATEMENT]
        head = {"head_seq": batch[-1]["seq"], "head_hash": batch[-1]["hash"]}
        if postgresql:
            session.execute(_APPEND_POSTGRESQL, {"events": _events_json(batch), **head})
            continue
        params = {
            f"{name}_{n}": value for n, row in enumerate(batch) for name, value in row.items()
        }
        for statement in _append_statements_sqlite(len(batch)):
            session.execute(statement, {**params, **head})


EVENTS_PER_STATEMENT = 500
_MOVE_HEAD = "UPDATE audit_chain_head SET last_seq = :head_seq, last_hash = :head_hash WHERE id = 1"
# One statement: a data-modifying WITH.
_APPEND_POSTGRESQL = text(f"WITH moved_head AS ({_MOVE_HEAD}) {_EVENT_ROWS}")
_APPEND_ON_EXPECTED_HEAD = _append_on_expected_head_statement()


@functools.lru_cache(maxsize=64)
def _append_statements_sqlite(count: int) -> tuple[TextClause, ...]:
    """The two statements writing `count` events and moving the head on SQLite. Written as
    text, built once per count, so that SQLAlchemy compiles each once (it does not cache a
    multi-row VALUES construct)."""
    rows = ", ".join(
        "(" + ", ".join(f":{name}_{n}" for name in EVENT_COLUMNS) + ")" for n in range(count)
    )
    write_events = f"INSERT INTO audit_events ({', '.join(EVENT_COLUMNS)}) VALUES {rows}"
    return text(_MOVE_HEAD), text(write_events).bindparams(*_typed_event_params(count))


def _typed_event_params(count: int) -> list:
    """The event parameters whose Python values need their column type's processing."""
    table = AuditEvent.__table__
    return [
        bindparam(f"{name}_{n}", type_=table.c[name].type)
        for n in range(count)
        for name in TYPED_EVENT_COLUMNS
    ]


TYPED_EVENT_COLUMNS = ("at", "before", "after")


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
