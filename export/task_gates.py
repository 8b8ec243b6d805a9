"""Task gates: what a user loses with a quantised file, as task-metric deltas to the torch model.

Parity (cosines, top-1 agreement) says how far a file's outputs move; these
gates say what that costs on the tasks (ARCHITECTURE.md, "Metrics"). On labelled
real faces (:mod:`.task_sets`), the file and the torch model are scored alike:

- LFW View 2 accuracy on the folds whose people the checkpoint never saw
  (fold 1 for the shipped models) at the threshold the TORCH model's scores
  give on the other nine folds (a deployed file keeps the float model's
  threshold, and only the reported folds' images need running through the
  file; the threshold uses :attr:`TaskGateConfig.lfw_threshold_pairs` same and
  as many different pairs of each other fold, 0: all), and TAR at FAR 1e-3 over
  the reported folds (its own impostor threshold);
- FER2013 test accuracy (an evenly spaced subset of the test split);
- JAFFE authentication Acc_g (the paper's eq. 8).

A file passes when no delta (file minus torch, in points; Acc_g x 100) is a
LOSS of more than :data:`MAX_DELTA_POINTS` (``two_sided``: when every delta is
within it either way). One-sided by default because the gate is on what a
user loses: on the shipped model the static ONNX file accepted 2 more of LFW
fold 1's 300 genuine pairs at FAR 1e-3 (+0.67) and got 2 more of JAFFE's 244
pairs right (+0.82); TAR moves in steps of 0.33 points there, Acc_g in steps
of 0.41, and both intervals span about +-2 points. Each delta carries a paired
bootstrap confidence interval (the same resampled pairs or faces for both
models); gains are recorded like losses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facelivenet.edge_runtime import metrics
from facelivenet.edge_runtime.errors import FaceLiveError

from .task_sets import FerSet, JaffeSet, LfwSet, Runner, fer_set, jaffe_set, lfw_set, run_crops

log = logging.getLogger(__name__)

MAX_DELTA_POINTS = 0.5
TASK_GATED = ("fp16", "int8")  # precisions whose files must hold the task metrics
CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 1000
DEFAULT_FER_FACES = 2000
DEFAULT_LFW_THRESHOLD_PAIRS = 100  # same (and as many different) pairs per threshold fold
TAR_FAR = 1e-3
TASKS = ("lfw_accuracy", "lfw_tar_at_far_1e-3", "fer2013_accuracy", "jaffe_acc_g")


@dataclass(frozen=True)
class TaskGateConfig:
    """Where the labelled faces are and how the deltas are judged."""

    data: Path
    fer_faces: int = DEFAULT_FER_FACES
    lfw_threshold_pairs: int = DEFAULT_LFW_THRESHOLD_PAIRS
    max_delta_points: float = MAX_DELTA_POINTS
    two_sided: bool = False
    bootstrap: int = BOOTSTRAP_SAMPLES
    confidence: float = CONFIDENCE
    seed: int = 0


@dataclass
class TaskData:
    """The labelled sets found under the data root (None when absent; ``notes`` says why)."""

    lfw: LfwSet | None
    fer: FerSet | None
    jaffe: JaffeSet | None
    notes: list[str]

    @property
    def any(self) -> bool:
        return any(s is not None for s in (self.lfw, self.fer, self.jaffe))


def load_task_data(cfg: TaskGateConfig, pre: Any, trained_on: dict[str, Any], detector: Any, cache_dir: Any,
                   expression_align: tuple[str, int]) -> TaskData:
    """LFW, FER2013 and JAFFE under ``cfg.data``, aligned as the evaluation aligns them."""
    notes: list[str] = []

    def attempt(name: str, load: Callable[[], Any]) -> Any:
        try:
            return load()
        except (FaceLiveError, FileNotFoundError, ValueError) as exc:
            notes.append(f"{name} not measured: {exc}")
            return None

    data = Path(cfg.data)
    lfw = attempt("LFW", lambda: lfw_set(data, pre, trained_on, detector, cache_dir, False))
    if lfw is not None and cfg.lfw_threshold_pairs:
        lfw = threshold_subset(lfw, cfg.lfw_threshold_pairs)
    fer = attempt("FER2013", lambda: fer_set(data, pre, cache_dir, False, expression_align, detector, cfg.fer_faces))
    jaffe = attempt("JAFFE", lambda: jaffe_set(data, pre, detector, cache_dir))
    for note in notes:
        log.warning("task gates: %s", note)
    return TaskData(lfw, fer, jaffe, notes)


@dataclass
class Outputs:
    """One model's outputs on every labelled set."""

    lfw: np.ndarray | None  # embeddings (rows of images outside the reported folds: zeros unless ``all_lfw``)
    fer: np.ndarray | None  # logits
    jaffe: tuple[np.ndarray, np.ndarray] | None


