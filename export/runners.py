"""Run an exported file on a batch: (embedding, expression_logits) as float32 numpy arrays.

One implementation of running a model file, the edge runtime's
(:mod:`facelivenet.edge_runtime.backends`): onnxruntime, LiteRT's interpreter
(never the old tflite_runtime: ARCHITECTURE.md, "Toolchain notes") and, on
macOS, Core ML.
Export only adds ONNX batching (``ONNX_BATCH`` faces per call, to bound the
memory of a large parity set) and turns a backend failure into an ExportError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from facelivenet.edge_runtime.backends import BACKEND_CLASSES, BackendError, ModelBackend
from facelivenet.edge_runtime.constants import FORMATS

from .errors import RUNTIMES, ExportError, require

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
ONNX_BATCH = 32

# Format -> (backend class, the module it imports, its distribution), from constants.FORMAT_TABLE.
BACKENDS: dict[str, tuple[type, str, str]] = {fmt: (BACKEND_CLASSES[fmt], *RUNTIMES[fmt]) for fmt in FORMATS}


def open_backend(fmt: str, path: str | Path, threads: int = 1) -> ModelBackend:
    """The runtime's backend for ``fmt`` on ``path``; ExportError (one line) when it cannot load."""
    if fmt not in BACKENDS:
        raise ExportError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    cls, module, dist = BACKENDS[fmt]
    require(module, dist, f"running the {fmt} files")
    try:
        return cls(path, max(1, threads))
    except BackendError as exc:
        raise ExportError(str(exc)) from exc


def _chunked(backend: ModelBackend, chunk: int) -> Runner:
    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embs, logits = [], []
        for i in range(0, len(batch), chunk):
            e, l = backend.run(np.ascontiguousarray(batch[i:i + chunk], np.float32))
            embs.append(e)
            logits.append(l)
        return np.concatenate(embs), np.concatenate(logits)

    return run


def onnx_runner(path: str | Path, threads: int = 1) -> Runner:
    """onnxruntime on CPU, ``ONNX_BATCH`` faces per call."""
    return _chunked(open_backend("onnx", path, threads), ONNX_BATCH)


def tflite_runner(path: str | Path, threads: int = 1) -> Runner:
    """ai_edge_litert's interpreter (the files have a static batch of 1: one face per call)."""
    return open_backend("tflite", path, threads).run


def coreml_runner(path: str | Path, threads: int = 1) -> Runner:
    """Core ML (macOS only)."""
    return open_backend("coreml", path, threads).run


RUNNERS = {"onnx": onnx_runner, "tflite": tflite_runner, "coreml": coreml_runner}


def runner_for(fmt: str, path: str | Path, threads: int = 1) -> Runner:
    """The Runner for a file of format ``fmt``."""
    if fmt not in RUNNERS:
        raise ExportError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    return RUNNERS[fmt](path, threads)
