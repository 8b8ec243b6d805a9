"""Parity of two machines' model outputs (``outputs.py`` files): per file vs torch on each, and ARM vs x86.

ARM vs x86 twice: on every face, each machine with its own alignment (end to end:
alignment + kernels), and on the faces whose crops came out byte-identical on both
(identical inputs: the model files' kernels alone). ``outputs.py --crops`` can also
feed one machine's crops to the other. Numbers only (numpy); ``check.py`` adds the
targets and the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelivenet.benchmarks.device import decisive_agreement
from facelivenet.benchmarks.device_faces import crop_drift
from facelivenet.export import parity as parity_mod


def load(paths: Sequence[Path]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One side's outputs, merged over several files of the same faces (e.g. a later ``--only-extra`` run)."""
    report: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for path in paths:
        with np.load(path) as npz:
            more = {k: npz[k] for k in npz.files}
        rep = json.loads(str(more.pop("report")))
        if arrays and not np.array_equal(arrays["torch_embedding"], more["torch_embedding"]):
            raise ValueError(f"{path} holds other reference faces than {paths[0]}")
        files = {**report.get("files", {}), **rep["files"]}
        report = {**rep, **{k: v for k, v in report.items() if k != "files"}, "files": files}
        arrays = {**more, **arrays}
    return report, arrays


def _short(m: dict[str, Any]) -> dict[str, Any]:
    return {"cosine_mean": round(m["cosine_mean"], 6), "cosine_min": round(m["cosine_min"], 6),
            "top1_agreement": round(m["expression_top1_agreement"], 4)}


def _vs_torch(precision: str, ref: dict[str, np.ndarray], emb: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """The device bench's gate: cosines on every face, agreement on decisive faces (near ties reported)."""
    m = parity_mod.gated(precision, ref["torch_embedding"], ref["torch_logits"], emb, logits)
    m.update(decisive_agreement(precision, m, ref["torch_logits"], logits))
    return {**_short(m), "gate_passed": not m.get("failures"), "near_tie_disagreements": m["near_tie_disagreements"]}


def _vs(a: dict[str, np.ndarray], b: dict[str, np.ndarray], key: str, rows: np.ndarray | None = None) -> dict[str, Any]:
    emb, log = f"{key}/embedding", f"{key}/logits"
    pick = (lambda x: x) if rows is None else (lambda x: x[rows])  # noqa: E731
    out = _short(parity_mod.measure(pick(b[emb]), pick(b[log]), pick(a[emb]), pick(a[log])))
    out["logit_max_abs_diff"] = round(float(np.abs(pick(a[log]) - pick(b[log])).max()), 6)
    out["faces"] = int(len(pick(a[emb])))
    return out


def compare(arm: Sequence[Path], x86: Sequence[Path], arm_same_crops: Sequence[Path] = ()) -> dict[str, Any]:
    arm_rep, a = load(arm)
    x86_rep, b = load(x86)
    same_rep, s = load(arm_same_crops) if arm_same_crops else ({"files": {}}, {})
    if not np.array_equal(a["torch_embedding"], b["torch_embedding"]):
        raise ValueError("the two sides hold different reference faces (different --faces or bundle)")
    same = (a["crops"] == b["crops"]).reshape(len(a["crops"]), -1).all(axis=1)
    files: dict[str, Any] = {}
    for key in dict.fromkeys([*x86_rep["files"], *arm_rep["files"], *same_rep["files"]]):
        precision = key.split("/")[1].split("-")[0]
        row: dict[str, Any] = {"runtime_arm": (arm_rep["files"].get(key) or same_rep["files"].get(key) or {}).get("runtime"),
                               "runtime_x86": x86_rep["files"].get(key, {}).get("runtime")}
        have = lambda d: f"{key}/embedding" in d  # noqa: E731
        if have(a):
            row["arm_vs_torch"] = _vs_torch(precision, a, a[f"{key}/embedding"], a[f"{key}/logits"])
        if have(b):
            row["x86_vs_torch"] = _vs_torch(precision, b, b[f"{key}/embedding"], b[f"{key}/logits"])
        if have(a) and have(b):
            row["arm_vs_x86"] = _vs(a, b, key)
            if same.any():
                row["arm_vs_x86_identical_crops"] = _vs(a, b, key, same)
        if have(s):
            row["arm_on_x86_crops_vs_torch"] = _vs_torch(precision, s, s[f"{key}/embedding"], s[f"{key}/logits"])
            if have(b):
                row["arm_vs_x86_same_crops"] = _vs(s, b, key)
        files[key] = row
    out = {"faces": arm_rep["faces"], "crops_arm_vs_x86": crop_drift(a["crops"], b["crops"]), "files": files,
           "arm": {k: arm_rep[k] for k in ("machine", "aligned_with", "versions")},
           "x86": {k: x86_rep[k] for k in ("machine", "aligned_with", "versions")}}
    if s and not np.array_equal(s["crops"], b["crops"]):
        raise ValueError("the same-crops ARM run was not fed x86's crops")
    return out
