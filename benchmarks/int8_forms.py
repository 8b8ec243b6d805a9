"""The int8 forms side by side: fp32, weight-only int8 and static int8 of each format, in ONE process.

Each bundle row is timed in a child process of its own, one after another; on a
shared machine the load moves between them. The speed-up of int8 over fp32 is
therefore measured here again with the files called in alternation
(:func:`facelivenet.export.speed.side_by_side`), at each thread count: the
medians and their ratio to the fp32 file of the same format come from the same
rounds. The target (issue 17): a static int8 file >= :data:`TARGET_SPEEDUP` x
faster than fp32 at one thread. Torch-free: the device benchmark runs it too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from facelivenet.edge_runtime.constants import file_form
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.manifest import Manifest

log = logging.getLogger(__name__)

TARGET_SPEEDUP = 1.8
FORMATS = ("onnx", "tflite")


form_name = file_form  # the runtime's label of a file's form (edge_runtime.constants), used by every report


def row_form(row: dict[str, Any]) -> str:
    """:func:`form_name` of a result row (or skipped entry) with ``precision`` and ``variant`` (absent: "")."""
    return form_name(row["precision"], row.get("variant") or "")


def float32_compute(precision: str, variant: str | None = "") -> bool:
    """Whether a file of this form multiplies in float32: fp32, and weight-only int8 (its weights are dequantised
    to float: the runtimes compute in float); not static int8 (int8 activations) nor fp16."""
    return precision == "fp32" or (precision == "int8" and not variant)


def int8_forms(bundle: Path, manifest: Manifest, threads: Sequence[int], rounds: int, warmup: int) -> dict[str, Any]:
    """The section of the result: one row per (file, threads), the fp32 / int8 files of ONNX and TFLite."""
    from facelivenet.export.speed import SpeedConfig, Timed, side_by_side

    files = [Timed(f.path, f.format, bundle / f.path, f.layout, f.precision, f.variant) for f in manifest.files
             if f.format in FORMATS and f.precision in ("fp32", "int8")]
    if not any(f.precision == "int8" for f in files):
        return {"measured": False, "reason": "the bundle has no int8 ONNX or TFLite file"}
    try:
        out = side_by_side(files, manifest.preprocess.input_size,
                           SpeedConfig(threads=tuple(threads), rounds=rounds, warmup=warmup))
    except FaceLiveError as exc:
        log.warning("int8 forms not timed: %s", exc)
        return {"measured": False, "reason": str(exc)}
    for row in out["rows"]:
        row["form"] = form_name(row["precision"], row["variant"])
    static = [r for r in out["rows"] if r["variant"] == "static" and r["threads"] == 1 and r["speedup_vs_fp32"]]
    best = max(static, key=lambda r: r["speedup_vs_fp32"]) if static else None
    out["target"] = {"text": f"a static int8 file >= {TARGET_SPEEDUP}x faster than fp32 (same format) at 1 thread",
                     "best": best and {k: best[k] for k in ("format", "path", "speedup_vs_fp32")},
                     "holds": None if best is None else best["speedup_vs_fp32"] >= TARGET_SPEEDUP}
    return {"measured": True, **out}


def markdown_lines(section: dict[str, Any] | None) -> list[str]:
    """The int8 forms table (empty when the section is absent)."""
    if not section:
        return []
    if not section.get("measured"):
        return ["", f"int8 forms side by side: not measured ({section.get('reason', '-')})"]
    lines = ["", f"int8 forms side by side ({section['method']}):", "",
             "| format | form | file | threads | median ms | p90 ms | speed-up vs fp32 |", "|---|---|---|---|---|---|---|"]
    for r in section["rows"]:
        ratio = "-" if r["speedup_vs_fp32"] is None else f"{r['speedup_vs_fp32']:.2f}x"
        lines.append(f"| {r['format']} | {r['form']} | {r['path']} | {r['threads']} | {r['median_ms']:.3f} "
                     f"| {r['p90_ms']:.3f} | {ratio} |")
    t = section.get("target") or {}
    if t:
        holds = {True: "yes", False: "NO"}.get(t.get("holds"), "not measured (no static int8 file)")
        best = t.get("best") or {}
        lines.append(f"\nTarget: {t['text']}: {holds}"
                     + (f" ({best['path']}: {best['speedup_vs_fp32']:.2f}x)" if best else ""))
    return lines
