"""Token-bucket arithmetic, one copy for the in-memory limiter and for the stores' shared buckets.

A bucket holds ``tokens`` as of ``updated_at``, gains ``per_s`` tokens a second and saves up at most ``burst``;
a bucket nobody has used is full. A request is charged to several buckets of one budget (its key's and its
address's) all-or-nothing: one token from each when every one has a token, else nothing, and the wait until
every one has.

Time never runs backwards for a bucket: a ``now`` earlier than its ``updated_at`` (another server instance's
clock a little ahead of this one's) adds no tokens and keeps ``updated_at``, so clocks that disagree between
machines can delay a refill by their skew but never mint tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

# float slack: a bucket this close to a whole token has it (per_s * seconds is rarely exact)
EPSILON = 1e-9


@dataclass(frozen=True)
class Bucket:
    """``tokens`` as of ``updated_at`` (seconds on the limiter's clock)."""

    tokens: float
    updated_at: float


def check_rate(per_s: float, burst: float) -> None:
    """ValueError unless ``per_s`` > 0 and ``burst`` >= 1 (finite): a budget that can ever grant a token."""
    if not (math.isfinite(per_s) and per_s > 0):
        raise ValueError(f"a rate must refill > 0 tokens a second, got {per_s!r}")
    if not (math.isfinite(burst) and burst >= 1):
        raise ValueError(f"a rate must save up at least 1 token, got burst {burst!r}")


def bucket_names(whos: Sequence[str]) -> list[str]:
    """The distinct bucket names of a request, sorted (the stores lock rows in this order: no deadlock)."""
    names = sorted(set(whos))
    if not names:
        raise ValueError("a take needs at least one bucket")
    return names


def refilled(bucket: Bucket | None, now: float, per_s: float, burst: float) -> Bucket:
    """The bucket as of ``now`` (``None``: never used, so full)."""
    if bucket is None:
        return Bucket(burst, now)
    if now <= bucket.updated_at:
        return Bucket(min(burst, bucket.tokens), bucket.updated_at)
    return Bucket(min(burst, bucket.tokens + (now - bucket.updated_at) * per_s), now)


def take_all(buckets: Mapping[str, Bucket | None], now: float, per_s: float,
             burst: float) -> tuple[float, dict[str, Bucket]]:
    """``(0.0, the buckets less one token each)`` when every bucket has a token at ``now``; otherwise
    ``(seconds until every one has, {})``: nothing is taken."""
    current = {who: refilled(b, now, per_s, burst) for who, b in buckets.items()}
    wait = max(((1.0 - b.tokens) / per_s for b in current.values() if b.tokens < 1.0 - EPSILON), default=0.0)
    if wait > 0:
        return wait, {}
    return 0.0, {who: Bucket(max(0.0, b.tokens - 1.0), b.updated_at) for who, b in current.items()}


def is_full(bucket: Bucket, now: float, per_s: float, burst: float) -> bool:
    """Whether the bucket has refilled by ``now`` (forgetting it then changes nothing)."""
    return bucket.tokens + max(0.0, now - bucket.updated_at) * per_s >= burst - EPSILON
