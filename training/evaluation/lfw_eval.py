"""LFW View 2 verification of a checkpoint (ARCHITECTURE.md, "Metrics").

Protocol
--------
- Pairs: ``pairs.txt``, 10 folds x (300 same + 300 different). Faces are found
  with YuNet and aligned to the checkpoint's template; an image where no face is
  found gets a centre crop of :data:`FALLBACK_FRACTION` of the image (about the
  box an aligned face covers in deep-funneled LFW), so every pair is scored. The
  JSON says how many images fell back.
- Score: cosine similarity of the two embeddings (one forward pass per image).
- Unseen folds only: fold k is *reportable* when none of the people named in
  fold k's pairs is among the checkpoint's Stage 1 identities
  (``trained_on.stage1.classes``, plus every person of the ``people.txt`` folds
  listed in ``trained_on.stage1.provenance.lfw_folds``). By default every
  reportable fold is reported; asking for an overlapping fold with
  ``--lfw-folds`` is refused, naming the fold and how many trained people it
  holds. A fold is never silently counted.
- Accuracy: for each reported fold, the threshold maximising accuracy on the
  pairs of the other nine folds
  (:func:`metrics.kfold_verification_accuracy` with ``test_folds``), applied to
  the fold. ``accuracy`` is the mean over the reported folds, ``accuracy_std``
  their population std (ddof 0). The nine threshold folds may hold trained
  people; that is the View 2 protocol (only the test fold must be unseen).
- TAR at FAR = 1e-3 over the pooled pairs of the reported folds
  (:func:`metrics.tar_at_far`); with 300 impostor pairs per fold a FAR of 1e-3
  allows no accepted impostor below 1,000 impostors, so the JSON states the
  number of impostor pairs it rests on. ROC PNG of the same pairs.
- A checkpoint whose Stage 1 was distilled from a teacher network
  (``provenance.teacher``) gets ``stage1_teacher`` and ``teacher_caveat`` in
  its entry: the teacher's own training data is not checked against the folds.
- ``--quick``: the first :data:`QUICK_PAIRS_PER_FOLD` same and as many different
  pairs of every fold (the threshold still comes from the other folds), and only
  the first reportable fold unless folds are named.
"""

from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from facelivenet.edge_runtime.errors import FaceLiveError

from facelivenet.edge_runtime import metrics
from . import plots
from .lfw_protocol import Pair, fold_people, lfw_pairs, pairs_people
from .runner import EvalContext, run_pairs

log = logging.getLogger(__name__)

FALLBACK_FRACTION = 0.55
QUICK_PAIRS_PER_FOLD = 15  # same pairs and as many different pairs per fold
TARGET_FAR = 1e-3


class FoldOverlapError(FaceLiveError):
    """An LFW fold asked for holds people the checkpoint was trained on."""


def required_files(lfw_root: Path) -> list[Path]:
    return [lfw_root / "pairs.txt", lfw_root / "people.txt", lfw_root / "images"]


def trained_people(trained_on: dict[str, Any], lfw_root: Path) -> tuple[set[str], bool]:
    """(names the checkpoint's Stage 1 trained on, whether the checkpoint records them)."""
    stage1 = (trained_on or {}).get("stage1") or {}
    # a Stage 1 on several identity folders names its classes "<source>/<person>"
    names = {str(n).rsplit("/", 1)[-1] for n in stage1.get("classes") or []}
    known = "classes" in stage1 and stage1.get("classes") is not None
    prov = stage1.get("provenance") or {}
    folds = list(prov.get("lfw_folds") or [])
    for source in prov.get("sources") or []:
        folds += source.get("lfw_folds") or []
    if folds:
        people = fold_people(lfw_root)
        for f in folds:
            if 1 <= int(f) <= len(people):
                names |= people[int(f) - 1]
        known = True
    return names, known


def fold_overlaps(folds: Sequence[Sequence[Pair]], trained: set[str]) -> dict[int, int]:
    """Fold number -> how many of the people in its pairs were trained on."""
    return {k + 1: len(pairs_people(list(fold)) & trained) for k, fold in enumerate(folds)}


def select_folds(overlaps: dict[int, int], requested: Sequence[int] | None, quick: bool) -> list[int]:
    """The folds to report: the requested ones (each must be unseen) or every unseen fold."""
    if requested:
        bad = [f for f in requested if f not in overlaps]
        if bad:
            raise ValueError(f"--lfw-folds {bad} out of range 1..{len(overlaps)}")
        seen = [f for f in requested if overlaps[f]]
        if seen:
            detail = "; ".join(f"fold {f} contains {overlaps[f]} people the checkpoint trained on" for f in seen)
            unseen = [f for f, n in overlaps.items() if n == 0]
            raise FoldOverlapError(f"refusing LFW {detail}; reportable (unseen) folds: {unseen or 'none'}")
        return sorted(set(int(f) for f in requested))
    unseen = [f for f, n in sorted(overlaps.items()) if n == 0]
    return unseen[:1] if quick else unseen


