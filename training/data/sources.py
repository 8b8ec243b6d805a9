"""Turn a DataConfig into the Stage 1 (identity) and Stage 2 (expression) datasets."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.constants import DATA_ENV
from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
from facelivenet.edge_runtime.preprocess import PreprocessConfig

from ..config import DataConfig
from .datasets import FaceCropDataset
from .face_cache import AlignedFaces, load_or_build, load_precropped
from .readers import UNLABELLED, ImageRecord, read_fer2013, read_identity_folders, read_image_tree

log = logging.getLogger(__name__)

# Names and terms recorded with every checkpoint and bundle that used the data.
DATASET_TERMS = {
    "lfw": ("Labeled Faces in the Wild (deep-funneled)", "research use; cite Huang et al. 2007"),
    "fer2013": ("FER2013", "ICML 2013 challenge data; research use"),
    "ckplus48": ("CK+ (48x48 peak frames)", "CK+ research agreement: evaluation only, never redistributed"),
    "jaffe": ("JAFFE", "research use only, never redistributed"),
    "identity_folders": ("identity folders", "as licensed by their owner"),
    # Folders laid out by training/data/celeba.py (named by that folder): CelebA crops from a public repository
    "celeba_clean": ("CelebA crops 000001-010000 (github karthikSingireddy/cs389-hw4), identities from identity_CelebA.txt "
                     "(github dg21-stack/FaceIdentityRecognition), evaluation people left out, labels cleaned by a teacher",
                     "CelebA: non-commercial research use only"),
    "idfaces": ("idfaces (CelebA, Pins, Asian and Kazakh celebrity sets, a Glint360K sample)",
                "CelebA: non-commercial research use only; the others research use (idfaces/README.md)"),
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
    target_map: Any = None  # teacher.TargetMap of Stage 1's teacher targets (saved beside the run)


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


@dataclass
class _IdentitySource:
    """One folder of identity sub-folders, listed, with its cache name and how to read it."""

    key: str  # DATASET_TERMS key
    cache_name: str
    images_root: Path
    records: list[ImageRecord]
    names: list[str]
    extra: dict


def _identity_sources(data: DataConfig, root: Path | None) -> list[_IdentitySource]:
    """LFW (``lfw_root`` + ``lfw_folds``) or ``identity_root``, then every ``identity_roots`` folder."""
    listed: list[tuple[str, str, Path, set[str] | None, dict]] = []
    if data.lfw_root:
        lfw = resolve(data.lfw_root, root)
        folds = data.lfw_folds or tuple(range(1, 11))
        listed.append(("lfw", "lfw", lfw / "images", _lfw_people(lfw, folds), {"lfw_folds": list(folds)}))
    elif data.identity_root:
        listed.append(("identity_folders", "identity", resolve(data.identity_root, root), None, {}))
    for extra_root in data.identity_roots:
        folder = resolve(extra_root, root)
        name = _cache_name(folder)
        key = name if name in DATASET_TERMS else "identity_folders"
        listed.append((key, name, folder, None, {"identity_root": extra_root}))
    if not listed:
        raise DatasetLayoutError("stage 1 needs data.lfw_root (LFW with people.txt), data.identity_root or "
                                 "data.identity_roots (ROOT/<identity>/*.jpg)")
    out = []
    for key, cache_name, images_root, include, extra in listed:
        records, names, few = read_identity_folders(images_root, include, data.min_images_per_identity,
                                                    data.max_identities, count_skipped=True)
        out.append(_IdentitySource(key, cache_name, images_root, records, names,
                                   {**extra, "identities_below_min_images": few}))
    return out


def _cache_name(folder: Path) -> str:
    """A readable cache-entry prefix for an identity folder (``idfaces/images`` -> ``idfaces``)."""
    parts = [p for p in folder.parts if p not in ("images", "/")]
    return (parts[-1] if parts else "identity").replace(" ", "_")


def _teacher_descriptors(paths: list[str], data: DataConfig, progress: bool, upscale_to: int) -> np.ndarray:
    from ..teacher import teacher_embeddings

    return teacher_embeddings(paths, data.detector or None, data.cache_dir or None, progress,
                              workers=data.teacher_workers, upscale_to=upscale_to, views=data.teacher_views,
                              teacher=data.teacher, source=data.teacher_source or None)


def _source_targets(src: _IdentitySource, data: DataConfig, progress: bool) -> np.ndarray | None:
    if not data.teacher:
        return None
    return _teacher_descriptors([r.path for r in src.records], data, progress, data.identity_upscale)


def _distill_faces(data: DataConfig, pre: PreprocessConfig, root: Path | None, seed: int,
                   progress: bool) -> tuple[list[ImageRecord], AlignedFaces, np.ndarray, dict]:
    """The teacher-only faces of ``data.distill_root``: records (unlabelled), aligned crops, teacher
    descriptors and provenance. Aligned like the identity faces (``data.identity_align``); images
    that gave no face to the detector or the teacher are dropped."""
    if not data.teacher:
        raise DatasetLayoutError("data.distill_root trains on the teacher term alone: set data.teacher "
                                 "(e.g. data.teacher=dlib)")
    folder = resolve(data.distill_root, root)
    records = read_image_tree(folder)
    listed = len(records)
    if data.distill_max_images and listed > data.distill_max_images:
        pick = np.random.default_rng(seed).choice(listed, data.distill_max_images, replace=False)
        records = [records[i] for i in sorted(pick)]
    paths = [r.path for r in records]
    faces = load_or_build(f"distill-{_cache_name(folder)}", paths, pre, data.identity_align, data.detector or None,
                          data.cache_dir or None, progress=progress, upscale_to=data.distill_upscale)
    targets = _teacher_descriptors(paths, data, progress, data.distill_upscale)
    described = np.abs(targets.reshape(len(targets), -1)).sum(1) > 0
    keep = faces.ok & described
    kept = AlignedFaces(faces.crops[keep], [p for p, k in zip(faces.paths, keep) if k],
                        [st for st, k in zip(faces.status, keep) if k])
    prov = {"dataset": "teacher-only faces", "root": str(folder), "images_listed": listed,
            "images_sampled": len(records), "images_used": int(keep.sum()), "status_counts": faces.counts(),
            "teacher_described": int(described.sum()), "upscale_to": data.distill_upscale}
    return [r for r, k in zip(records, keep) if k], kept, targets[keep], prov


def _teacher_targets(targets: list[np.ndarray], data: DataConfig, n_identity: int) -> tuple[np.ndarray, object, dict]:
    """The stacked descriptors made into targets (centred, projected to the student's size), the map, and how."""
    from ..teacher import fit_target_map, teacher_record

    stacked = np.concatenate(targets)
    flat = stacked.reshape(len(stacked), -1)
    info = {**teacher_record(data.teacher), "described": int((np.abs(flat).sum(1) > 0).sum()),
            "views": data.teacher_views}
    stacked, target_map, how = fit_target_map(stacked, data.teacher_centre, data.teacher_target_dim,
                                              mean_rows=np.arange(len(stacked)) < n_identity)
    info.update(how)
    return stacked, target_map, info


def identity_data(data: DataConfig, pre: PreprocessConfig, root: Path | None, seed: int = 0,
                  augment: bool = True, progress: bool = True) -> StageData:
    """Stage 1 data: every configured identity source, detected and aligned, one class per person per source.

    Unusable images (unreadable, no face) and people with too few images are skipped and
    counted in the provenance, per source.
    """
    sources = _identity_sources(data, root)
    all_records: list[ImageRecord] = []
    all_names: list[str] = []
    crops, status, paths, targets = [], [], [], []
    per_source = []
    for src in sources:
        offset = len(all_names)
        prefix = "" if len(sources) == 1 else f"{src.cache_name}/"
        all_names += [prefix + n for n in src.names]
        all_records += [ImageRecord(r.path, r.label + offset, r.group) for r in src.records]
        faces = load_or_build(src.cache_name, [r.path for r in src.records], pre, data.identity_align,
                              data.detector or None, data.cache_dir or None, progress=progress,
                              upscale_to=data.identity_upscale)
        crops.append(faces.crops)
        status += faces.status
        paths += faces.paths
        src_targets = _source_targets(src, data, progress)
        if src_targets is not None:
            targets.append(src_targets)
        title, terms = DATASET_TERMS[src.key]
        per_source.append({"dataset": title, "terms": terms, "root": str(src.images_root), "identities": len(src.names),
                           "images_listed": len(src.records), "status_counts": faces.counts(), **src.extra})
    n_identity = len(all_records)  # the rows the teacher's mean is taken over
    if data.distill_root:
        d_records, d_faces, d_targets, d_prov = _distill_faces(data, pre, root, seed, progress)
        all_records += d_records
        crops.append(d_faces.crops)
        status += d_faces.status
        paths += d_faces.paths
        targets.append(d_targets)
    faces = AlignedFaces(np.concatenate(crops), paths, status)
    extra: dict = {"teacher_only": d_prov} if data.distill_root else {}
    stacked = target_map = None
    if targets:
        stacked, target_map, extra["teacher"] = _teacher_targets(targets, data, n_identity)
    key = sources[0].key if len(sources) == 1 else "identity_folders"
    ds, kept, stats = _build(key, all_records, faces, pre, data, root, augment, seed, stacked)
    used = sorted({all_names[int(l)] for l in ds.labels if l != UNLABELLED})
    if len(sources) == 1:
        src = sources[0]
        prov = {"dataset": per_source[0]["dataset"], "terms": per_source[0]["terms"], "root": str(src.images_root),
                "identities": len(used), "align": data.identity_align, **src.extra, **extra, **stats}
    else:
        prov = {"dataset": " + ".join(p["dataset"] if p["dataset"] != DATASET_TERMS["identity_folders"][0]
                                      else p["root"] for p in per_source),
                "terms": "; ".join(dict.fromkeys(p["terms"] for p in per_source)),
                "identities": len(used), "align": data.identity_align, "upscale_to": data.identity_upscale,
                "sources": per_source, **extra, **stats}
        lfw_folds = [f for src in sources for f in src.extra.get("lfw_folds", [])]
        if lfw_folds:  # where evaluation looks for the LFW people a checkpoint trained on
            prov["lfw_folds"] = lfw_folds
    return StageData(ds, all_names, kept, prov, target_map)


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
