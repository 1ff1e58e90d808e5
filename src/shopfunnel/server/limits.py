"""Rate limits: a token bucket per key (write key, or client address for logins)."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Allow ``rate`` units per second per key with bursts up to ``burst`` units.

    :meth:`take` returns 0 when the units are granted, else the seconds to wait before
    asking again (the ``Retry-After`` of a 429).
    """

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, units: float = 1.0) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= units:
                self._buckets[key] = (tokens - units, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (min(units, self.burst) - tokens) / self.rate
