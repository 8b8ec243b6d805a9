"""The timing harness: statistics, warm-up, alternation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from facelivenet.benchmarks.latency import summarize, time_callable, time_interleaved


class FakeClock:
    """A clock that only moves when a fake model 'runs' for a scripted time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_summarize_matches_numpy_percentiles():
    t = np.arange(1, 201, dtype=float)  # 1..200 ms
    s = summarize(t, warmup=3)
    assert s.median == pytest.approx(100.5)
    assert s.p95 == pytest.approx(np.percentile(t, 95))
    assert s.p99 == pytest.approx(np.percentile(t, 99))
    assert (s.min, s.max, s.runs, s.warmup) == (1.0, 200.0, 200, 3)
    assert s.mean == pytest.approx(100.5)
    assert set(s.to_dict()) >= {"median", "p95", "p99", "runs", "warmup"}


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, -2.0]])
def test_summarize_rejects_bad_timings(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_time_callable_warms_up_then_times_each_call():
    clock = FakeClock()
    durations = iter([50.0] * 5 + [float(i) for i in range(1, 201)])  # warm-up calls are slow, never counted
    calls = []

    def model():
        calls.append(1)
        clock.now += next(durations) / 1000.0

    stats, times = time_callable(model, runs=200, warmup=5, clock=clock)
    assert len(calls) == 205
    assert times == pytest.approx([float(i) for i in range(1, 201)])
    assert stats.median == pytest.approx(100.5)
    assert stats.p99 == pytest.approx(np.percentile(np.arange(1, 201), 99))
    assert stats.max == pytest.approx(200.0)


def test_time_interleaved_alternates_and_keeps_each_callables_times():
    clock = FakeClock()
    order = []

    def make(name, ms):
        def fn():
            order.append(name)
            clock.now += ms / 1000.0
        return fn

    (a, ta), (b, tb) = time_interleaved([make("a", 2.0), make("b", 8.0)], runs=4, warmup=1, clock=clock)
    assert order == ["a", "b"] * 5
    assert ta == pytest.approx([2.0] * 4) and tb == pytest.approx([8.0] * 4)
    assert b.median / a.median == pytest.approx(4.0)


@pytest.mark.parametrize("runs,warmup", [(0, 1), (5, -1)])
def test_time_callable_rejects_bad_counts(runs, warmup):
    with pytest.raises(ValueError):
        time_callable(lambda: None, runs=runs, warmup=warmup)


def test_real_clock_measures_something():
    stats, times = time_callable(lambda: sum(range(1000)), runs=20, warmup=2)
    assert stats.runs == 20 and len(times) == 20 and stats.median > 0
