"""The machine's measured fp32 peak and how much of it our model achieves.

Peak: the best of a few large float32 matrix products (numpy's BLAS), 2 n^3
FLOPs each, at each requested thread count, measured in the same benchmark
run: at its start and end, and inside each timed row's own process between its
model's timed calls (:func:`gemm_sampler`), so that a load that slowed the
model slowed a peak sample too and the fraction of peak stays honest. The BLAS thread count is set with ``threadpoolctl`` when it is installed,
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
from typing import Any, Callable, Sequence

import numpy as np

from .resources import cpu_model

log = logging.getLogger(__name__)

GEMM_N = 2048
GEMM_REPEATS = 5
QUICK_GEMM_N = 1536
QUICK_GEMM_REPEATS = 3


GEMM_SAMPLES_PER_ROW = 3
ROW_GEMM_N = 1024  # in-row samples: short next to the row's timed calls (2.1 GFLOP each)


def gemm_sampler(n: int = GEMM_N, seed: int = 0) -> tuple[Callable[[], None], list[float]]:
    """(a call that times one float32 (n x n) @ (n x n) product, the GFLOP/s of each call so far)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    samples: list[float] = []

    def sample() -> None:
        with np.errstate(all="ignore"):  # emulators may raise spurious FP flags in BLAS kernels; timing only
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            samples.append(2.0 * n**3 / (time.perf_counter() - start) / 1e9)

    return sample, samples


def gemm_gflops(n: int = GEMM_N, repeats: int = GEMM_REPEATS, seed: int = 0) -> float:
    """Best GFLOP/s of ``repeats`` float32 (n x n) @ (n x n) products in this process (one untimed first)."""
    sample, samples = gemm_sampler(n, seed)
    for _ in range(max(1, repeats) + 1):
        sample()
    return max(samples[1:])


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


def machine_section(threads: Sequence[int], quick: bool = False, n: int | None = None) -> dict[str, Any]:
    """``{"cpu", "threads", "peak_gflops", ...}``: the peak at one thread and at each of ``threads``
    (``n``: the GEMM size, smaller for a slow board or an emulator)."""
    default_n, repeats = (QUICK_GEMM_N, QUICK_GEMM_REPEATS) if quick else (GEMM_N, GEMM_REPEATS)
    n = n or default_n
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


def fold_row_peaks(machine: dict[str, Any], rows: Sequence[dict[str, Any]]) -> None:
    """Add the GEMM samples taken inside each row's process (``gemm_gflops_samples``) to the peak per thread
    count: the peak is the best sample of the whole run, so no row's fraction of it rests on a slow sample."""
    for row in rows:
        got = row.get("gemm_gflops_samples")
        key = str(row.get("threads"))
        if got and key in machine["peak_gflops_samples"]:
            machine["peak_gflops_samples"][key].append(round(max(got), 2))
            machine["peak_gflops_by_threads"][key] = max(machine["peak_gflops_samples"][key])
    machine["peak_gflops"] = machine["peak_gflops_by_threads"]["1"]
    machine["gemm"]["statistic"] = ("best of repeats; best of the samples taken at the start and end of the run and "
                                    "inside each timed row's process between its model's calls")


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
