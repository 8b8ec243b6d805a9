"""Token-bucket rate limits per API key and per client address: the per-process limiter and the budgets' router.

Each budget (session starts, frames, admin calls) has one bucket per key and one per address; a request
takes a token from both or is refused with 429 ``rate_limited`` and ``Retry-After`` (whole seconds until both
have a token). The arithmetic is :mod:`.buckets`'.

- :class:`RateLimiter` keeps its buckets in the worker process's memory: with N workers a client may get up
  to N times such a budget (each request lands on one worker). The server keeps the frames' budget here.
- :class:`~.shared_ratelimit.StoreRateLimiter` keeps its buckets in the database, shared by every worker and
  instance (session starts and admin calls; that module says why the frames stay per process).
- :class:`RateLimits` sends each budget to the limiter that holds it; the app calls ``take(budget, *whos)``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from .buckets import Bucket, bucket_names, check_rate, is_full, take_all
from .errors import ApiError

MAX_BUCKETS = 50_000  # per limiter: full idle buckets are forgotten past this (an address scan cannot grow memory)


@dataclass(frozen=True)
class Rate:
    """``per_s`` tokens a second, at most ``burst`` saved up."""

    per_s: float
    burst: float

    def __post_init__(self) -> None:
        check_rate(self.per_s, self.burst)

    @classmethod
    def per_minute(cls, n: float) -> Rate:
        return cls(n / 60.0, max(1.0, n))

    @classmethod
    def per_second(cls, n: float) -> Rate:
        return cls(float(n), max(1.0, n))


def rate_limited(budget: str, wait_s: float) -> ApiError:
    """The 429 ``rate_limited`` answer for a refusal ``wait_s`` seconds long (Retry-After: whole seconds, >= 1)."""
    retry = max(1, math.ceil(round(wait_s, 6)))  # the rounding: 30.000000000004 s of float drift is 30 s
    return ApiError("rate_limited", f"too many {budget} requests; retry in {retry} s",
                    headers={"Retry-After": str(retry)})


class Limiter(Protocol):
    """What :class:`RateLimits` routes to: the budgets it holds and the take."""

    rates: dict[str, Rate]

    def take(self, budget: str, *whos: str) -> None: ...


class RateLimiter:
    """Buckets keyed by (budget, who) in this process's memory; thread-safe."""

    def __init__(self, rates: dict[str, Rate], clock=time.monotonic) -> None:
        self.rates, self.clock = dict(rates), clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, budget: str, *whos: str) -> None:
        """One token from each of ``whos``' buckets of ``budget``, or ApiError rate_limited (nothing taken)."""
        rate = self.rates[budget]
        names = bucket_names(whos)
        with self._lock:
            now = self.clock()
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_idle(now)
            held = {who: self._buckets.get((budget, who)) for who in names}
            wait, taken = take_all({who: Bucket(*b) if b else None for who, b in held.items()}, now, rate.per_s,
                                   rate.burst)
            if wait > 0:
                raise rate_limited(budget, wait)
            for who, b in taken.items():
                self._buckets[(budget, who)] = (b.tokens, b.updated_at)

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled (forgetting them changes nothing)."""
        for (budget, who), (tokens, at) in list(self._buckets.items()):
            rate = self.rates[budget]
            if is_full(Bucket(tokens, at), now, rate.per_s, rate.burst):
                del self._buckets[(budget, who)]


class RateLimits:
    """Each budget's limiter (a budget is held by exactly one); ``take`` as theirs."""

    def __init__(self, *limiters: Limiter) -> None:
        self._by_budget: dict[str, Limiter] = {}
        for limiter in limiters:
            for budget in limiter.rates:
                if budget in self._by_budget:
                    raise ValueError(f"the {budget!r} budget is held by two limiters")
                self._by_budget[budget] = limiter

    def take(self, budget: str, *whos: str) -> None:
        """One token from each of ``whos``' buckets of ``budget``, or ApiError rate_limited (nothing taken)."""
        limiter = self._by_budget.get(budget)
        if limiter is None:
            raise ValueError(f"no limiter holds the {budget!r} budget; known: {', '.join(sorted(self._by_budget))}")
        limiter.take(budget, *whos)
