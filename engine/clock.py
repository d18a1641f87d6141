"""The engine's time source.

Every "now" in the engine comes from a Clock so that tests and operators can move time
(`certrail jobs run-once --now ...`) instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)


class FixedClock(Clock):
    """A clock that stays where it is set; tests and catch-up runs move it explicitly."""

    def __init__(self, now: datetime):
        self._now = now

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = now
