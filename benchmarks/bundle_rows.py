"""Latency rows of a bundle's model files and of the torch model they were exported from.

Each bundle file is opened by the runtime's own backend
(:func:`facelivenet.edge_runtime.backends.open_backend`) after
:func:`~facelivenet.edge_runtime.manifest.load_manifest` verified every
file's sha256, and timed on a batch-1 input in the file's layout. Formats the
bundle lacks, and files this machine cannot run (CoreML off macOS), are
listed as skipped with the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.manifest import FORMATS, Manifest

from .int8_forms import form_name

log = logging.getLogger(__name__)

JobRunner = Callable[[dict[str, Any]], dict[str, Any]]
InputFor = Callable[[str], str]  # layout -> path of a .npy batch-1 input


def file_rows(bundle: Path, manifest: Manifest, threads: Sequence[int], runs: int, warmup: int,
              input_for: InputFor, run: JobRunner, gemm_n: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(latency rows, skipped entries) for every file of the bundle at every thread count; with ``gemm_n``
    each row's process also samples the GEMM peak between its timed calls."""
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    present = {f.format for f in manifest.files}
    for fmt in FORMATS:
        if fmt not in present:
            skipped.append({"format": fmt, "reason": f"the bundle has no {fmt} file"})
    for f in manifest.files:
        for t in threads:
            job = {"kind": "bundle_file", "format": f.format, "path": str(bundle / f.path), "threads": t,
                   "runs": runs, "warmup": warmup, "input": input_for(f.layout), "gemm_n": gemm_n}
            try:
                result = run(job)
            except FaceLiveError as exc:
                skipped.append({"format": f.format, "precision": f.precision, "variant": f.variant, "threads": str(t),
                                "reason": str(exc)})
                log.warning("%s %s skipped: %s", f.format, form_name(f.precision, f.variant), exc)
                break  # the other thread counts would fail alike
            rows.append({"format": f.format, "precision": f.precision, "variant": f.variant, "threads": t, "path": f.path,
                         "layout": f.layout, "size_bytes": f.size_bytes, **result, "parity": {}, "accuracy": {}})
            log.info("%s %s x%d: median %.2f ms", f.format, form_name(f.precision, f.variant), t,
                     result["latency_ms"]["median"])
    return rows, skipped


def torch_rows(checkpoint: Path, threads: Sequence[int], runs: int, warmup: int, input_for: InputFor,
               run: JobRunner, gemm_n: int = 0) -> list[dict[str, Any]]:
    """Latency rows of the checkpoint's torch model (fp32, eval mode, inference mode)."""
    rows = []
    for t in threads:
        result = run({"kind": "torch", "checkpoint": str(checkpoint), "threads": t, "runs": runs, "warmup": warmup,
                      "input": input_for("NCHW"), "gemm_n": gemm_n})
        rows.append({"format": "torch", "precision": "fp32", "variant": "", "threads": t, "path": str(checkpoint),
                     "layout": "NCHW", "size_bytes": checkpoint.stat().st_size, **result, "parity": {},
                     "accuracy": {}})
        log.info("torch fp32 x%d: median %.2f ms", t, result["latency_ms"]["median"])
    return rows
