"""CelebA crops with identity labels, cleaned by a teacher, laid out as identity folders for Stage 1.

``python -m facelivenet.training.data.celeba --images DIR --identities identity_CelebA.txt
--exclude ../shared/data/celeba_exclude.txt --out OUT --teacher arcface_fp``

reads the crops present in ``DIR`` (e.g. ``000001.jpg``..``010000.jpg``), their identity
numbers from ``identity_CelebA.txt`` (``<file> <identity>`` lines), leaves out every excluded
identity (people of the evaluation sets), describes each face with the teacher, cleans the
labels (``relabel.clean_identities``) and writes ``OUT/images/celeba-<identity>/<file>``
as symbolic links to the crops (nothing is copied) plus ``OUT/relabel.json``: what was
dropped or merged, the thresholds and the teacher. The images are never committed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from facelivenet.edge_runtime.errors import DatasetLayoutError

from .relabel import clean_identities

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_identities(path: str | Path) -> dict[str, int]:
    """``{file name: identity number}`` from ``identity_CelebA.txt`` (a header line ``img label`` is allowed)."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or (lineno == 1 and not fields[-1].isdigit()):
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise DatasetLayoutError(f"{path}:{lineno}: expected '<file> <identity number>', got {line!r}")
        out[fields[0]] = int(fields[1])
    return out


def read_exclude(path: str | Path) -> set[int]:
    """Identity numbers, one a line; ``#`` starts a comment."""
    ids = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.add(int(line))
    return ids


def list_labelled(images_dir: str | Path, identities: dict[str, int], exclude: set[int]) -> tuple[list[str], np.ndarray, dict]:
    """Sorted image paths with a known, not excluded identity, their identity numbers, and the counts."""
    folder = Path(images_dir)
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: not a folder of CelebA crops")
    files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetLayoutError(f"{folder}: no images")
    unlabelled = [f for f in files if f not in identities]
    excluded = [f for f in files if f in identities and identities[f] in exclude]
    kept = [f for f in files if f in identities and identities[f] not in exclude]
    counts = {"images_present": len(files), "images_without_identity": len(unlabelled),
              "images_excluded": len(excluded), "identities_excluded": len({identities[f] for f in excluded}),
              "images_listed": len(kept), "identities_listed": len({identities[f] for f in kept})}
    return [str(folder / f) for f in kept], np.array([identities[f] for f in kept], np.int64), counts


def write_folders(paths: list[str], labels: np.ndarray, out_dir: Path, min_images: int) -> dict:
    """``out_dir/images/celeba-<label>/<file>`` links for each kept image of an identity with >= ``min_images``."""
    images = out_dir / "images"
    if images.exists():
        raise DatasetLayoutError(f"{images} exists; write the cleaned folders into a new --out")
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    big = set(ids[counts >= min_images].tolist())
    n = 0
    for path, lab in zip(paths, labels):
        if lab in big:
            dest = images / f"celeba-{lab}" / Path(path).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.abspath(path), dest)
            n += 1
    return {"min_images_per_identity": min_images, "identities_written": len(big), "images_written": n}


def prepare(images_dir: str, identities_txt: str, exclude_txt: str, out_dir: str, teacher: str, detector: str | None,
            cache_dir: str | None, outlier_cosine: float, merge_cosine: float, min_images: int = 2,
            upscale_to: int = 224, progress: bool = True) -> dict:
    """List, describe, clean and lay out the CelebA crops; returns (and writes) the report."""
    from ..evaluation.teacher_eval import face_vectors
    from ..teacher import teacher_embeddings, teacher_record

    paths, labels, counts = list_labelled(images_dir, read_identities(identities_txt), read_exclude(exclude_txt))
    views = teacher_embeddings(paths, detector, cache_dir, progress, upscale_to=upscale_to, views=2, teacher=teacher)
    vectors, _ = face_vectors(views)
    result = clean_identities(vectors, labels, outlier_cosine, merge_cosine)
    out = Path(out_dir)
    written = write_folders(paths, result.labels, out, min_images)
    report = {"images_dir": str(images_dir), "identities_file": str(identities_txt), "exclude_file": str(exclude_txt),
              "teacher": teacher_record(teacher), "upscale_to": upscale_to,
              "thresholds": {"outlier_cosine": outlier_cosine, "merge_cosine": merge_cosine},
              **counts, "cleaning": result.summary(), "written": written,
              "outlier_files": [Path(paths[k]).name for k in result.outliers], "merged_identities": result.merges}
    (out / "relabel.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    log.info("celeba: %s", {**counts, **result.summary(), **written})
    return report


def main(argv: list[str] | None = None) -> int:
    """Prepare the CelebA identity folders. Returns the exit code."""
    from facelivenet.edge_runtime.cli_common import add_detector_option, add_json_flag, add_log_options
    from facelivenet.edge_runtime.cli_runner import run_command

    prog = "python -m facelivenet.training.data.celeba"
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--images", required=True)
    p.add_argument("--identities", required=True)
    p.add_argument("--exclude", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--teacher", default="arcface_fp")
    add_detector_option(p)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--outlier-cosine", type=float, required=True)
    p.add_argument("--merge-cosine", type=float, required=True)
    p.add_argument("--min-images", type=int, default=2)
    p.add_argument("--upscale-to", type=int, default=224)
    add_json_flag(p)
    add_log_options(p)

    def run(args: argparse.Namespace):
        result = prepare(args.images, args.identities, args.exclude, args.out, args.teacher, args.detector,
                         args.cache_dir, args.outlier_cosine, args.merge_cosine, args.min_images, args.upscale_to)
        return 0, result, f"prepared {args.out}"

    return run_command(prog, p, argv, run, user_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
