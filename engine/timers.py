"""Firing due BPMN timers: the job the scheduler runs every few seconds.

Each due timer is claimed inside its own unit of work (on PostgreSQL with
`FOR UPDATE SKIP LOCKED`, so several workers never take the same row; SQLite has a single
writer), its case is advanced, and the timer row is updated in the same transaction.
A failure on one case is recorded on that timer and the job goes on with the others.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from . import cases
from .models import Timer

if TYPE_CHECKING:
    from . import Engine

log = logging.getLogger(__name__)


def fire_due_timers(engine: Engine, limit: int = 100) -> int:
    """Advance the cases whose timers are due; returns how many timers were processed."""
    processed = 0
    for _ in range(limit):
        with engine.unit_of_work() as uow:
            query = (
                select(Timer)
                .where(Timer.status == "waiting", Timer.fire_at <= uow.now)
                .order_by(Timer.fire_at)
                .limit(1)
            )
            if engine.db.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            timer = uow.session.scalars(query).first()
            if timer is None:
                return processed
            case = cases.lock_case(uow, timer.case_id)
            try:
                run = cases.load_run(engine, uow, case, "scheduler")
                run.advance()
                run.persist()
            except Exception as exc:  # noqa: BLE001 - one broken case must not stop the others
                log.exception("timer %s of case %s failed", timer.id, timer.case_id)
                uow.restart()
                failed = uow.session.get(Timer, timer.id)
                failed.status = "failed"
                failed.last_error = f"{type(exc).__name__}: {exc}"
            processed += 1
    return processed
