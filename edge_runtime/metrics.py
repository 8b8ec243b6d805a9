"""Verification, classification and face-authentication metrics (pure numpy).

Scores are similarities (cosine): higher means "same person"; a pair is
accepted when ``score >= threshold``. Labels are booleans (True = same person).

Verification
------------
- ``best_threshold``: the threshold maximising accuracy on a set of pairs.
  Candidates are the midpoints between consecutive distinct scores, plus
  ``min - 1`` (accept all) and ``max + 1`` (reject all). Ties in accuracy go to
  the HIGHER threshold (fewer false accepts).
- ``kfold_verification_accuracy``: the LFW View 2 protocol. For each test fold
  the threshold is chosen by ``best_threshold`` on the pairs of all OTHER folds
  and applied to the test fold. Any subset of folds can be the test folds (a
  model trained on the people of folds 2..10 reports fold 1 only); the
  threshold for a test fold is still chosen on every other fold's pairs.
  ``std`` is the population standard deviation (ddof=0) of the per-fold
  accuracies; ``sem`` is the LFW README's standard error, sample std (ddof=1)
  divided by sqrt(number of test folds).
- ``tar_at_far``: FAR(t) = fraction of impostor scores >= t, TAR(t) = fraction
  of genuine scores >= t. The threshold is the smallest impostor score t with
  FAR(t) <= target: at most floor(target * n_impostors) impostors are accepted.
  Ties: impostors with equal scores are accepted or rejected together, so
  when a tie group would cross the budget the threshold moves above the whole
  group (the achieved FAR is then below the target). When even one accepted
  impostor is over budget (target < 1 / n_impostors, or a tie at the top) the
  threshold is the next float64 above the highest impostor score (FAR = 0).
- ``roc_curve``: one point per distinct score, thresholds in decreasing order,
  starting at +inf (fpr = tpr = 0), like scikit-learn without dropping points.

Face authentication (FaceLiveNet paper, eq. 8; ARCHITECTURE.md, "Metrics")
--------------------------------------------------------------------------
Each pair is (reference = a neutral image of the enrolled person, probe,
asked expression). Ground truth: ``id_true`` (probe is the reference's person)
and ``ex_true`` (probe shows the asked expression). Decisions:
``verified = score >= verification threshold`` and ``expression_ok`` (the
probability of the asked expression >= the expression threshold, or the
argmax is the asked expression when no threshold is given). The protocol has
four balanced cells ID-True/False x Ex-True/False.

- ``acc_verif`` = mean(verified == id_true) over all pairs: face verification.
- ``acc_expre`` = mean(expression_ok == ex_true) over all pairs: is the asked
  expression on the probe, whoever the probe is.
- ``acc_live`` = mean(expression_ok == ex_true) over the ID-True pairs only:
  the challenge-response liveness check on the enrolled person's own face,
  i.e. the genuine user doing the asked expression (accept) against the
  genuine face NOT doing it (a photo, a replay, a wrong expression: reject).
  Identity attacks are verification's job, so ID-False pairs are left out;
  with balanced cells this is the mean of the two ID-True cells' accuracies.
- ``acc_g`` = mean(accept == (id_true & ex_true)) over all pairs, with
  ``accept = verified & expression_ok``: the holistic decision. Only the
  ID-True/Ex-True cell should be accepted; the three others must be refused.

``cell_accept_rate`` gives the acceptance rate of the fused decision per cell
(the ID-True/Ex-True entry is the holistic true accept rate, the others are
false accept rates per attack kind).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


# ----------------------------------------------------------------- helpers

def _scores_labels(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if s.size == 0:
        raise ValueError("no scores")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    return s, y.astype(bool)


def verification_accuracy(scores: ArrayLike, labels: ArrayLike, threshold: float) -> float:
    """Fraction of pairs where ``score >= threshold`` equals the label."""
    s, y = _scores_labels(scores, labels)
    return float(np.mean((s >= threshold) == y))


def best_threshold(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """(threshold, accuracy) maximising verification accuracy; ties go to the higher threshold."""
    s, y = _scores_labels(scores, labels)
    distinct = np.unique(s)[::-1]  # descending
    # Accepting the top j distinct values, j = 0 (reject all) .. m (accept all).
    idx = np.searchsorted(-distinct, -s)  # position of each score in `distinct`
    pos_per = np.bincount(idx, weights=y.astype(np.float64), minlength=distinct.size)
    neg_per = np.bincount(idx, weights=(~y).astype(np.float64), minlength=distinct.size)
    tp = np.concatenate([[0.0], np.cumsum(pos_per)])
    fp = np.concatenate([[0.0], np.cumsum(neg_per)])
    correct = tp + (neg_per.sum() - fp)
    j = int(np.argmax(correct))  # first maximum = fewest accepted = highest threshold
    if j == 0:
        threshold = distinct[0] + 1.0
    elif j == distinct.size:
        threshold = distinct[-1] - 1.0
    else:
        threshold = (distinct[j - 1] + distinct[j]) / 2.0
    return float(threshold), float(correct[j] / s.size)


# ------------------------------------------------------------------- k-fold

@dataclass(frozen=True)
class KFoldResult:
    """Per-test-fold accuracies and thresholds of the k-fold protocol, with their summary."""

    folds: tuple[int, ...]
    accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]
    mean: float
    std: float
    sem: float

    def to_dict(self) -> dict:
        return {
            "folds": list(self.folds),
            "accuracies": list(self.accuracies),
            "thresholds": list(self.thresholds),
            "mean": self.mean,
            "std": self.std,
            "sem": self.sem,
        }


def kfold_verification_accuracy(
    scores: ArrayLike,
    labels: ArrayLike,
    folds: ArrayLike,
    test_folds: Sequence[int] | None = None,
) -> KFoldResult:
    """LFW protocol: each test fold is scored with the best threshold of all the other folds.

    ``folds`` gives each pair's fold id; ``test_folds`` (default: every fold, sorted)
    picks the folds reported. Training pairs are always all pairs outside the test fold.
    """
    s, y = _scores_labels(scores, labels)
    f = np.asarray(folds).ravel()
    if f.shape != s.shape:
        raise ValueError(f"folds and scores differ in length: {f.size} vs {s.size}")
    present = sorted(int(v) for v in np.unique(f))
    if len(present) < 2:
        raise ValueError(f"k-fold needs at least two folds, got {present}")
    chosen = present if test_folds is None else [int(v) for v in test_folds]
    missing = [v for v in chosen if v not in present]
    if missing or not chosen:
        raise ValueError(f"test folds {missing or chosen} not among the folds present {present}")
    accs, thresholds = [], []
    for k in chosen:
        test = f == k
        t, _ = best_threshold(s[~test], y[~test])
        thresholds.append(t)
        accs.append(float(np.mean((s[test] >= t) == y[test])))
    arr = np.asarray(accs)
    sem = float(np.std(arr, ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else 0.0
    return KFoldResult(tuple(chosen), tuple(accs), tuple(thresholds), float(arr.mean()), float(arr.std()), sem)


# ------------------------------------------------------------- TAR / ROC

@dataclass(frozen=True)
class TarAtFar:
    """TAR at a target FAR: the threshold, the FAR it reaches and the genuine acceptance rate."""

    target_far: float
    threshold: float
    far: float
    tar: float
    n_genuine: int
    n_impostor: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("target_far", "threshold", "far", "tar", "n_genuine", "n_impostor")}


def tar_at_far(scores: ArrayLike, labels: ArrayLike, far: float) -> TarAtFar:
    """TAR at the smallest impostor-score threshold whose FAR <= ``far`` (see the module docstring)."""
    s, y = _scores_labels(scores, labels)
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"target FAR must be in [0, 1], got {far}")
    genuine, impostor = s[y], s[~y]
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError(f"TAR@FAR needs genuine and impostor pairs (got {genuine.size} and {impostor.size})")
    budget = math.floor(far * impostor.size + 1e-9)  # impostors we may accept
    values = np.unique(impostor)  # ascending
    # Number of impostors accepted at threshold = values[i]: those >= values[i].
    accepted = impostor.size - np.searchsorted(np.sort(impostor), values, side="left")
    ok = np.flatnonzero(accepted <= budget)
    threshold = float(values[ok[0]]) if ok.size else float(np.nextafter(values[-1], np.inf))
    return TarAtFar(
        target_far=float(far),
        threshold=threshold,
        far=float(np.mean(impostor >= threshold)),
        tar=float(np.mean(genuine >= threshold)),
        n_genuine=int(genuine.size),
        n_impostor=int(impostor.size),
    )


def roc_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, thresholds decreasing from +inf."""
    s, y = _scores_labels(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC needs genuine and impostor pairs (got {n_pos} and {n_neg})")
    distinct = np.unique(s)[::-1]
    idx = np.searchsorted(-distinct, -s)
    tp = np.cumsum(np.bincount(idx, weights=y.astype(np.float64), minlength=distinct.size))
    fp = np.cumsum(np.bincount(idx, weights=(~y).astype(np.float64), minlength=distinct.size))
    fpr = np.concatenate([[0.0], fp / n_neg])
    tpr = np.concatenate([[0.0], tp / n_pos])
    thresholds = np.concatenate([[np.inf], distinct])
    return fpr, tpr, thresholds


def roc_auc(fpr: ArrayLike, tpr: ArrayLike) -> float:
    """Area under a ROC curve (trapezoids)."""
    x, yv = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    return float(np.sum(np.diff(x) * (yv[1:] + yv[:-1]) / 2.0))


# -------------------------------------------------------- classification

def _class_arrays(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("no samples")
    return t, p


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of samples where the prediction equals the truth."""
    t, p = _class_arrays(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n: int) -> np.ndarray:
    """Counts [n, n]: row = true class, column = predicted class (class ids 0..n-1)."""
    t, p = _class_arrays(y_true, y_pred)
    t, p = t.astype(np.int64), p.astype(np.int64)
    bad = (t < 0) | (t >= n) | (p < 0) | (p >= n)
    if bad.any():
        raise ValueError(f"class ids must be in 0..{n - 1}; found {sorted(set(t[bad]) | set(p[bad]))[:5]}")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def normalize_rows(matrix: ArrayLike) -> np.ndarray:
    """Each row divided by its sum (rows summing to 0 stay 0): per-class recall on the diagonal."""
    m = np.asarray(matrix, dtype=np.float64)
    sums = m.sum(axis=1, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)


# --------------------------------------------------- face authentication

CELLS = ("ID-True/Ex-True", "ID-True/Ex-False", "ID-False/Ex-True", "ID-False/Ex-False")


def cell_name(id_true: bool, ex_true: bool) -> str:
    """``ID-True/Ex-False`` style name of a protocol cell."""
    return f"ID-{bool(id_true)}/Ex-{bool(ex_true)}"


@dataclass(frozen=True)
class AuthenticationMetrics:
    """The paper's face-authentication accuracies (definitions in the module docstring)."""

    acc_verif: float
    acc_expre: float
    acc_live: float
    acc_g: float
    n_pairs: int
    cell_counts: dict[str, int] = field(default_factory=dict)
    cell_accept_rate: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "acc_verif": self.acc_verif,
            "acc_expre": self.acc_expre,
            "acc_live": self.acc_live,
            "acc_g": self.acc_g,
            "n_pairs": self.n_pairs,
            "cell_counts": dict(self.cell_counts),
            "cell_accept_rate": dict(self.cell_accept_rate),
        }


def expression_decisions(
    probabilities: ArrayLike, asked: ArrayLike, threshold: float | None = None
) -> np.ndarray:
    """Per pair: does the probe show the asked expression?

    ``probabilities`` [N, C] (softmax outputs), ``asked`` [N] class indices. With a
    threshold: P(asked) >= threshold; without: argmax == asked.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    a = np.asarray(asked, dtype=np.int64).ravel()
    if p.ndim != 2 or p.shape[0] != a.size:
        raise ValueError(f"probabilities must be [N, C] with N = len(asked); got {p.shape} and {a.size}")
    if a.size and (a.min() < 0 or a.max() >= p.shape[1]):
        raise ValueError(f"asked indices must be in 0..{p.shape[1] - 1}")
    if threshold is None:
        return p.argmax(axis=1) == a
    return p[np.arange(a.size), a] >= threshold


def authentication_metrics_from_decisions(
    id_true: ArrayLike, ex_true: ArrayLike, verified: ArrayLike, expression_ok: ArrayLike
) -> AuthenticationMetrics:
    """Acc_verif, Acc_expre, Acc_live and Acc_g from per-pair truths and decisions."""
    arrays = [np.asarray(a).ravel().astype(bool) for a in (id_true, ex_true, verified, expression_ok)]
    n = arrays[0].size
    if n == 0 or any(a.size != n for a in arrays):
        raise ValueError(f"need equal, non-zero lengths; got {[a.size for a in arrays]}")
    idt, ext, ver, exo = arrays
    if not idt.any():
        raise ValueError("Acc_live needs ID-True pairs; none given")
    accept = ver & exo
    counts, rates = {}, {}
    for i in (True, False):
        for e in (True, False):
            cell = (idt == i) & (ext == e)
            counts[cell_name(i, e)] = int(cell.sum())
            if cell.any():
                rates[cell_name(i, e)] = float(accept[cell].mean())
    return AuthenticationMetrics(
        acc_verif=float(np.mean(ver == idt)),
        acc_expre=float(np.mean(exo == ext)),
        acc_live=float(np.mean(exo[idt] == ext[idt])),
        acc_g=float(np.mean(accept == (idt & ext))),
        n_pairs=int(n),
        cell_counts=counts,
        cell_accept_rate=rates,
    )


def authentication_metrics(
    id_true: ArrayLike,
    ex_true: ArrayLike,
    scores: ArrayLike,
    verification_threshold: float,
    expression_probabilities: ArrayLike,
    asked: ArrayLike,
    expression_threshold: float | None = None,
) -> AuthenticationMetrics:
    """The face-authentication metrics from identity scores and expression probabilities.

    ``verified = scores >= verification_threshold``; the expression decision is
    :func:`expression_decisions` (probability threshold, or argmax when None).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    verified = s >= verification_threshold
    ok = expression_decisions(expression_probabilities, asked, expression_threshold)
    return authentication_metrics_from_decisions(id_true, ex_true, verified, ok)
