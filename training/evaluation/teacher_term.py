"""The teacher term on faces a Stage 1 run never trained on: how closely the student follows its teacher.

``python -m facelivenet.training.evaluation.teacher_term --checkpoint RUN/model.pt --target-map
RUN/stage1_teacher_target_map.npz --teacher arcface_fp --data ../shared/data``

Held-out faces: the people of LFW fold 1 (``people.txt``; the default recipe trains on folds
2-10) and JAFFE (evaluation only). For each face found by both the runtime's alignment (the
student's crop) and the teacher: the pointwise term ``1 - cos(student, mapped teacher)`` as
training computes it (the run's :class:`~..teacher.TargetMap`, plain view), and the relation
between the two: the mean squared difference of their pairwise cosines and the Pearson
correlation of the pairwise cosines (student vs the teacher's own face + mirror descriptor),
which needs no map and so also compares a checkpoint trained toward another teacher.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.cli_common import HelpFormatter, add_detector_option
from facelivenet.edge_runtime.constants import DETECTOR_ENV
from facelivenet.edge_runtime.photo_align import STATUS_OK

from ..data.face_cache import load_or_build
from ..teacher import TEACHERS, TargetMap, teacher_embeddings
from .auth_protocol import list_jaffe_images
from .lfw_protocol import fold_people
from .report_cli import run_report
from .runner import EvalContext, load_checkpoint
from .teacher_eval import face_vectors

log = logging.getLogger(__name__)


def held_out_paths(data_root: Path, max_lfw: int = 1500) -> dict[str, list[str]]:
    """LFW fold 1's people's images (sorted, the first ``max_lfw``) and every JAFFE image."""
    lfw = data_root / "lfw"
    people = sorted(fold_people(lfw)[0])
    lfw_paths = [str(p) for name in people for p in sorted((lfw / "images" / name).glob("*.jpg"))][:max_lfw]
    jaffe = data_root / "jaffe"
    return {"lfw_fold1": lfw_paths, "jaffe": [str(jaffe / im.path) for im in list_jaffe_images(jaffe)]}


def term_on(ctx: EvalContext, name: str, paths: list[str], teacher: str, target_map: TargetMap | None,
            detector: str | None, cache_dir: str | None) -> dict[str, Any]:
    """The teacher term of ``ctx``'s model on ``paths`` (faces both sides found)."""
    faces = load_or_build(f"teacher-term-{name}", paths, ctx.preprocess, "detect", detector, cache_dir,
                          progress=False)
    views = teacher_embeddings(paths, detector, cache_dir, False, views=2, teacher=teacher)
    full, described = face_vectors(views)
    ok = np.array([s == STATUS_OK for s in faces.status]) & described
    student, _ = ctx.embed_and_classify(faces.crops[ok], name)
    out: dict[str, Any] = {"images": len(paths), "faces_used": int(ok.sum())}
    if target_map is not None:
        mapped = target_map.apply(views[ok][:, 0])
        if mapped.shape[1] == student.shape[1]:
            out["one_minus_cos_mean"] = float(np.mean(1.0 - np.sum(student * mapped, axis=1)))
    i, j = np.triu_indices(int(ok.sum()), 1)
    s_cos = np.sum(student[i] * student[j], axis=1)
    t_cos = np.sum(full[ok][i] * full[ok][j], axis=1)
    out["relation_mse"] = float(np.mean((s_cos - t_cos) ** 2))
    out["relation_pearson"] = float(np.corrcoef(s_cos, t_cos)[0, 1])
    return out


def teacher_term(checkpoint: str, teacher: str, data_root: Path, target_map: str | None = None,
                 detector: str | None = None, cache_dir: str | None = None, max_lfw: int = 1500) -> dict[str, Any]:
    """Held-out teacher term of one checkpoint on LFW fold 1 and JAFFE."""
    ckpt = load_checkpoint(checkpoint)
    trained = ((ckpt.trained_on.get("stage1") or {}).get("provenance") or {}).get("lfw_folds")
    if trained and 1 in trained:
        raise ValueError(f"{checkpoint} trained on LFW fold 1: its people are not held out")
    ctx = EvalContext(ckpt, Path("."), detector, cache_dir, show_progress=False)
    tmap = TargetMap.load(target_map) if target_map else None
    sets = held_out_paths(data_root, max_lfw)
    return {"checkpoint": str(checkpoint), "checkpoint_sha256": ckpt.sha256, "teacher": teacher,
            "target_map": target_map,
            **{name: term_on(ctx, name, paths, teacher, tmap, detector, cache_dir) for name, paths in sets.items()}}


PROG = "python -m facelivenet.training.evaluation.teacher_term"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", action="append", required=True, help="repeatable")
    p.add_argument("--teacher", choices=TEACHERS, required=True)
    p.add_argument("--target-map", default=None, help="a run's stage1_teacher_target_map.npz")
    p.add_argument("--data", required=True, metavar="DIR", help="face data root holding lfw/, jaffe/")
    add_detector_option(p, f"${DETECTOR_ENV}")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--max-lfw", type=int, default=1500)
    p.add_argument("--out", default=None, help="write the JSON here (else stdout)")
    return p


def _report(args: argparse.Namespace) -> dict[str, Any]:
    return {"results": [teacher_term(c, args.teacher, Path(args.data), args.target_map, args.detector, args.cache_dir,
                                     args.max_lfw) for c in args.checkpoint]}


def main(argv: list[str] | None = None) -> int:
    """The module CLI, on the shared runner (ARCHITECTURE.md, "Commands"); returns the exit code."""
    return run_report(PROG, build_parser(), argv, _report)


if __name__ == "__main__":
    sys.exit(main())
