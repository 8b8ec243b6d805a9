"""Token-bucket rate limits per API key and per client address, kept in the worker process.

Each budget (session starts, frames, admin calls) has one bucket per key and one per address; a request
takes a token from both or is refused with 429 ``rate_limited`` and ``Retry-After`` (seconds until a token is
back). The buckets live in one worker process: with N workers a client may get up to N times the budget
(each request lands on one worker). A shared limit belongs in front of the server (the reverse proxy).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from .errors import ApiError

MAX_BUCKETS = 50_000  # per limiter: full idle buckets are forgotten past this (an address scan cannot grow memory)


@dataclass(frozen=True)
class Rate:
    """``per_s`` tokens a second, at most ``burst`` saved up."""

    per_s: float
    burst: float

    @classmethod
    def per_minute(cls, n: float) -> Rate:
        return cls(n / 60.0, max(1.0, n))

    @classmethod
    def per_second(cls, n: float) -> Rate:
        return cls(float(n), max(1.0, n))


class RateLimiter:
    """Buckets keyed by (budget, who); thread-safe."""

    def __init__(self, rates: dict[str, Rate], clock=time.monotonic) -> None:
        self.rates, self.clock = dict(rates), clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)
        self._lock = threading.Lock()

    def _wait(self, budget: str, who: str, now: float) -> float:
        """Seconds until (budget, who) has a token (0: it has one now; it is not taken)."""
        rate = self.rates[budget]
        tokens, at = self._buckets.get((budget, who), (rate.burst, now))
        tokens = min(rate.burst, tokens + (now - at) * rate.per_s)
        self._buckets[(budget, who)] = (tokens, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate.per_s

    def take(self, budget: str, *whos: str) -> None:
        """One token from each of ``whos``' buckets of ``budget``, or ApiError rate_limited (nothing taken)."""
        with self._lock:
            now = self.clock()
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_idle(now)
            wait = max(self._wait(budget, who, now) for who in whos)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                raise ApiError("rate_limited", f"too many {budget} requests; retry in {retry} s",
                               headers={"Retry-After": str(retry)})
            for who in whos:
                tokens, at = self._buckets[(budget, who)]
                self._buckets[(budget, who)] = (tokens - 1.0, at)

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled (forgetting them changes nothing)."""
        for (budget, who), (tokens, at) in list(self._buckets.items()):
            rate = self.rates[budget]
            if tokens + (now - at) * rate.per_s >= rate.burst:
                del self._buckets[(budget, who)]
