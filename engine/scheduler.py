"""The engine's periodic jobs, and the APScheduler that runs them inside `certrail serve`.

`JOBS` is the one list of jobs: `start_scheduler` runs them in the background of the web
process, `certrail worker` in a blocking loop of its own (engine/worker.py), and
`certrail jobs run-once` once, as of a given time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from .timers import fire_due_timers

if TYPE_CHECKING:
    from . import Engine

# name -> job(engine) returning how many things it did in one pass.
JOBS: dict[str, Callable[[Engine], int]] = {"fire_due_timers": fire_due_timers}


def run_jobs_until_idle(
    engine: Engine, max_passes: int = 1000, stop: Callable[[], bool] = lambda: False
) -> dict[str, int]:
    """Run every job repeatedly until a pass does nothing more (a job works in batches) or
    `stop()` says so; returns how many things each job did in total."""
    done = dict.fromkeys(JOBS, 0)
    for name, job in JOBS.items():
        for _ in range(max_passes):
            if stop():
                break
            count = job(engine)
            done[name] += count
            if count == 0:
                break
    return done


def start_scheduler(engine: Engine, interval_seconds: int = 5) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    for name, job in JOBS.items():
        scheduler.add_job(
            job,
            "interval",
            seconds=interval_seconds,
            args=[engine],
            id=name,
            max_instances=1,
            coalesce=True,
        )
    scheduler.start()
    return scheduler
