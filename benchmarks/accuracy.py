"""Parity and task accuracy of each model file on real faces (needs ``--data``).

Per file, against the torch model of the checkpoint the bundle was exported
from (ARCHITECTURE.md, "Metrics"):

- parity: :func:`facelivenet.export.parity.measure` on the held-out parity
  faces (embedding cosine mean/min, expression top-1 agreement) and the
  export's gate for the file's precision;
- accuracy: LFW View 2 on the folds whose people the checkpoint never saw
  (the plan of :func:`facelivenet.training.evaluation.lfw_eval.plan_lfw`;
  threshold from the other nine folds; the same aligned faces as
  ``facelive-train evaluate``) and FER2013 test accuracy (centre crops, as
  the evaluation does). ``--quick`` uses the evaluation's quick subsets.

The sets and their scoring live in :mod:`facelivenet.export.task_sets` (the export's task gates use them too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.export.task_sets import (FerSet, JaffeSet, LfwPairs, LfwSet, Runner, fer_accuracy, fer_set,  # noqa: F401
                                          jaffe_accuracy, jaffe_set, lfw_accuracy, lfw_pairs, lfw_set, run_crops)

log = logging.getLogger(__name__)


@dataclass
class EvalSets:
    """Everything a file is measured on; a set is None when its data is absent (``notes`` says why)."""

    pre: Any  # PreprocessConfig
    parity: Any  # export.calibration.FaceSet | None
    lfw: LfwSet | None
    fer: FerSet | None
    notes: list[str]
    jaffe: JaffeSet | None = None

    def parity_only(self) -> "EvalSets":
        """The same sets without the task-accuracy ones."""
        return EvalSets(self.pre, self.parity, None, None, self.notes, None)


def load_eval_sets(data: Path, pre: Any, parity_faces: Any, trained_on: dict[str, Any], detector: Any,
                   cache_dir: Any, quick: bool, expression_align: tuple[str, int] = ("center_crop", 0)) -> EvalSets:
    """The LFW and FER2013 sets that exist under ``data`` (a missing one is noted, not fatal)."""
    notes: list[str] = []
    lfw = fer = None
    try:
        lfw = lfw_set(data, pre, trained_on, detector, cache_dir, quick)
    except FaceLiveError as exc:
        notes.append(f"LFW accuracy skipped: {exc}")
    try:
        fer = fer_set(data, pre, cache_dir, quick, expression_align, detector)
    except FaceLiveError as exc:
        notes.append(f"FER2013 accuracy skipped: {exc}")
    jaffe = None
    try:
        jaffe = jaffe_set(data, pre, detector, cache_dir)
    except FaceLiveError as exc:
        notes.append(f"JAFFE Acc_g skipped: {exc}")
    for note in notes:
        log.warning("%s", note)
    return EvalSets(pre, parity_faces, lfw, fer, notes, jaffe)


def add_deltas(accuracy: dict[str, Any], torch_accuracy: dict[str, Any]) -> None:
    """``delta_vs_torch``: this file's task numbers minus the torch model's on the same sets."""
    keys = {"lfw": "accuracy", "fer2013": "accuracy", "authentication_jaffe": "acc_g"}
    delta = {task: accuracy[task][k] - torch_accuracy[task][k] for task, k in keys.items()
             if k in (accuracy.get(task) or {}) and k in (torch_accuracy.get(task) or {})}
    if delta:
        accuracy["delta_vs_torch"] = delta


def parity_and_accuracy(run: Runner, layout: str, precision: str | None, sets: EvalSets,
                        reference: tuple[np.ndarray, np.ndarray] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parity, accuracy) of one model; ``reference`` None for the torch model itself (no parity)."""
    from facelivenet.export import parity as parity_mod

    parity: dict[str, Any] = {}
    if reference is not None and sets.parity is not None:
        emb, logits = run(sets.parity.tensor(sets.pre, layout))
        parity = parity_mod.gated(precision, reference[0], reference[1], emb, logits)
    accuracy: dict[str, Any] = {}
    if sets.lfw is not None:
        emb, _ = run_crops(run, sets.lfw.crops, sets.pre, layout)
        accuracy["lfw"] = lfw_accuracy(emb, sets.lfw)
    if sets.fer is not None:
        _, logits = run_crops(run, sets.fer.crops, sets.pre, layout)
        accuracy["fer2013"] = fer_accuracy(logits, sets.fer)
    if sets.jaffe is not None:
        emb, logits = run_crops(run, sets.jaffe.crops, sets.pre, layout)
        accuracy["authentication_jaffe"] = jaffe_accuracy(emb, logits, sets.jaffe)
    return parity, accuracy
