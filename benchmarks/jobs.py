"""The measurements one process makes: load a model, time it on a batch-1 input, read its RSS.

Each job is a JSON-able dict with a ``kind``; :func:`run_job` runs it in this
process and returns a JSON-able dict. :mod:`worker` runs a job in a fresh
process, so each row's load time, RSS and threads are its own (the rows do not
inherit torch or another model's memory). Heavy imports stay inside the job
that needs them.

Kinds:

- ``bundle_file``: a bundle model file through
  :func:`facelivenet.edge_runtime.backends.open_backend` (the runtime's code);
- ``onnx_chain``: one or more ONNX files run one after the other on the same
  input (peers; a two-model pipeline is a chain of two), with the runtime's
  onnxruntime session options;
- ``torch``: the checkpoint's torch model (``torch.set_num_threads``);
- ``dlib``: dlib's face descriptor of a face box (its 5-point landmarks, 150 px chip, ResNet);
- ``gemm``: a large float32 matrix product (the machine's peak, :mod:`machine`).

A job may name a ``reference`` (our int8 bundle file): it is timed in
alternation with the job's model in the same process, so the ratio of the two
holds on a machine whose load changes during the benchmark.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .latency import time_interleaved
from .resources import peak_rss_mb, rss_mb, thread_count


def _timed(job: dict[str, Any], load: Callable[[], tuple[Callable[[], Any], dict[str, Any]]]) -> dict[str, Any]:
    """Load (timed), then warm up and time the returned callable; memory and threads around it.

    With ``job["reference"]`` (a bundle file: format, path, input) the reference is loaded after the
    model's memory was read and both are timed in alternation (``reference_latency_ms``).
    """
    before = rss_mb()
    start = time.perf_counter()
    fn, info = load()
    load_ms = info.pop("load_ms", (time.perf_counter() - start) * 1000.0)
    fns = [fn]
    reference = job.get("reference")
    if reference:
        for _ in range(max(1, int(job["warmup"]))):
            fn()
        after, peak, threads = rss_mb(), peak_rss_mb(), thread_count()  # the model alone, warmed up
        fns.append(_open_bundle_file(reference["format"], reference["path"], int(job["threads"]),
                                     np.load(reference["input"]))[0])
    between, samples, every = None, [], 0
    if job.get("gemm_n"):  # peak samples between the model's timed calls (machine.fold_row_peaks)
        from .machine import GEMM_SAMPLES_PER_ROW, ROW_GEMM_N, gemm_sampler

        between, samples = gemm_sampler(min(int(job["gemm_n"]), ROW_GEMM_N))
        between()  # untimed first product (allocations, BLAS threads)
        samples.clear()
        every = max(1, int(job["runs"]) // GEMM_SAMPLES_PER_ROW)
    timed = time_interleaved(fns, runs=int(job["runs"]), warmup=int(job["warmup"]), between=between, every=every)
    if not reference:
        after, peak, threads = rss_mb(), peak_rss_mb(), thread_count()
    out = {
        **info,
        "load_ms": round(float(load_ms), 3),
        "latency_ms": timed[0][0].to_dict(),
        "rss_mb": None if after is None else round(after, 1),
        "rss_delta_mb": None if after is None or before is None else round(after - before, 1),
        "peak_rss_mb": round(peak, 1),
        "process_threads": threads,
    }
    if samples:
        out["gemm_gflops_samples"] = [round(v, 2) for v in samples]
    if reference:
        out["reference_latency_ms"] = timed[1][0].to_dict()
        out["reference"] = {k: reference[k] for k in ("format", "path")}
    return out


def _open_bundle_file(fmt: str, path: str, threads: int, x: np.ndarray) -> tuple[Callable[[], Any], Any]:
    """(a call running the file on ``x``, its backend) through the runtime's backend."""
    from facelivenet.edge_runtime.backends import open_backend

    backend = open_backend(fmt, path, threads)
    return (lambda: backend.run(x)), backend


def _bundle_file(job: dict[str, Any]) -> dict[str, Any]:
    x = np.load(job["input"])

    def load():
        fn, backend = _open_bundle_file(job["format"], job["path"], int(job["threads"]), x)
        return fn, {"load_ms": backend.load_ms, "runtime": backend.name}

    return _timed(job, load)


def onnx_chain_session(path: str | Path, threads: int):
    """An onnxruntime session with exactly the runtime's options, returning every output."""
    from facelivenet.edge_runtime.backends import OnnxRuntimeBackend

    class _AllOutputs(OnnxRuntimeBackend):
        def run(self, batch: np.ndarray):  # peers have their own output names
            return self._session.run(None, {self._input: batch})

    return _AllOutputs(path, threads)


def _onnx_chain(job: dict[str, Any]) -> dict[str, Any]:
    inputs = [np.load(p) for p in job["inputs"]]

    def load():
        sessions = [onnx_chain_session(p, int(job["threads"])) for p in job["paths"]]

        def run() -> None:
            for s, x in zip(sessions, inputs):
                s.run(x)

        return run, {"load_ms": sum(s.load_ms for s in sessions), "runtime": sessions[0].name}

    return _timed(job, load)


def _torch(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from facelivenet.training.checkpoint import load, model_from_checkpoint

    torch.set_num_threads(int(job["threads"]))
    x = torch.from_numpy(np.load(job["input"]))

    def load_model():
        model = model_from_checkpoint(load(job["checkpoint"])).eval()

        def run():
            with torch.inference_mode():
                return model(x)

        return run, {"runtime": f"torch {torch.__version__}"}

    return _timed(job, load_model)


def _dlib(job: dict[str, Any]) -> dict[str, Any]:
    from facelivenet.training.teacher import DlibTeacher

    image = np.ascontiguousarray(np.load(job["input"]), dtype=np.uint8)
    box = np.asarray(job["box"], dtype=np.float64)

    def load():
        import dlib

        teacher = DlibTeacher()
        return (lambda: teacher.describe(image, box)), {"runtime": f"dlib {dlib.__version__}"}

    return _timed(job, load)


def _gemm(job: dict[str, Any]) -> dict[str, Any]:
    from .machine import gemm_gflops

    return {"gflops": gemm_gflops(int(job["n"]), int(job["repeats"])), "process_threads": thread_count()}


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "bundle_file": _bundle_file,
    "onnx_chain": _onnx_chain,
    "torch": _torch,
    "dlib": _dlib,
    "gemm": _gemm,
}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this process; ValueError for an unknown kind."""
    kind = job.get("kind")
    if kind not in JOBS:
        raise ValueError(f"unknown benchmark job kind {kind!r}; valid: {', '.join(JOBS)}")
    return JOBS[kind](job)
