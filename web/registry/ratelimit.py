"""A small fixed-window rate limiter keyed by client address.

It is per process: each worker process counts on its own, so with N workers a client can
make up to N times the limit. That is enough to stop casual scraping of the public
register; a deployment with several workers or hosts should limit at the proxy as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, limit: int, window_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._hits: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one request for `key`; False once it is over the limit in this window."""
        now = self.clock()
        with self._lock:
            started, count = self._hits.get(key, (now, 0))
            if now - started >= self.window:
                started, count = now, 0
            count += 1
            self._hits[key] = (started, count)
            if len(self._hits) > 10_000:
                self._forget_old(now)
            return count <= self.limit

    def retry_after(self, key: str) -> int:
        started, _count = self._hits.get(key, (self.clock(), 0))
        return max(1, int(self.window - (self.clock() - started)) + 1)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, (s, _c) in self._hits.items() if now - s >= self.window]:
            del self._hits[key]
