"""FER2013 expression accuracy of a checkpoint (ARCHITECTURE.md, "Metrics").

- Images: the test split, ``test/<emotion>/{PublicTest,PrivateTest}_*.jpg``
  (7,178 on the official data), aligned exactly like the checkpoint's Stage 2
  training images (its ``data.expression_align``: the centre crop of
  ``preprocess.crop_fraction``, or YuNet landmarks on the upscaled image with the
  centre crop as counted fallback), one forward pass each.
- Prediction: argmax over the seven canonical expressions.
- ``accuracy``: the whole test split; ``private_test_accuracy``: PrivateTest
  alone (and ``public_test_accuracy``). A row-normalised confusion matrix
  (% per true class, like the paper's Fig. 4) goes to ``fer2013_confusion.png``.
- ``--quick``: :data:`QUICK_IMAGES` images evenly spaced over the sorted list
  (every emotion folder, both PublicTest and PrivateTest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.labels import EXPRESSION_LABELS

from ..data.readers import read_fer2013
from facelivenet.edge_runtime import metrics
from . import plots
from .runner import EvalContext

QUICK_IMAGES = 300


def required_files(fer_root: Path) -> list[Path]:
    return [fer_root / "test"]


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n) (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def evaluate_fer2013(ctx: EvalContext, fer_root: Path) -> dict[str, Any]:
    """The ``fer2013`` entry of the evaluation JSON."""
    records = read_fer2013(fer_root, "test")
    if ctx.quick:
        records = [records[i] for i in evenly_spaced(len(records), QUICK_IMAGES)]
    faces = ctx.align_precropped("fer2013-test", [r.path for r in records])
    _, probs = ctx.embed_and_classify(faces.crops, "fer2013 test")
    y_true = np.array([r.label for r in records])
    y_pred = probs.argmax(axis=1)
    private = np.array([Path(r.path).name.startswith("PrivateTest") for r in records])
    public = np.array([Path(r.path).name.startswith("PublicTest") for r in records])
    n = len(EXPRESSION_LABELS)
    cm = metrics.confusion_matrix(y_true, y_pred, n)
    png = plots.plot_confusion(cm, EXPRESSION_LABELS, ctx.out_dir / "fer2013_confusion.png", "FER2013 test")
    recall = np.diag(metrics.normalize_rows(cm))
    result: dict[str, Any] = {
        "accuracy": metrics.accuracy(y_true, y_pred),
        "private_test_accuracy": metrics.accuracy(y_true[private], y_pred[private]) if private.any() else None,
        "public_test_accuracy": metrics.accuracy(y_true[public], y_pred[public]) if public.any() else None,
        "images": len(records),
        "private_test_images": int(private.sum()),
        "public_test_images": int(public.sum()),
        "labels": list(EXPRESSION_LABELS),
        "per_class_recall": {label: float(r) for label, r in zip(EXPRESSION_LABELS, recall)},
    }
    return ctx.expression_result(result, cm, png, faces,
                                 f"{len(records)} test images evenly spaced over the sorted list")
