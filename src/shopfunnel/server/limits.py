"""Rate limits and log-in back-off.

- :class:`RateLimiter`: a token bucket per write key, counted in **events** (a batch of 500
  costs 500), so splitting or merging requests changes nothing.
- :class:`FailureBackoff` and :class:`LoginGuard`: admin log-in attempts. Only **failed**
  attempts count, per client address and for the account, and each failure past a few free
  ones doubles the wait. A browser the owner has logged in from before (a signed device
  cookie) is judged on its own failures only, so a stranger guessing from the same address,
  or from many, cannot lock the owner out (see docs/adr/0076).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Allow ``rate`` units per second per key with bursts up to ``burst`` units.

    :meth:`take` returns 0 when the units are granted (and takes them), else the seconds
    to wait until they would be (nothing is taken). A request for more than ``burst``
    units can never be granted: callers refuse it as too large (:meth:`too_large`).
    """

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def too_large(self, units: float) -> bool:
        """Whether ``units`` exceed the burst (they would wait forever)."""
        return units > self.burst

    def wait(self, key: str, units: float = 1.0) -> float:
        """Seconds until ``units`` would be granted (0: now), taking nothing: a cheap
        check before the work of reading a request whose size is not known yet."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= units else (min(units, self.burst) - tokens) / self.rate

    def take(self, key: str, units: float = 1.0) -> float:
        """Take ``units`` and return 0 when they are there, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= units:
                self._buckets[key] = (tokens - units, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (min(units, self.burst) - tokens) / self.rate


class FailureBackoff:
    """Failed attempts per key, with an exponential wait.

    The first ``free_failures`` failures cost nothing; after failure number
    ``free_failures + k`` (k ≥ 1) the key must wait ``first_wait_seconds · 2^(k-1)``,
    at most ``max_wait_seconds``, counted from that failure. A success, or
    ``forget_seconds`` without a failure, clears the key. Keys are kept at most
    ``max_keys`` (the oldest are dropped), so a flood of addresses cannot fill memory.
    """

    def __init__(
        self,
        *,
        free_failures: int,
        first_wait_seconds: float,
        max_wait_seconds: float,
        forget_seconds: float = 3600.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.free_failures = free_failures
        self.first_wait_seconds = first_wait_seconds
        self.max_wait_seconds = max_wait_seconds
        self.forget_seconds = forget_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, time of the last)
        self._lock = threading.Lock()

    def _wait_after(self, count: int) -> float:
        over = count - self.free_failures
        if over <= 0:
            return 0.0
        return min(self.max_wait_seconds, self.first_wait_seconds * 2.0 ** min(over - 1, 60))

    def wait(self, key: str) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            entry = self._failures.get(key)
            if entry is None:
                return 0.0
            count, last = entry
            if now - last >= self.forget_seconds:
                del self._failures[key]
                return 0.0
            return max(0.0, last + self._wait_after(count) - now)

    def failed(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            count, last = self._failures.pop(key, (0, now))
            if now - last >= self.forget_seconds:
                count = 0
            self._failures[key] = (count + 1, now)  # re-inserted: dicts keep the newest last
            while len(self._failures) > self.max_keys:
                del self._failures[next(iter(self._failures))]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class LoginGuard:
    """Who may try the admin password now.

    - A **trusted device** (a browser that logged in before, identified by its signed
      device cookie) is limited by its own failures only: 5 free, then 1 s doubling to 15 min.
    - Anyone else is limited by the failures from their **address** (5 free, then 1 s
      doubling to 15 min) and by the **account's** failures from everywhere without a
      device cookie (20 free, then 1 s doubling to 1 min): guessing spread over many
      addresses slows down too, but for a minute at most, and never for the owner's browser.
    - Right passwords are never counted; a success clears the address (or device).
    """

    ACCOUNT = "admin"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self.by_address = FailureBackoff(
            free_failures=5, first_wait_seconds=1, max_wait_seconds=900, clock=clock
        )
        self.by_device = FailureBackoff(
            free_failures=5, first_wait_seconds=1, max_wait_seconds=900, clock=clock
        )
        self.account = FailureBackoff(
            free_failures=20, first_wait_seconds=1, max_wait_seconds=60, clock=clock
        )

    def wait(self, address: str, device: str | None) -> float:
        """Seconds before an attempt from ``address`` (with ``device``, when trusted) is checked."""
        if device is not None:
            return self.by_device.wait(device)
        return max(self.by_address.wait(address), self.account.wait(self.ACCOUNT))

    def failed(self, address: str, device: str | None) -> None:
        if device is not None:
            self.by_device.failed(device)
        else:
            self.by_address.failed(address)
            self.account.failed(self.ACCOUNT)

    def succeeded(self, address: str, device: str | None) -> None:
        if device is not None:
            self.by_device.succeeded(device)
        self.by_address.succeeded(address)
