"""Token buckets per key and per address (server/ratelimit.py), on a clock the test drives."""

from __future__ import annotations

import pytest

from facelivenet.server.errors import ApiError
from facelivenet.server.ratelimit import Rate, RateLimiter

from .app_fixtures import Clock


def test_a_budget_refills_at_its_rate_and_says_when_to_retry():
    clock = Clock(0.0)
    limiter = RateLimiter({"sessions": Rate.per_minute(2)}, clock=clock)
    limiter.take("sessions", "key:a")
    limiter.take("sessions", "key:a")
    with pytest.raises(ApiError) as e:
        limiter.take("sessions", "key:a")
    assert e.value.code == "rate_limited" and e.value.status == 429 and e.value.headers["Retry-After"] == "30"
    clock.now = 29.0
    with pytest.raises(ApiError):
        limiter.take("sessions", "key:a")
    clock.now = 30.0
    limiter.take("sessions", "key:a")


def test_key_and_address_are_limited_separately_and_together():
    clock = Clock(0.0)
    limiter = RateLimiter({"frames": Rate.per_second(2), "admin": Rate.per_minute(1)}, clock=clock)
    limiter.take("frames", "key:a", "addr:1")
    limiter.take("frames", "key:b", "addr:1")
    with pytest.raises(ApiError):  # the address is spent, whichever key
        limiter.take("frames", "key:c", "addr:1")
    limiter.take("frames", "key:a", "addr:2")
    with pytest.raises(ApiError):  # key a is spent, whichever address
        limiter.take("frames", "key:a", "addr:3")
    limiter.take("frames", "key:c", "addr:3")  # a refused request took nothing from addr:3
    limiter.take("frames", "key:c", "addr:3")
    limiter.take("admin", "key:a", "addr:1")  # budgets are separate


def test_idle_buckets_are_forgotten(monkeypatch):
    import facelivenet.server.ratelimit as ratelimit

    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 10)
    clock = Clock(0.0)
    limiter = RateLimiter({"frames": Rate.per_second(1)}, clock=clock)
    for i in range(30):
        limiter.take("frames", f"addr:{i}")
        clock.now += 2.0  # every earlier bucket has refilled
    assert len(limiter._buckets) <= 11


def test_each_budget_goes_to_the_limiter_that_holds_it():
    from facelivenet.server.ratelimit import RateLimits

    clock = Clock(0.0)
    frames = RateLimiter({"frames": Rate.per_second(1)}, clock=clock)
    sessions = RateLimiter({"sessions": Rate.per_minute(1)}, clock=clock)
    limits = RateLimits(sessions, frames)
    limits.take("frames", "key:a")
    limits.take("sessions", "key:a")  # another limiter's bucket of the same key
    with pytest.raises(ApiError):
        limits.take("frames", "key:a")
    assert set(frames._buckets) == {("frames", "key:a")} and set(sessions._buckets) == {("sessions", "key:a")}
    with pytest.raises(ValueError, match="no limiter holds the 'admin' budget"):
        limits.take("admin", "key:a")
    with pytest.raises(ValueError, match="held by two limiters"):
        RateLimits(frames, RateLimiter({"frames": Rate.per_second(2)}))


def test_a_rate_that_can_never_grant_is_refused():
    with pytest.raises(ValueError, match="> 0 tokens a second"):
        Rate(0.0, 1.0)
    with pytest.raises(ValueError, match="at least 1 token"):
        Rate(1.0, 0.5)
    assert Rate.per_minute(0.5) == Rate(0.5 / 60, 1.0)  # a budget under one a minute still saves up one
