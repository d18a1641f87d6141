"""Firing due BPMN timers: the job the scheduler (or a `certrail worker`) runs every few seconds.

Each due timer is handled in its own unit of work. On PostgreSQL the timer's *case* row is
claimed with `FOR UPDATE OF cases SKIP LOCKED`, so several workers never work on the same case
at once and a worker never waits behind another one (SQLite has a single writer). Locking the
case first is the order every other writer uses (a user completing a task locks the case, then
updates its timers), so workers and users cannot deadlock. Under the lock the timer row is read
again: if another worker, or the case's own progress, has fired or cancelled it meanwhile, it is
left alone. So every timer fires exactly once, however many workers run.

The case is advanced and the timer row updated in the same transaction; a worker that dies
half-way loses nothing (the transaction rolls back and the timer is still due). A failure on one
case is recorded on that timer (status 'failed', `last_error`) and as an incident staff can retry
(engine/incidents.py); the job goes on with the others.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from . import cases
from .errors import ConflictError
from .incidents import record_incident
from .models import Case, Timer

if TYPE_CHECKING:
    from . import Engine

log = logging.getLogger(__name__)


class TimerStuck(RuntimeError):
    """The workflow did not fire a timer its row says is due: the two disagree."""


def fire_due_timers(engine: Engine, limit: int = 100) -> int:
    """Advance the cases whose timers are due; returns how many timers this call fired (or
    marked failed). Stops early when no due timer is left that no other worker holds."""
    processed = 0
    for _ in range(limit):
        try:
            outcome = _fire_one(engine)
        except ConflictError as exc:
            # Someone changed the case at the same moment; the timer is still due if it was
            # not fired by them, and the next pass takes it.
            log.warning("timer skipped: %s", exc)
            continue
        if outcome is None:
            return processed
        processed += outcome
    return processed


def _fire_one(engine: Engine) -> int | None:
    """Fire one due timer: None when there is none to take, 1 when one was fired or marked
    failed, 0 when the claimed timer turned out to be already handled."""
    with engine.unit_of_work() as uow:
        query = (
            select(Timer)
            .join(Case, Case.id == Timer.case_id)
            # Strictly after: SpiffWorkflow fires a timer once its moment has passed.
            .where(Timer.status == "waiting", Timer.fire_at < uow.now)
            .order_by(Timer.fire_at, Timer.id)
            .limit(1)
        )
        if engine.db.dialect.name == "postgresql":
            query = query.with_for_update(of=Case, skip_locked=True)
        timer = uow.session.scalars(query).first()
        if timer is None:
            return None
        timer_id, case_id, spec_id = timer.id, timer.case_id, timer.task_spec_id
        case = cases.lock_case(uow, case_id)
        # Read the timer again under the case lock: whoever held the case before may have
        # fired or cancelled it (and committed) after our claiming query took its snapshot.
        timer = uow.session.get(Timer, timer_id, populate_existing=True)
        if timer is None or timer.status != "waiting" or timer.fire_at >= uow.now:
            log.debug("timer %s of case %s was already handled", timer_id, case_id)
            return 0
        try:
            run = cases.load_run(engine, uow, case, "scheduler")
            run.advance()
            run.persist()
            uow.session.flush()
            if timer.status == "waiting" and timer.fire_at < uow.now:
                raise TimerStuck(f"timer {spec_id} was due at {timer.fire_at} but did not fire")
        except Exception as exc:  # noqa: BLE001 - one broken case must not stop the others
            log.exception("timer %s (%s) of case %s failed", timer_id, spec_id, case_id)
            uow.restart()  # this also gave up the case lock: take it again
            cases.lock_case(uow, case_id)
            failed = uow.session.get(Timer, timer_id, populate_existing=True)
            if failed is None or failed.status != "waiting":
                return 0
            failed.status = "failed"
            failed.last_error = f"{type(exc).__name__}: {exc}"
            record_incident(uow, "fire_due_timers", exc, case_id=case_id, timer_id=timer_id)
            return 1
    log.info("fired timer %s (%s) of case %s as of %s", timer_id, spec_id, case_id, uow.now)
    return 1
