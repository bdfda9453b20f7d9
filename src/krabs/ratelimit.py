"""A per-key token bucket, in process: sustained ``rate`` requests/s with bursts of ``2 × rate``.
Written here because the well-kept limiters (limits, slowapi) bring storage backends and framework
glue we don't need for one dictionary of buckets."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self.capacity = max(1.0, rate_per_second * 2)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float | None:
        """Take one token; return None when allowed, else the seconds to wait."""
        if self.rate <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
