"""Parity of two machines' model outputs (``outputs.py`` files): per file vs torch on each, and ARM vs x86.

Numbers only (numpy); ``check.py`` adds the targets and the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.benchmarks.device import decisive_agreement
from facelivenet.benchmarks.device_faces import crop_drift
from facelivenet.export import parity as parity_mod


def load(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop("report"))), arrays


def _short(m: dict[str, Any]) -> dict[str, float]:
    return {"cosine_mean": round(m["cosine_mean"], 6), "cosine_min": round(m["cosine_min"], 6),
            "top1_agreement": round(m["expression_top1_agreement"], 4)}


def compare(arm: Path, x86: Path) -> dict[str, Any]:
    """Per file: ARM vs torch, x86 vs torch, ARM vs x86 (each on the faces as that machine aligned them,
    ARM vs x86 on the same faces); and how far ARM's crops moved from x86's."""
    arm_rep, a = load(arm)
    x86_rep, b = load(x86)
    if not np.array_equal(a["torch_embedding"], b["torch_embedding"]):
        raise ValueError("the two output files hold different reference faces (different --faces or bundle)")
    files: dict[str, Any] = {}
    for key in dict.fromkeys([*x86_rep["files"], *arm_rep["files"]]):
        emb, log = f"{key}/embedding", f"{key}/logits"
        row: dict[str, Any] = {"runtime_arm": arm_rep["files"].get(key, {}).get("runtime"),
                               "runtime_x86": x86_rep["files"].get(key, {}).get("runtime")}
        if emb not in a or emb not in b:
            row["error"] = arm_rep["files"].get(key, {}).get("error") or x86_rep["files"].get(key, {}).get("error")
            files[key] = row
            continue
        precision = key.split("/")[1].split("-")[0]
        for side, out in (("arm", a), ("x86", b)):  # the device bench's gate: agreement on decisive faces
            m = parity_mod.gated(precision, a["torch_embedding"], a["torch_logits"], out[emb], out[log])
            m.update(decisive_agreement(precision, m, a["torch_logits"], out[log]))
            row[f"{side}_vs_torch"] = {**_short(m), "gate_passed": not m.get("failures"),
                                       "near_tie_disagreements": m["near_tie_disagreements"]}
        row["arm_vs_x86"] = _short(parity_mod.measure(b[emb], b[log], a[emb], a[log]))
        row["arm_vs_x86"]["logit_max_abs_diff"] = round(float(np.abs(a[log] - b[log]).max()), 6)
        files[key] = row
    return {"faces": arm_rep["faces"], "crops_arm_vs_x86": crop_drift(a["crops"], b["crops"]), "files": files,
            "arm": {k: arm_rep[k] for k in ("machine", "aligned_with", "versions")},
            "x86": {k: x86_rep[k] for k in ("machine", "aligned_with", "versions")}}
