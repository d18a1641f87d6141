"""`certrail worker`: the engine's periodic jobs in a process of their own.

The worker runs every job, then sleeps `interval` seconds, until SIGTERM or SIGINT (a job in
progress finishes its current unit of work first). Any number of workers may run against one
PostgreSQL database: a due timer is claimed by exactly one of them (see engine/timers.py).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING

from .scheduler import run_jobs_until_idle

if TYPE_CHECKING:
    from . import Engine

log = logging.getLogger(__name__)


def run_worker(engine: Engine, interval: float = 5.0, *, once: bool = False) -> dict[str, int]:
    """Run the jobs every `interval` seconds until stopped (or a single time with `once`);
    returns how many things each job did in total."""
    stop = threading.Event()
    totals: dict[str, int] = {}

    def _stop(signum, _frame):
        log.info("worker received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("worker started (every %s s)", interval)
        while True:
            for name, count in run_jobs_until_idle(engine, stop=stop.is_set).items():
                totals[name] = totals.get(name, 0) + count
                if count:
                    log.info("%s: %d", name, count)
            if once or stop.wait(interval):
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("worker stopped")
    return totals
