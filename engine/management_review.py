"""The annual management review (ISO/IEC 17024 10.2.5) starts by itself.

`open_due_management_review` is a scheduler job: when twelve months have passed since the
last management review case started (or there never was one), it opens one. The check and
the start happen in one transaction that holds the job's lock: on SQLite every writer takes
the database lock (`BEGIN IMMEDIATE`); on PostgreSQL the transaction takes an advisory lock
and a worker that finds it held leaves the job to the holder (as `SKIP LOCKED` does for the
other jobs). So however many workers run, one review opens per year. Advisory locks belong
to the whole database, so the lock is keyed by the schema in use too: deployments in other
schemas of the same database run their own job.
"""

from __future__ import annotations

import logging
from datetime import datetime, time
from typing import TYPE_CHECKING

from sqlalchemy import exists, func, select

from . import cases
from .certificates import add_months
from .incidents import record_incident
from .models import Case, Incident
from .quality_inputs import REVIEW_INTERVAL_MONTHS, REVIEW_PROCESS
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from . import Engine

log = logging.getLogger(__name__)

JOB = "open_due_management_review"
# The PostgreSQL advisory lock key of the job (any fixed number no other code uses), paired
# with a hash of the schema name.
LOCK_KEY = 17024_1025


def take_job_lock(session) -> bool:
    """Take the job's lock for this transaction (PostgreSQL); False when another holds it."""
    key = select(func.pg_try_advisory_xact_lock(LOCK_KEY, func.hashtext(func.current_schema())))
    return bool(session.scalar(key))


def next_review_due(last_started: datetime | None, now: datetime) -> datetime:
    """When the next review is due: twelve months after the last one started (now if none)."""
    if last_started is None:
        return now
    due_on = add_months(last_started.date(), REVIEW_INTERVAL_MONTHS)
    return datetime.combine(due_on, time.min)


def open_due_management_review(engine: Engine) -> int:
    """Open the management review case when one is due; 1 if it did (or recorded why it
    could not), else 0."""
    with engine.unit_of_work() as uow:
        due, last = _claim_due_review(engine, uow)
        if not due:
            return 0
        try:
            case, _run = cases.start_case(engine, uow, REVIEW_PROCESS, None, None, None)
            uow.audit.record(
                uow.now,
                "scheduler",
                "management_review_opened",
                f"annual management review opened in case {case.id}",
                case_id=case.id,
                after={"previous_review_started_at": last.isoformat() if last else None},
            )
        except Exception as exc:  # noqa: BLE001 - recorded as an incident staff can retry
            log.exception("%s failed", JOB)
            uow.restart()  # this also gave up the job's lock: take it again
            if not _claim_due_review(engine, uow)[0]:
                return 0  # another worker opened the review or recorded a failure meanwhile
            record_incident(uow, JOB, exc)
    return 1


def _claim_due_review(engine: Engine, uow: UnitOfWork) -> tuple[bool, datetime | None]:
    """Take the job's lock and see whether this worker is to open a review: one is due and
    no failure of the job is open. Returns that, and when the last review started."""
    if engine.db.dialect.name == "postgresql" and not take_job_lock(uow.session):
        return False, None
    last = uow.session.scalar(
        select(func.max(Case.started_at)).where(Case.process_id == REVIEW_PROCESS)
    )
    if next_review_due(last, uow.now) > uow.now:
        return False, last
    failing = exists().where(Incident.job == JOB, Incident.status == "open")
    return not uow.session.scalar(select(failing)), last
