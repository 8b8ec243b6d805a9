"""The paper's face-authentication protocol (eq. 8) on JAFFE (ARCHITECTURE.md, "Metrics").

JAFFE is used by no training, so every number here is on unseen people.

Protocol
--------
- Pairs: :func:`auth_protocol.jaffe_auth_pairs` (seed 0; its docstring documents
  the construction): reference = a subject's first neutral image, probe =
  another image, asked expression happy or surprise; four balanced cells
  ID-True/False x Ex-True/False (61 pairs each, 244 in all, on the full JAFFE).
  The list, with every score and decision, is written to ``auth_pairs.csv``.
- Faces: YuNet + alignment; an image without a detected face gets a centre crop
  of :data:`FALLBACK_FRACTION` of the image (the JSON counts them).
- Verification: cosine similarity of the reference and probe embeddings,
  accepted when >= the threshold. The threshold is never tuned on the pairs it
  scores: leave-one-subject-out, the threshold for the pairs whose reference is
  subject S is the best-accuracy threshold (:func:`metrics.best_threshold`) on
  every pair in which neither image shows S.
- Expression: the probe shows the asked expression when the argmax of its seven
  expression probabilities is the asked one (no tuned parameter), or, with
  ``--auth-expression-threshold P``, when P(asked) >= P.
- Metrics: Acc_verif, Acc_expre, Acc_live, Acc_g as defined in
  :mod:`metrics` (authentication_metrics_from_decisions), with the per-cell
  acceptance rates of the fused decision.
- Beside it, ``all_pairs_verification``: ROC AUC and TAR at FAR 1 % / 0.1 % over
  every pair of JAFFE images (same subject across all expressions vs different
  subjects; 2,166 + 20,412 pairs on the full set).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.constants import DEFAULT_CHALLENGE
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS

from facelivenet.edge_runtime import metrics
from .auth_protocol import cell_counts, jaffe_auth_pairs, list_jaffe_images, parse_jaffe_name
from .runner import EvalContext, run_pairs

FALLBACK_FRACTION = 0.7


def required_files(jaffe_root: Path) -> list[Path]:
    return [jaffe_root]


def loso_thresholds(scores: np.ndarray, id_true: np.ndarray, ref_subject: np.ndarray,
                    probe_subject: np.ndarray) -> dict[str, float]:
    """Reference subject -> verification threshold chosen on the pairs that do not involve that subject."""
    out = {}
    for s in sorted(set(ref_subject.tolist())):
        train = (ref_subject != s) & (probe_subject != s)
        if not train.any():
            raise ValueError(f"leave-one-subject-out: no pair without subject {s} to choose a threshold on")
        out[s], _ = metrics.best_threshold(scores[train], id_true[train])
    return out


ALL_PAIRS_FARS = (1e-2, 1e-3)


def all_pairs_verification(ctx: EvalContext, jaffe_root: Path) -> dict[str, Any]:
    """Verification on EVERY pair of JAFFE images: same subject (any two expressions) vs different subjects.

    The closest thing in the data to what a session sees: the same person across expressions.
    ROC AUC and TAR at FAR 1 % and 0.1 % over all pairs; no threshold is tuned, so nothing is
    fitted on the pairs scored.
    """
    images = list_jaffe_images(jaffe_root)
    faces = ctx.align("jaffe", [str(jaffe_root / im.path) for im in images], "detect", FALLBACK_FRACTION)
    emb, _ = ctx.embed_and_classify(faces.crops, "jaffe all pairs")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    i, j = np.triu_indices(len(images), 1)
    scores = np.sum(emb[i] * emb[j], axis=1).astype(np.float64)
    subject = np.array([im.subject for im in images])
    same = subject[i] == subject[j]
    fpr, tpr, _ = metrics.roc_curve(scores, same)
    tar = {f"{far:.0e}".replace("e-0", "e-"): metrics.tar_at_far(scores, same, far) for far in ALL_PAIRS_FARS}
    return {
        "images": len(images),
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
        "roc_auc": metrics.roc_auc(fpr, tpr),
        "tar_at_far": {k: {"tar": v.tar, "far": v.far, "threshold": v.threshold} for k, v in tar.items()},
        "genuine_mean_cosine": float(scores[same].mean()),
        "impostor_mean_cosine": float(scores[~same].mean()),
    }


def evaluate_auth(ctx: EvalContext, jaffe_root: Path, expression_threshold: float | None = None) -> dict[str, Any]:
    """The ``authentication_jaffe`` entry of the evaluation JSON."""
    pairs = jaffe_auth_pairs(jaffe_root)
    if not pairs:
        raise ValueError(f"{jaffe_root}: no authentication pairs could be built (no subject with a neutral image?)")
    out = run_pairs(ctx, "jaffe", jaffe_root, [p.reference for p in pairs], [p.probe for p in pairs], FALLBACK_FRACTION)
    scores, faces = out.scores, out.faces
    id_true = np.array([p.id_true for p in pairs])
    ex_true = np.array([p.ex_true for p in pairs])
    ref_subject = np.array([parse_jaffe_name(p.reference)[0] for p in pairs])
    probe_subject = np.array([parse_jaffe_name(p.probe)[0] for p in pairs])
    thresholds = loso_thresholds(scores, id_true, ref_subject, probe_subject)
    pair_threshold = np.array([thresholds[s] for s in ref_subject])
    verified = scores >= pair_threshold
    asked = np.array([EXPRESSION_LABELS.index(p.asked_expression) for p in pairs])
    probe_probs = out.right_probabilities
    expression_ok = metrics.expression_decisions(probe_probs, asked, expression_threshold)
    m = metrics.authentication_metrics_from_decisions(id_true, ex_true, verified, expression_ok)

    csv_path = ctx.out_dir / "auth_pairs.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["reference", "probe", "asked_expression", "cell", "id_true", "ex_true", "score",
                    "verification_threshold", "verified", "p_asked", "predicted_expression", "expression_ok",
                    "accept"])
        for k, p in enumerate(pairs):
            w.writerow([p.reference, p.probe, p.asked_expression, p.cell, int(p.id_true), int(p.ex_true),
                        f"{scores[k]:.6f}", f"{pair_threshold[k]:.6f}", int(verified[k]),
                        f"{probe_probs[k, asked[k]]:.6f}", EXPRESSION_LABELS[int(probe_probs[k].argmax())],
                        int(expression_ok[k]), int(verified[k] and expression_ok[k])])
    rule = ("argmax of the expression probabilities is the asked expression" if expression_threshold is None
            else f"P(asked expression) >= {expression_threshold}")
    return {
        "acc_verif": m.acc_verif,
        "acc_expre": m.acc_expre,
        "acc_live": m.acc_live,
        "acc_g": m.acc_g,
        "pairs": m.n_pairs,
        "cell_counts": cell_counts(pairs),
        "cell_accept_rate": m.cell_accept_rate,
        "asked_expressions": list(DEFAULT_CHALLENGE),
        "verification_thresholds": thresholds,
        "threshold_selection": "leave-one-subject-out: pairs of reference subject S use the best-accuracy cosine "
                               "threshold on the pairs in which neither image shows S",
        "expression_rule": rule,
        "expression_threshold": expression_threshold,
        "faces": faces.counts(),
        "pairs_csv": csv_path.name,
        "all_pairs_verification": all_pairs_verification(ctx, jaffe_root),
    }
