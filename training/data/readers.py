"""Readers that list the images of each public data set with their labels.

They only list files (no decoding): the face cache decodes, detects and aligns
once. Each reader raises DatasetLayoutError naming the path and the layout it
expected when a folder is missing or empty. JAFFE's file names
(``KA.HA1.29.tiff``) are read by
:func:`facelivenet.training.evaluation.auth_protocol.list_jaffe_images`, next to
the authentication protocol that uses them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS, canonical_label

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".pgm", ".webp"}


@dataclass(frozen=True)
class ImageRecord:
    """One image: its path, integer label and the group it belongs to (identity or subject)."""

    path: str
    label: int
    group: str


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


UNLABELLED = -1  # the label of an image that belongs to no class (teacher-only rows in Stage 1)


def read_image_tree(root: str | Path) -> list[ImageRecord]:
    """Every image under ``root`` (recursively, sorted), unlabelled: the teacher-only faces of Stage 1."""
    root = _require_dir(root, "ROOT/**/<image>.jpg (any depth)")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DatasetLayoutError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [ImageRecord(str(p), UNLABELLED, "") for p in paths]


def _require_dir(root: str | Path, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"data folder {root} does not exist; expected layout: {layout}")
    return root


def read_identity_folders(
    root: str | Path,
    include: set[str] | None = None,
    min_images: int = 1,
    max_identities: int = 0,
    count_skipped: bool = False,
) -> tuple[list[ImageRecord], list[str]] | tuple[list[ImageRecord], list[str], int]:
    """``root/<identity>/*.jpg`` (CASIA-WebFace, MS1M, LFW's images/) -> records and class names.

    ``include`` keeps only those identities (e.g. the people of some LFW folds);
    identities with fewer than ``min_images`` images are dropped; ``max_identities``
    keeps the first N (sorted) for quick runs. With ``count_skipped`` a third value is
    returned: how many identities had too few images.
    """
    layout = "ROOT/<identity>/<image>.jpg (one folder per person)"
    root = _require_dir(root, layout)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and (include is None or p.name in include))
    names: list[str] = []
    records: list[ImageRecord] = []
    too_few = 0
    for folder in folders:
        images = _images_in(folder)
        if len(images) < min_images:
            too_few += 1
            continue
        if max_identities and len(names) >= max_identities:
            break
        label = len(names)
        names.append(folder.name)
        records += [ImageRecord(str(p), label, folder.name) for p in images]
    if not records:
        raise DatasetLayoutError(
            f"no identity with >= {min_images} images under {root}"
            + (f" among {len(include)} requested identities" if include is not None else "")
            + f"; expected layout: {layout}"
        )
    log.info("identity folders %s: %d identities, %d images (%d with fewer than %d images skipped)", root, len(names),
             len(records), too_few, min_images)
    return (records, names, too_few) if count_skipped else (records, names)


def read_expression_folders(root: str | Path, name_filter: str = "") -> list[ImageRecord]:
    """``root/<emotion>/*`` with emotion folder names mapped to the canonical labels.

    Folders outside the seven labels (CK+'s ``contempt``) are skipped. ``name_filter``
    keeps files whose name starts with it (FER2013's ``PrivateTest``).
    """
    layout = "ROOT/<emotion>/<image> with emotion in angry|disgust|fear|happy|neutral|sad|surprise (or anger, sadness)"
    root = _require_dir(root, layout)
    records: list[ImageRecord] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = canonical_label(folder.name)
        if label is None:
            log.info("skipping %s: not one of the canonical expressions", folder)
            continue
        for p in _images_in(folder):
            if p.name.startswith(name_filter):
                records.append(ImageRecord(str(p), EXPRESSION_LABELS.index(label), subject_of(p)))
    if not records:
        raise DatasetLayoutError(f"no expression images under {root}; expected layout: {layout}")
    return records


_CKPLUS = re.compile(r"^(S\d+)_\d+_\d+")


def subject_of(path: str | Path) -> str:
    """Subject id from a CK+ file name (``S010_004_00000017.png`` -> ``S010``), else ''."""
    m = _CKPLUS.match(Path(path).name)
    return m.group(1) if m else ""


def read_fer2013(root: str | Path, split: str = "train") -> list[ImageRecord]:
    """FER2013 folders: ``root/train/<emotion>/Training_*.jpg``, ``root/test/<emotion>/{PublicTest,PrivateTest}_*``.

    ``split`` is ``train``, ``test`` (PublicTest + PrivateTest), ``PublicTest`` or ``PrivateTest``.
    """
    if split in ("train", "test"):
        return read_expression_folders(Path(root) / split)
    if split in ("PublicTest", "PrivateTest"):
        return read_expression_folders(Path(root) / "test", name_filter=split)
    raise ValueError(f"FER2013 split must be train, test, PublicTest or PrivateTest, got {split!r}")


def read_ckplus48(root: str | Path) -> list[ImageRecord]:
    """CK+48 peak frames ``root/<emotion>/S<subj>_<seq>_<frame>.png``, six expressions (contempt dropped)."""
    records = read_expression_folders(root)
    missing = [r.path for r in records if not r.group]
    if missing:
        raise DatasetLayoutError(f"CK+ file names must start with S<subject>_, e.g. {missing[0]}")
    return records
