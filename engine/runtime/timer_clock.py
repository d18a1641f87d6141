"""Make SpiffWorkflow's timer events read the engine's clock.

SpiffWorkflow's timer event definitions call `datetime.now(timezone.utc)` directly. The engine
runs each unit of work "as of" its clock (so tests and catch-up runs can move time), so the
timer module's `datetime` is replaced by a subclass whose `now()` returns the time of the unit
of work in progress, and real time when none is.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer

_now: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("engine_now", default=None)


class EngineDatetime(datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        current = _now.get()
        if current is None:
            return super().now(tz)
        aware = current.replace(tzinfo=UTC)
        return aware.astimezone(tz) if tz is not None else aware.replace(tzinfo=None)


spiff_timer.datetime = EngineDatetime


@contextmanager
def timers_as_of(now: datetime) -> Iterator[None]:
    """Within the block, SpiffWorkflow timers see `now` (naive UTC) as the current time."""
    token = _now.set(now)
    try:
        yield
    finally:
        _now.reset(token)
