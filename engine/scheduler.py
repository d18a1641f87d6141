"""The APScheduler that runs the engine's periodic jobs (in `certrail serve` or a worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from .timers import fire_due_timers

if TYPE_CHECKING:
    from . import Engine


def start_scheduler(engine: Engine, interval_seconds: int = 5) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        fire_due_timers,
        "interval",
        seconds=interval_seconds,
        args=[engine],
        id="fire_due_timers",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
