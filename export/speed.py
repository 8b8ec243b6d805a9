"""Several model files timed in ONE process, in alternation: medians and ratios from the same run.

On a shared machine the load changes from minute to minute; files timed one
after another in separate runs are not comparable. Here every round calls
each file once, in turn, so all of them see the same load; the medians and
their ratios (to the fp32 file of the same format) are what the export uses to
pick the bundle's default file and what ``facelive-bench`` reports for the
int8 forms. Only the edge runtime's backends are used (no torch): the device
benchmark can run it too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timed:
    """One file to time: a label, its format, path and input layout."""

    label: str
    fmt: str
    path: Path
    layout: str
    precision: str = ""
    variant: str = ""


@dataclass(frozen=True)
class SpeedConfig:
    """How long to time: ``rounds`` calls per file after ``warmup``, at each thread count."""

    threads: tuple[int, ...] = (1,)
    rounds: int = 100
    warmup: int = 10


def batch_one(input_size: int, layout: str, seed: int = 0) -> np.ndarray:
    """A fixed float32 batch of one (latency does not depend on pixel values)."""
    shape = (1, 3, input_size, input_size) if layout == "NCHW" else (1, input_size, input_size, 3)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def time_interleaved(files: Sequence[Timed], input_size: int, threads: int, rounds: int,
                     warmup: int) -> dict[str, dict[str, float]]:
    """``label -> {median_ms, p90_ms}`` of each file, timed in alternation at ``threads`` threads."""
    from facelivenet.edge_runtime.backends import open_backend

    backends = {f.label: open_backend(f.fmt, f.path, threads) for f in files}
    inputs = {f.label: batch_one(input_size, f.layout) for f in files}
    for label, backend in backends.items():
        for _ in range(warmup):
            backend.run(inputs[label])
    samples: dict[str, list[float]] = {label: [] for label in backends}
    for _ in range(rounds):
        for label, backend in backends.items():
            start = time.perf_counter()
            backend.run(inputs[label])
            samples[label].append((time.perf_counter() - start) * 1000.0)
    return {label: {"median_ms": round(float(np.median(v)), 4), "p90_ms": round(float(np.quantile(v, 0.9)), 4)}
            for label, v in samples.items()}


def side_by_side(files: Sequence[Timed], input_size: int, cfg: SpeedConfig) -> dict[str, Any]:
    """Every file at every thread count, in alternation; per row the ratio ``fp32 median / file median`` of
    its format (above 1: faster than fp32), all from the same run."""
    rows = []
    for threads in cfg.threads:
        timed = time_interleaved(files, input_size, threads, cfg.rounds, cfg.warmup)
        fp32 = {f.fmt: timed[f.label]["median_ms"] for f in files if f.precision == "fp32"}
        for f in files:
            t = timed[f.label]
            base = fp32.get(f.fmt)
            rows.append({"label": f.label, "format": f.fmt, "precision": f.precision, "variant": f.variant,
                         "path": str(f.path.name), "threads": threads, **t,
                         "speedup_vs_fp32": round(base / t["median_ms"], 3) if base else None})
            log.info("%s x%d: median %.3f ms", f.label, threads, t["median_ms"])
    return {"method": f"one process, files called in alternation, {cfg.rounds} rounds after {cfg.warmup} warm-up, "
                      "batch 1; speedup = the fp32 file's median / this file's median (same format, same threads)",
            "threads": list(cfg.threads), "rounds": cfg.rounds, "rows": rows}


def fastest(speed: dict[str, Any], labels: Sequence[str], threads: int = 1) -> str | None:
    """The label among ``labels`` with the smallest median at ``threads`` threads (None when none timed)."""
    rows = [r for r in speed.get("rows", []) if r["label"] in labels and r["threads"] == threads]
    return min(rows, key=lambda r: r["median_ms"])["label"] if rows else None
