"""Fixed-window request limits counted in the database, so that every web process and
host shares one count per client (the public certificate register is rate-limited)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .models import RateLimitWindow

# Forgetting stale windows costs a DELETE; doing it on one request in this many keeps the
# table small without taxing every request.
CLEANUP_ONE_IN = 200


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_seconds: int


def count_request(
    session: Session, key: str, now: datetime, limit: int, window: timedelta
) -> RateDecision:
    """Count one request for `key` in its current window; refuse it once over `limit`."""
    table = RateLimitWindow.__table__
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    window_over = table.c.window_start <= now - window
    statement = (
        insert(table)
        .values(key=key[:200], window_start=now, hits=1)
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "hits": case((window_over, 1), else_=table.c.hits + 1),
                "window_start": case((window_over, now), else_=table.c.window_start),
            },
        )
        .returning(table.c.hits, table.c.window_start)
    )
    hits, window_start = session.execute(statement).one()
    if random.randrange(CLEANUP_ONE_IN) == 0:
        session.execute(delete(RateLimitWindow).where(RateLimitWindow.window_start <= now - window))
    retry_after = max(1, int((window_start + window - now).total_seconds()) + 1)
    return RateDecision(hits <= limit, retry_after)
