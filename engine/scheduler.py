"""The engine's periodic jobs, and the APScheduler that runs them inside `certrail serve`.

`JOBS` is the one list of jobs: `start_scheduler` runs them in the background of the web
process, `certrail worker` in a blocking loop of its own (engine/worker.py), and
`certrail jobs run-once` once, as of a given time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from .errors import ConflictError
from .lifecycle import expire_certificates, open_due_recertifications, start_due_surveillance
from .management_review import open_due_management_review
from .model_lifecycle import remind_model_reviews
from .notifications import send_notifications
from .service_levels import escalate_overdue_tasks, mark_overdue_tasks, send_task_reminders
from .timers import fire_due_timers

if TYPE_CHECKING:
    from . import Engine

log = logging.getLogger(__name__)

# name -> job(engine) returning how many things it did in one pass; run in this order, so
# that the messages a pass writes go out in the same pass.
JOBS: dict[str, Callable[[Engine], int]] = {
    "fire_due_timers": fire_due_timers,
    "expire_certificates": expire_certificates,
    "start_due_surveillance": start_due_surveillance,
    "open_due_recertifications": open_due_recertifications,
    "open_due_management_review": open_due_management_review,
    "send_task_reminders": send_task_reminders,
    "mark_overdue_tasks": mark_overdue_tasks,
    "escalate_overdue_tasks": escalate_overdue_tasks,
    "remind_model_reviews": remind_model_reviews,
    "send_notifications": send_notifications,
}


def run_jobs_until_idle(
    engine: Engine,
    max_passes: int = 1000,
    stop: Callable[[], bool] = lambda: False,
    jobs: dict[str, Callable[[Engine], int]] = JOBS,
) -> dict[str, int]:
    """Run every job repeatedly until a pass does nothing more (a job works in batches) or
    `stop()` says so; returns how many things each job did in total.

    A pass that lost a race with another writer (ConflictError) rolled back whole, so it is
    simply run again: the next pass sees what the other writer did. The jobs claim their
    items so that this should not happen; when it does, the worker logs it and goes on
    rather than dying."""
    done = dict.fromkeys(jobs, 0)
    for name, job in jobs.items():
        for _ in range(max_passes):
            if stop():
                break
            try:
                count = job(engine)
            except ConflictError as lost:
                log.warning("%s lost a race with another writer (%s); running it again", name, lost)
                continue
            done[name] += count
            if count == 0:
                break
    return done


def start_scheduler(engine: Engine, interval_seconds: int = 5) -> BackgroundScheduler:
    """Run every job, one after the other as a worker does, every `interval_seconds` in a
    background thread (one run at a time: a slow pass delays the next, never overlaps it)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        run_jobs_until_idle,
        "interval",
        seconds=interval_seconds,
        args=[engine],
        id="certrail_jobs",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
