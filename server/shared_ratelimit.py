"""Rate limits shared by every worker and every server instance: token buckets kept in the store.

The low-rate budgets (session starts, admin calls) live in the database's ``rate_buckets`` table (one row per
budget and key or address), so N workers, or several machines on one PostgreSQL, allow a client the budget
once, not N times. Each take is one atomic store call (:meth:`~.store.ServerStore.take_tokens`: SQLite under
``BEGIN IMMEDIATE``, PostgreSQL with the named rows locked in one transaction): two workers never both take
the last token, and a request is charged to its key's and its address's buckets together or not at all.

The trade-off: the frames' budget (and the result calls charged to it) stays per process
(:class:`~.ratelimit.RateLimiter`). A client sends ten frames a second per session; a database write per frame
for the limit alone would cost the throughput the frame path was tuned for (one statement per frame), and
the frames are bounded per session anyway (``max_frames``, ``session_ttl_s``, ``max_frame_gap_s``) while the
sessions that carry them are limited here, across the whole deployment. Admin calls and session starts are
a few a minute: one small transaction each is cheap.

- Clock: the server's wall clock (``time.time()``, the app's clock: tests drive it), passed to the store with
  each call, as the sessions' expiry is; not the database's clock. The machines of a deployment keep their
  clocks in step (NTP) already for session expiry; a clock behind another's refills nothing until it catches
  up (:mod:`.buckets`), so skew delays refills and never adds tokens.
- Size: a refused request writes nothing, and :meth:`StoreRateLimiter.forget_full` (called by each worker's
  sweep every ``sweep_interval_s``) deletes the buckets that have refilled, so the table holds only buckets
  used in the last ``burst / per_s`` seconds (a minute for a per-minute budget): an address scan cannot grow
  it without bound, since every new address bucket also costs a token of the key's bucket.
- A database that is down raises StoreUnavailableError (503 ``store_unavailable``), as every store call does;
  the limit is never skipped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, ContextManager

from .ratelimit import Rate, rate_limited
from .store import ServerStore

log = logging.getLogger(__name__)


class StoreRateLimiter:
    """The budgets in ``rates`` kept in the store; ``stores()`` lends the calling thread's store connection."""

    def __init__(self, rates: dict[str, Rate], stores: Callable[[], ContextManager[ServerStore]],
                 clock: Callable[[], float] = time.time) -> None:
        self.rates, self.stores, self.clock = dict(rates), stores, clock

    def take(self, budget: str, *whos: str) -> None:
        """One token from each of ``whos``' buckets of ``budget`` in the store, or ApiError rate_limited (nothing
        taken); StoreUnavailableError when the database cannot be reached."""
        rate = self.rates[budget]
        with self.stores() as store:
            wait = store.take_tokens(budget, whos, rate.per_s, rate.burst, self.clock())
        if wait > 0:
            raise rate_limited(budget, wait)

    def forget_full(self, store: ServerStore | None = None) -> int:
        """Delete every budget's refilled buckets (forgetting them changes nothing); how many were deleted."""
        now = self.clock()
        with (contextlib.nullcontext(store) if store is not None else self.stores()) as s:
            forgotten = sum(s.forget_full_buckets(budget, rate.per_s, rate.burst, now)
                            for budget, rate in self.rates.items())
        if forgotten:
            log.debug("forgot %d refilled rate bucket(s)", forgotten)
        return forgotten