def threshold_subset(s: LfwSet, per_class: int) -> LfwSet:
    """``s`` with every reported-fold pair and, of each other fold, its first ``per_class`` same and
    ``per_class`` different pairs (for the threshold: fewer faces through the torch model)."""
    import dataclasses

    keep = np.isin(s.folds, s.report)
    for fold in np.unique(s.folds[~keep]):
        for same in (True, False):
            rows = np.flatnonzero((s.folds == fold) & (s.labels.astype(bool) == same))[:per_class]
            keep[rows] = True
    return dataclasses.replace(s, left=s.left[keep], right=s.right[keep], labels=s.labels[keep],
                               folds=s.folds[keep])


def used_images(s: LfwSet) -> np.ndarray:
    """Indices of the LFW images some pair of ``s`` uses."""
    return np.unique(np.concatenate([s.left, s.right]))


def reported_images(s: LfwSet) -> np.ndarray:
    """Indices of the LFW images that appear in the reported folds' pairs."""
    test = np.isin(s.folds, s.report)
    return np.unique(np.concatenate([s.left[test], s.right[test]]))


def model_outputs(run: Runner, layout: str, pre: Any, data: TaskData, all_lfw: bool = False) -> Outputs:
    """Run a model (a runner on float batches in ``layout``) on every set of ``data``; of LFW only the
    reported folds' images unless ``all_lfw`` (the torch model: its threshold comes from the other folds)."""
    lfw = None
    if data.lfw is not None:
        rows = used_images(data.lfw) if all_lfw else reported_images(data.lfw)
        emb = run_crops(run, data.lfw.crops[rows], pre, layout)[0]
        lfw = np.zeros((len(data.lfw.crops), emb.shape[1]), emb.dtype)
        lfw[rows] = emb
    fer = run_crops(run, data.fer.crops, pre, layout)[1] if data.fer is not None else None
    jaffe = run_crops(run, data.jaffe.crops, pre, layout) if data.jaffe is not None else None
    return Outputs(lfw, fer, jaffe)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from .parity import cosine_rows

    return cosine_rows(a, b)


def lfw_thresholds(emb: np.ndarray, s: LfwSet) -> np.ndarray:
    """Per pair: the threshold of its fold (reported folds), chosen on the other folds' scores of ``emb``."""
    scores = _cos(emb[s.left], emb[s.right])
    kf = metrics.kfold_verification_accuracy(scores, s.labels, s.folds, test_folds=s.report)
    thr = np.full(len(scores), np.nan)
    for fold, t in zip(kf.folds, kf.thresholds):
        thr[s.folds == fold] = t
    return thr


