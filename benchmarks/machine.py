"""The machine's measured fp32 peak and how much of it our model achieves.

Peak: the best of a few large float32 matrix products (numpy's BLAS), 2 n^3
FLOPs each, at each requested thread count, measured in the same benchmark
run. The BLAS thread count is set with ``threadpoolctl`` when it is installed,
else through ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``
in a child process (numpy reads them only at import).

Achieved: FLOPs of one forward pass (``training.flops``, multiply and add
counted separately) / median latency.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from typing import Any, Sequence

import numpy as np

from .resources import cpu_model

log = logging.getLogger(__name__)

GEMM_N = 2048
GEMM_REPEATS = 5
QUICK_GEMM_N = 1536
QUICK_GEMM_REPEATS = 3


def gemm_gflops(n: int = GEMM_N, repeats: int = GEMM_REPEATS, seed: int = 0) -> float:
    """Best GFLOP/s of ``repeats`` float32 (n x n) @ (n x n) products in this process (one untimed first)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def thread_control() -> str:
    """How the GEMM's thread count is set: ``threadpoolctl`` or ``environment`` (a child process)."""
    return "threadpoolctl" if importlib.util.find_spec("threadpoolctl") else "environment"


def peak_gflops(threads: int, n: int = GEMM_N, repeats: int = GEMM_REPEATS) -> float:
    """Peak fp32 GFLOP/s of numpy's GEMM at ``threads`` threads."""
    if thread_control() == "threadpoolctl":
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(threads)):
            return gemm_gflops(n, repeats)
    from .worker import run_isolated

    return float(run_isolated({"kind": "gemm", "threads": int(threads), "n": n, "repeats": repeats})["gflops"])


def machine_section(threads: Sequence[int], quick: bool = False) -> dict[str, Any]:
    """``{"cpu", "threads", "peak_gflops", ...}``: the peak at one thread and at each of ``threads``."""
    n, repeats = (QUICK_GEMM_N, QUICK_GEMM_REPEATS) if quick else (GEMM_N, GEMM_REPEATS)
    by_threads = _peaks(threads, n, repeats)
    return {
        "cpu": cpu_model(),
        "threads": list(threads),
        "peak_gflops": by_threads["1"],
        "peak_gflops_threads": 1,
        "peak_gflops_by_threads": by_threads,
        "peak_gflops_samples": {k: [v] for k, v in by_threads.items()},
        "logical_cpus": os.cpu_count(),
        "gemm": {"n": n, "repeats": repeats, "dtype": "float32", "library": "numpy " + np.__version__,
                 "thread_control": thread_control(), "statistic": "best of repeats; best of the samples taken at "
                 "the start and at the end of the run (a lower sample means other load on the machine)"},
    }


def remeasure(machine: dict[str, Any]) -> None:
    """Sample the peak again (at the end of a run) and keep the best sample per thread count."""
    gemm = machine["gemm"]
    again = _peaks(machine["threads"], gemm["n"], gemm["repeats"])
    for k, v in again.items():
        machine["peak_gflops_samples"][k].append(v)
        machine["peak_gflops_by_threads"][k] = max(machine["peak_gflops_samples"][k])
    machine["peak_gflops"] = machine["peak_gflops_by_threads"]["1"]


def _peaks(threads: Sequence[int], n: int, repeats: int) -> dict[str, float]:
    out = {}
    for t in sorted({1, *threads}):
        out[str(t)] = round(peak_gflops(t, n, repeats), 2)
        log.info("GEMM peak at %d thread(s): %.1f GFLOP/s", t, out[str(t)])
    return out


def achieved(flops: int | float, median_ms: float, peak: float | None) -> dict[str, Any]:
    """Achieved GFLOP/s of a forward pass and its fraction of the measured peak."""
    gflops = float(flops) / (median_ms / 1000.0) / 1e9
    return {"gflops": round(gflops, 3), "fraction_of_peak": round(gflops / peak, 4) if peak else None}
