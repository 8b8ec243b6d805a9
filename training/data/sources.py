"""Turn a DataConfig into the Stage 1 (identity) and Stage 2 (expression) datasets."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
from facelivenet.edge_runtime.preprocess import PreprocessConfig

from ..config import DataConfig
from .datasets import FaceCropDataset
from .face_cache import AlignedFaces, load_or_build, load_precropped
from .readers import ImageRecord, read_fer2013, read_identity_folders

log = logging.getLogger(__name__)

DATA_ENV = "FACELIVE_DATA"

# Names and terms recorded with every checkpoint and bundle that used the data.
DATASET_TERMS = {
    "lfw": ("Labeled Faces in the Wild (deep-funneled)", "research use; cite Huang et al. 2007"),
    "fer2013": ("FER2013", "ICML 2013 challenge data; research use"),
    "ckplus48": ("CK+ (48x48 peak frames)", "CK+ research agreement: evaluation only, never redistributed"),
    "jaffe": ("JAFFE", "research use only, never redistributed"),
    "identity_folders": ("identity folders", "as licensed by their owner"),
}


def data_root(explicit: str | Path | None = None) -> Path | None:
    """The folder holding the data sets: ``--data``, else $FACELIVE_DATA, else None."""
    value = explicit or os.environ.get(DATA_ENV)
    return Path(value) if value else None


def resolve(path: str, root: Path | None) -> Path:
    """A config path: absolute as is, else relative to the data root (or the working directory)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or root is None else root / p


@dataclass
class StageData:
    """A dataset ready for training, with what it is made of (recorded in checkpoints)."""

    dataset: FaceCropDataset
    class_names: list[str]
    images: list[str]
    provenance: dict = field(default_factory=dict)


def _lfw_people(lfw_root: Path, folds: tuple[int, ...]) -> set[str]:
    from ..evaluation.lfw_protocol import fold_people

    people = fold_people(lfw_root)
    bad = [f for f in folds if not 1 <= f <= len(people)]
    if bad:
        raise ValueError(f"LFW folds {bad} out of range 1..{len(people)}")
    return set().union(*(people[f - 1] for f in folds))


def _relative(path: str, root: Path | None) -> str:
    try:
        return str(Path(path).relative_to(root)) if root else path
    except ValueError:
        return path


def _build(name: str, records: list[ImageRecord], faces: AlignedFaces, pre: PreprocessConfig, data: DataConfig,
           root: Path | None, augment: bool, seed: int,
           targets: np.ndarray | None = None) -> tuple[FaceCropDataset, list[str], dict]:
    ok = faces.ok
    counts = faces.counts()
    dropped = int((~ok).sum())
    if dropped:
        log.warning("%s: %d of %d images skipped (%s)", name, dropped, len(records), counts)
    if not ok.any():
        raise DatasetLayoutError(f"{name}: none of the {len(records)} images gave a usable face ({counts})")
    labels = np.array([r.label for r in records])[ok]
    crops = faces.crops[ok]
    ds = FaceCropDataset(crops, labels, pre, augment=augment, pad=data.augment_crop_pad, flip=data.augment_flip,
                         seed=seed, targets=None if targets is None else targets[ok])
    kept = [_relative(r.path, root) for r, good in zip(records, ok) if good]
    return ds, kept, {"images_listed": len(records), "images_used": int(ok.sum()), "status_counts": counts}


def expression_alignment(data: DataConfig) -> dict:
    """How the expression faces were aligned, as recorded in provenance and evaluation JSON."""
    out: dict = {"align": data.expression_align}
    if data.expression_align == "detect":
        out["upscale_to"] = data.expression_upscale
    return out


def identity_data(data: DataConfig, pre: PreprocessConfig, root: Path | None, seed: int = 0,
                  augment: bool = True, progress: bool = True) -> StageData:
    """Stage 1 data: LFW (``lfw_root`` + ``lfw_folds``) or generic identity folders, detected and aligned."""
    include = None
    if data.lfw_root:
        lfw = resolve(data.lfw_root, root)
        folds = data.lfw_folds or tuple(range(1, 11))
        include = _lfw_people(lfw, folds)
        images_root, key, extra = lfw / "images", "lfw", {"lfw_folds": list(folds)}
    elif data.identity_root:
        images_root, key, extra = resolve(data.identity_root, root), "identity_folders", {}
    else:
        raise DatasetLayoutError("stage 1 needs data.lfw_root (LFW with people.txt) or data.identity_root (ROOT/<identity>/*.jpg)")
    records, names = read_identity_folders(images_root, include, data.min_images_per_identity, data.max_identities)
    source = data.identity_align
    targets = None
    if data.teacher == "dlib":
        from ..teacher import DlibTeacher, teacher_embeddings

        targets = teacher_embeddings([r.path for r in records], data.detector or None, data.cache_dir or None, progress,
                                     workers=data.teacher_workers)
        extra["teacher"] = {"name": DlibTeacher.name, "described": int((np.abs(targets).sum(1) > 0).sum())}
        if data.teacher_centre:
            from ..teacher import centre_descriptors

            targets, how = centre_descriptors(targets)
            extra["teacher"].update(how)
    faces = load_or_build(key, [r.path for r in records], pre, source, data.detector or None, data.cache_dir or None,
                          progress=progress)
    ds, kept, stats = _build(key, records, faces, pre, data, root, augment, seed, targets)
    used = sorted({names[int(l)] for l in ds.labels})
    title, terms = DATASET_TERMS[key]
    prov = {"dataset": title, "terms": terms, "root": str(images_root), "identities": len(used), "align": source, **extra, **stats}
    return StageData(ds, names, kept, prov)


def expression_data(data: DataConfig, pre: PreprocessConfig, root: Path | None, seed: int = 0,
                    augment: bool = True, progress: bool = True) -> StageData:
    """Stage 2 data: FER2013 folders (already cropped faces, aligned per ``data.expression_align``)."""
    if not data.expression_root:
        raise DatasetLayoutError("stage 2 needs data.expression_root (FER2013: ROOT/train/<emotion>/*.jpg)")
    fer = resolve(data.expression_root, root)
    records = read_fer2013(fer, data.expression_split)
    if data.max_expression_images and len(records) > data.max_expression_images:
        pick = np.random.default_rng(seed).choice(len(records), data.max_expression_images, replace=False)
        records = [records[i] for i in sorted(pick)]
    faces = load_precropped("fer2013", [r.path for r in records], pre, data.expression_align, data.expression_upscale,
                            data.detector or None, data.cache_dir or None, progress)
    ds, kept, stats = _build("fer2013", records, faces, pre, data, root, augment, seed)
    title, terms = DATASET_TERMS["fer2013"]
    prov = {"dataset": title, "terms": terms, "root": str(fer), "split": data.expression_split,
            **expression_alignment(data), **stats}
    return StageData(ds, list(EXPRESSION_LABELS), kept, prov)