def _lfw_items(emb: np.ndarray, s: LfwSet, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-pair correctness on the reported folds at thresholds ``thr``, their scores, their labels)."""
    test = np.isin(s.folds, s.report)
    scores = _cos(emb[s.left[test]], emb[s.right[test]])
    labels = s.labels[test].astype(bool)
    return ((scores >= thr[test]) == labels).astype(np.float64), scores, labels


def _jaffe_items(emb: np.ndarray, logits: np.ndarray, s: JaffeSet) -> np.ndarray:
    """Per-pair correctness of the eq. 8 decision (Acc_g is its mean)."""
    from facelivenet.training.evaluation.auth_eval import loso_thresholds

    scores = _cos(emb[s.left], emb[s.right])
    thresholds = loso_thresholds(scores, s.id_true, s.ref_subject, s.probe_subject)
    verified = scores >= np.array([thresholds[r] for r in s.ref_subject])
    expression_ok = logits[s.right].argmax(axis=1) == s.asked  # argmax rule: softmax does not change it
    accept = verified & expression_ok
    return (accept == (s.id_true.astype(bool) & s.ex_true.astype(bool))).astype(np.float64)


def _tar(scores: np.ndarray, labels: np.ndarray) -> float:
    return metrics.tar_at_far(scores, labels, TAR_FAR).tar


def _interval(samples: np.ndarray, confidence: float) -> list[float]:
    lo, hi = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return [round(100 * float(lo), 3), round(100 * float(hi), 3)]


class _Deltas:
    """Paired bootstrap of a statistic of (reference, file) over the same resampled items."""

    def __init__(self, cfg: TaskGateConfig):
        self.cfg = cfg

    def mean_of(self, ref: np.ndarray, new: np.ndarray) -> dict[str, Any]:
        rng = np.random.default_rng(self.cfg.seed)
        diff = new - ref
        idx = rng.integers(0, len(diff), size=(self.cfg.bootstrap, len(diff)))
        return self._entry(float(ref.mean()), float(new.mean()), diff[idx].mean(axis=1), len(diff))

    def tar(self, ref: tuple[np.ndarray, np.ndarray], new: np.ndarray) -> dict[str, Any]:
        """TAR at FAR 1e-3; genuine and impostor pairs resampled separately (their counts fixed)."""
        scores, labels = ref
        rng = np.random.default_rng(self.cfg.seed)
        gen, imp = np.flatnonzero(labels), np.flatnonzero(~labels)
        samples = np.empty(self.cfg.bootstrap)
        for b in range(self.cfg.bootstrap):
            rows = np.concatenate([rng.choice(gen, gen.size), rng.choice(imp, imp.size)])
            samples[b] = _tar(new[rows], labels[rows]) - _tar(scores[rows], labels[rows])
        return self._entry(_tar(scores, labels), _tar(new, labels), samples, int(labels.size))

    def _entry(self, ref: float, new: float, samples: np.ndarray, n: int) -> dict[str, Any]:
        delta = 100 * (new - ref)
        return {"torch": ref, "file": new, "delta_points": round(delta, 3),
                "ci_points": _interval(samples, self.cfg.confidence), "n": n,
                "passed": bool((abs(delta) if self.cfg.two_sided else -delta) <= self.cfg.max_delta_points + 1e-9)}


def task_deltas(cfg: TaskGateConfig, data: TaskData, ref: Outputs, new: Outputs) -> dict[str, Any]:
    """The ``task_gates`` record of one file: per task the torch and file values, the delta in points with
    its confidence interval, and whether it is within the gate."""
    d = _Deltas(cfg)
    tasks: dict[str, Any] = {}
    if data.lfw is not None:
        thr = lfw_thresholds(ref.lfw, data.lfw)  # the torch model's, for both
        c_ref, s_ref, labels = _lfw_items(ref.lfw, data.lfw, thr)
        c_new, s_new, _ = _lfw_items(new.lfw, data.lfw, thr)
        tasks["lfw_accuracy"] = {**d.mean_of(c_ref, c_new), "folds": list(data.lfw.report),
                                 "threshold": "the torch model's, chosen on the other folds"}
        tasks["lfw_tar_at_far_1e-3"] = {**d.tar((s_ref, labels), s_new), "folds": list(data.lfw.report),
                                        "impostor_pairs": int((~labels).sum())}
    if data.fer is not None:
        labels = data.fer.labels
        tasks["fer2013_accuracy"] = {**d.mean_of((ref.fer.argmax(1) == labels).astype(np.float64),
                                                 (new.fer.argmax(1) == labels).astype(np.float64)),
                                     "subset": data.fer.subset or "the whole test split"}
    if data.jaffe is not None:
        tasks["jaffe_acc_g"] = d.mean_of(_jaffe_items(*ref.jaffe, data.jaffe), _jaffe_items(*new.jaffe, data.jaffe))
    bound = f"+-{cfg.max_delta_points}" if cfg.two_sided else f"-{cfg.max_delta_points}"
    failures = [f"{name} delta {t['delta_points']:+.2f} points (95 % CI {t['ci_points'][0]:+.2f} .. "
                f"{t['ci_points'][1]:+.2f}) beyond {bound}"
                for name, t in tasks.items() if not t["passed"]]
    return {"measured": bool(tasks), "max_delta_points": cfg.max_delta_points,
            "rule": "every delta within +-max" if cfg.two_sided else "no loss beyond max (gains reported)",
            "confidence": cfg.confidence,
            "bootstrap_samples": cfg.bootstrap, "tasks": tasks, "notes": list(data.notes),
            "passed": not failures, "failures": failures}


def not_measured(reason: str) -> dict[str, Any]:
    """The record of a file whose task gates could not be measured (no labelled data)."""
    return {"measured": False, "reason": reason, "tasks": {}, "passed": None, "failures": []}


def summary_cells(record: dict[str, Any] | None) -> dict[str, str]:
    """Short table cells per task: ``+0.17 [-0.33, +0.67]``; ``-`` when not measured."""
    tasks = (record or {}).get("tasks") or {}
    out = {}
    for name in TASKS:
        t = tasks.get(name)
        out[name] = (f"{t['delta_points']:+.2f} [{t['ci_points'][0]:+.2f}, {t['ci_points'][1]:+.2f}]"
                     if t else "-")
    return out
