"""The timing harness: warm-up, then N timed calls of a callable; median, p95, p99 in milliseconds.

Used for every latency number of ``facelive-bench`` (bundle files, the torch
model, peers, dlib). The callable takes no argument: bind the batch-1 input
first (``lambda: backend.run(x)``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_RUNS = 200
DEFAULT_WARMUP = 20
QUICK_RUNS = 30
QUICK_WARMUP = 5


@dataclass(frozen=True)
class LatencyStats:
    """Summary of timed calls, in milliseconds."""

    median: float
    p95: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    runs: int
    warmup: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(times_ms: Sequence[float], warmup: int = 0) -> LatencyStats:
    """Statistics of timed calls (percentiles by linear interpolation, numpy's default)."""
    t = np.asarray(times_ms, dtype=np.float64)
    if t.size == 0:
        raise ValueError("no timed runs to summarise")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("timings must be finite and non-negative")
    p50, p95, p99 = np.percentile(t, [50, 95, 99])
    return LatencyStats(median=float(p50), p95=float(p95), p99=float(p99), mean=float(t.mean()),
                        std=float(t.std()), min=float(t.min()), max=float(t.max()), runs=int(t.size),
                        warmup=int(warmup))


def time_callable(fn: Callable[[], Any], runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP,
                  clock: Callable[[], float] = time.perf_counter) -> tuple[LatencyStats, list[float]]:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times timed; (stats, per-call ms)."""
    return time_interleaved([fn], runs, warmup, clock)[0]


def time_interleaved(fns: Sequence[Callable[[], Any]], runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP,
                     clock: Callable[[], float] = time.perf_counter, between: Callable[[], Any] | None = None,
                     every: int = 0) -> list[tuple[LatencyStats, list[float]]]:
    """Time several callables in alternation (one call of each per round), so that a busy machine slows
    them alike and their ratio stays fair; (stats, per-call ms) of each, in order. ``between`` (untimed,
    e.g. a GEMM peak sample) runs before the first round and after every ``every`` rounds."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for i in range(runs):
        if between is not None and every > 0 and i % every == 0:
            between()
        for fn, out in zip(fns, times):
            start = clock()
            fn()
            out.append((clock() - start) * 1000.0)
    if between is not None and every > 0:
        between()
    return [(summarize(t, warmup), t) for t in times]
