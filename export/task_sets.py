"""Labelled real faces for task metrics: LFW View 2 pairs, FER2013 test, JAFFE authentication pairs.

The sets and the scoring are the evaluation's (``facelive-train evaluate``,
ARCHITECTURE.md, "Metrics"), on the same aligned faces (same face-cache names and
keys), so that a model file and the torch model are scored alike:

- LFW: accuracy on the folds whose people the checkpoint never saw, the
  threshold chosen on the other nine folds; TAR at FAR 1e-3 over those folds;
- FER2013: top-1 accuracy on the test split (or an evenly spaced subset);
- JAFFE: the paper's eq. 8 (Acc_g with leave-one-subject-out thresholds).

Used by the export's task gates (:mod:`.task_gates`) and by ``facelive-bench``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facelivenet.edge_runtime import metrics
from facelivenet.edge_runtime.errors import FaceLiveError

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
CHUNK = 256


@dataclass
class LfwSet:
    crops: np.ndarray
    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    report: tuple[int, ...]
    subset: str | None


@dataclass
class FerSet:
    crops: np.ndarray
    labels: np.ndarray
    private: np.ndarray
    subset: str | None


@dataclass
class JaffeSet:
    """The evaluation's JAFFE authentication pairs (paper eq. 8) as indices into their aligned images."""

    crops: np.ndarray
    left: np.ndarray
    right: np.ndarray
    id_true: np.ndarray
    ex_true: np.ndarray
    asked: np.ndarray
    ref_subject: np.ndarray
    probe_subject: np.ndarray


def lfw_set(data: Path, pre: Any, trained_on: dict[str, Any], detector: Any, cache_dir: Any, quick: bool) -> LfwSet:
    """The LFW pairs and aligned faces the evaluation uses (cached under the same name and key)."""
    from facelivenet.training.data.face_cache import load_or_build
    from facelivenet.training.evaluation.lfw_eval import FALLBACK_FRACTION, QUICK_PAIRS_PER_FOLD, plan_lfw

    root = data / "lfw"
    plan = plan_lfw(trained_on, root, None, quick)
    if not plan.report:
        raise FaceLiveError("every LFW fold holds people the checkpoint trained on: no fold to report")
    pairs = lfw_pairs(root, QUICK_PAIRS_PER_FOLD if quick else None)
    faces = load_or_build("lfw-eval", [str(root / p) for p in pairs.images], pre, "detect", detector, cache_dir,
                          FALLBACK_FRACTION, progress=False)
    return LfwSet(np.asarray(faces.crops), pairs.left, pairs.right, pairs.labels, pairs.folds, plan.report,
                  pairs.subset)


@dataclass
class LfwPairs:
    """View 2 pairs as indices into their distinct images (paths relative to the LFW root)."""

    images: list[str]
    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    subset: str | None


def lfw_pairs(root: Path, per_fold: int | None = None) -> LfwPairs:
    """``root/pairs.txt`` (every pair, or the first ``per_fold`` same + different pairs of each fold)."""
    from facelivenet.training.evaluation.lfw_eval import _subset
    from facelivenet.training.evaluation.lfw_protocol import lfw_pairs as read_pairs

    folds = read_pairs(root)
    if per_fold:
        folds = _subset(folds, per_fold)
    pairs = [p for fold in folds for p in fold]
    images = sorted({p.path1 for p in pairs} | {p.path2 for p in pairs})
    row = {p: i for i, p in enumerate(images)}
    return LfwPairs(images, np.array([row[p.path1] for p in pairs]), np.array([row[p.path2] for p in pairs]),
                    np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]),
                    f"first {per_fold} same + {per_fold} different pairs per fold" if per_fold else None)


def fer_set(data: Path, pre: Any, cache_dir: Any, quick: bool, align: tuple[str, int] = ("center_crop", 0),
            detector: Any = None, count: int | None = None) -> FerSet:
    """FER2013 test images aligned like the checkpoint's Stage 2 and its evaluation (``align``: mode and
    upscale size; quick: the evaluation's evenly spaced subset; ``count``: that many, evenly spaced)."""
    from facelivenet.training.data.face_cache import load_precropped
    from facelivenet.training.data.readers import read_fer2013
    from facelivenet.training.evaluation.fer2013_eval import QUICK_IMAGES, evenly_spaced

    records = read_fer2013(data / "fer2013", "test")
    subset = QUICK_IMAGES if quick else count
    if subset:
        records = [records[i] for i in evenly_spaced(len(records), subset)]
    faces = load_precropped("fer2013-test", [r.path for r in records], pre, align[0], align[1], detector, cache_dir,
                            progress=False)
    private = np.array([Path(r.path).name.startswith("PrivateTest") for r in records])
    return FerSet(np.asarray(faces.crops), np.array([r.label for r in records]), private,
                  f"{len(records)} test images evenly spaced over the sorted list" if subset else None)