def _subset(folds: list[list[Pair]], per_fold: int) -> list[list[Pair]]:
    out = []
    for fold in folds:
        same = [p for p in fold if p.same][:per_fold]
        diff = [p for p in fold if not p.same][:per_fold]
        out.append(same + diff)
    return out


@dataclass(frozen=True)
class LfwPlan:
    """Which folds an LFW evaluation reports, decided before any image is read."""

    root: Path
    report: tuple[int, ...]
    excluded: dict[str, int]  # fold -> trained people among its pairs
    trained_recorded: bool


def plan_lfw(trained_on: dict[str, Any], lfw_root: Path, requested_folds: Sequence[int] | None,
             quick: bool) -> LfwPlan:
    """Check the fold request against the checkpoint's identities (raises FoldOverlapError)."""
    trained, known = trained_people(trained_on, lfw_root)
    if not known:
        log.warning("the checkpoint records no Stage 1 identities: every LFW fold is treated as unseen")
    overlaps = fold_overlaps(lfw_pairs(lfw_root), trained)
    report = select_folds(overlaps, requested_folds, quick)
    excluded = {str(f): n for f, n in overlaps.items() if n}
    return LfwPlan(lfw_root, tuple(report), excluded, known)


def evaluate_lfw(ctx: EvalContext, plan: LfwPlan) -> dict[str, Any]:
    """The ``lfw`` entry of the evaluation JSON for the folds of ``plan``."""
    lfw_root, report, excluded = plan.root, list(plan.report), plan.excluded
    if not report:
        raise ValueError("evaluate_lfw: the plan reports no fold (every fold overlaps the training identities)")
    all_folds = lfw_pairs(lfw_root)
    folds = _subset(all_folds, QUICK_PAIRS_PER_FOLD) if ctx.quick else all_folds
    pairs = [p for fold in folds for p in fold]
    out = run_pairs(ctx, "lfw-eval", lfw_root, [p.path1 for p in pairs], [p.path2 for p in pairs], FALLBACK_FRACTION)
    scores, faces = out.scores, out.faces
    labels = np.array([p.same for p in pairs])
    fold_ids = np.array([p.fold for p in pairs])

    kf = metrics.kfold_verification_accuracy(scores, labels, fold_ids, test_folds=report)
    test = np.isin(fold_ids, report)
    tar = metrics.tar_at_far(scores[test], labels[test], TARGET_FAR)
    fpr, tpr, _ = metrics.roc_curve(scores[test], labels[test])
    roc_png = plots.plot_roc(fpr, tpr, ctx.out_dir / "lfw_roc.png",
                             f"LFW View 2, fold{'s' if len(report) > 1 else ''} {', '.join(map(str, report))}")
    result: dict[str, Any] = {
        "accuracy": kf.mean,
        "accuracy_std": kf.std,
        "tar_at_far_1e-3": tar.tar,
        "folds": list(kf.folds),
        "fold_accuracies": list(kf.accuracies),
        "fold_thresholds": list(kf.thresholds),
        "accuracy_sem": kf.sem,
        "tar_at_far_1e-3_impostor_pairs": tar.n_impostor,
        "tar_at_far_1e-3_detail": tar.to_dict(),
        "roc_auc": metrics.roc_auc(fpr, tpr),
        "pairs_reported": int(test.sum()),
        "pairs_scored": int(len(pairs)),
        "threshold_selection": "per reported fold: the cosine threshold with the best accuracy on the pairs "
                               "of the other nine folds",
        "excluded_folds": excluded,
        "trained_identities_recorded": plan.trained_recorded,
        "faces": faces.counts(),
        "roc_png": roc_png.name,
    }
    teacher = ((ctx.ckpt.trained_on.get("stage1") or {}).get("provenance") or {}).get("teacher")
    if teacher:
        name = teacher.get("name", teacher) if isinstance(teacher, dict) else teacher
        result["stage1_teacher"] = teacher
        result["teacher_caveat"] = (f"Stage 1 was distilled from {name}; the unseen-fold check covers the checkpoint's "
                                    "own training identities only, not the teacher's training data (which may hold "
                                    "LFW people)")
        log.info("lfw: %s", result["teacher_caveat"])  # a caveat recorded in the JSON, not a fault
    if ctx.quick:
        result["quick_subset"] = f"first {QUICK_PAIRS_PER_FOLD} same + {QUICK_PAIRS_PER_FOLD} different pairs per fold"
    return result