def jaffe_set(data: Path, pre: Any, detector: Any, cache_dir: Any) -> JaffeSet:
    """The JAFFE pairs and aligned faces ``facelive-train evaluate`` uses (same cache name and key)."""
    from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
    from facelivenet.training.data.face_cache import load_or_build
    from facelivenet.training.evaluation.auth_eval import FALLBACK_FRACTION
    from facelivenet.training.evaluation.auth_protocol import jaffe_auth_pairs, parse_jaffe_name

    root = data / "jaffe"
    if not root.is_dir():
        raise FaceLiveError(f"{root} does not exist")
    pairs = jaffe_auth_pairs(root)
    images = sorted({p.reference for p in pairs} | {p.probe for p in pairs})
    faces = load_or_build("jaffe", [str(root / p) for p in images], pre, "detect", detector, cache_dir,
                          FALLBACK_FRACTION, progress=False)
    row = {p: i for i, p in enumerate(images)}
    return JaffeSet(np.asarray(faces.crops), np.array([row[p.reference] for p in pairs]),
                    np.array([row[p.probe] for p in pairs]), np.array([p.id_true for p in pairs]),
                    np.array([p.ex_true for p in pairs]),
                    np.array([EXPRESSION_LABELS.index(p.asked_expression) for p in pairs]),
                    np.array([parse_jaffe_name(p.reference)[0] for p in pairs]),
                    np.array([parse_jaffe_name(p.probe)[0] for p in pairs]))


def run_crops(run: Runner, crops: np.ndarray, pre: Any, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, logits) of uint8 crops, normalised in chunks in the file's layout."""
    from .calibration import FaceSet

    embs, logits = [], []
    for i in range(0, len(crops), CHUNK):
        e, l = run(FaceSet(crops[i:i + CHUNK], [], "eval", "").tensor(pre, layout))
        embs.append(e)
        logits.append(l)
    return np.concatenate(embs), np.concatenate(logits)


def lfw_accuracy(emb: np.ndarray, s: LfwSet) -> dict[str, Any]:
    """k-fold accuracy on the reported folds and TAR at FAR 1e-3 over their pairs."""
    from .parity import cosine_rows

    scores = cosine_rows(emb[s.left], emb[s.right])
    kf = metrics.kfold_verification_accuracy(scores, s.labels, s.folds, test_folds=s.report)
    test = np.isin(s.folds, s.report)
    tar = metrics.tar_at_far(scores[test], s.labels[test], 1e-3)
    out = {"accuracy": kf.mean, "folds": list(kf.folds), "pairs_reported": int(test.sum()),
           "tar_at_far_1e-3": tar.tar, "tar_at_far_1e-3_impostor_pairs": tar.n_impostor}
    if s.subset:
        out["quick_subset"] = s.subset
    return out


def fer_accuracy(logits: np.ndarray, s: FerSet) -> dict[str, Any]:
    pred = logits.argmax(axis=1)
    out = {"accuracy": metrics.accuracy(s.labels, pred), "images": int(len(s.labels)),
           "private_test_accuracy": metrics.accuracy(s.labels[s.private], pred[s.private]) if s.private.any()
           else None}
    if s.subset:
        out["quick_subset"] = s.subset
    return out


def jaffe_accuracy(emb: np.ndarray, logits: np.ndarray, s: JaffeSet) -> dict[str, Any]:
    """The paper's eq. 8 on JAFFE exactly as the evaluation scores it (leave-one-subject-out thresholds,
    argmax expression rule)."""
    from .parity import cosine_rows
    from facelivenet.training.evaluation.auth_eval import loso_thresholds

    scores = cosine_rows(emb[s.left], emb[s.right])
    thresholds = loso_thresholds(scores, s.id_true, s.ref_subject, s.probe_subject)
    verified = scores >= np.array([thresholds[r] for r in s.ref_subject])
    z = logits[s.right] - logits[s.right].max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    m = metrics.authentication_metrics_from_decisions(s.id_true, s.ex_true, verified,
                                                      metrics.expression_decisions(probs, s.asked, None))
    return {"acc_g": m.acc_g, "acc_verif": m.acc_verif, "acc_expre": m.acc_expre, "acc_live": m.acc_live,
            "pairs": m.n_pairs}
