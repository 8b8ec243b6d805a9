"""Real aligned faces for calibration and for the parity gates.

``--calib DIR`` is any folder of face images (searched recursively). Images are
taken in a seeded, deterministic order, detected and aligned with YuNet exactly
as the runtime does (the checkpoint's preprocessing), through the training face
cache. The first ``calib_count`` usable faces calibrate the int8 quantisers;
the next ``parity_count`` (or faces from ``--parity-data``) are held out to
measure parity. Both sets are recorded in the manifest by count and by a
digest of the images' sha256 list, never by content.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelivenet.edge_runtime.detection import resolve_detector_path
from facelivenet.edge_runtime.manifest import sha256_file
from facelivenet.edge_runtime.preprocess import PreprocessConfig, normalize

from .errors import ExportError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
MIN_CALIB_FACES = 200
DEFAULT_PARITY_FACES = 100
MIN_PARITY_FACES = 16


@dataclass
class FaceSet:
    """Aligned uint8 crops (N, S, S, 3) in the model's colour mode, with their source images."""

    crops: np.ndarray
    paths: list[str]
    role: str
    folder: str
    images_seen: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def tensor(self, cfg: PreprocessConfig, layout: str = "NCHW") -> np.ndarray:
        """The float32 model input, (x - mean) / std, in ``layout``."""
        batch = normalize(self.crops, cfg)  # cfg.layout
        if cfg.layout != layout:
            batch = batch.transpose(0, 3, 1, 2) if layout == "NCHW" else batch.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(batch)

    def digest(self) -> str:
        """sha256 of the sorted list of the images' sha256 (the set, not its order)."""
        return images_digest(self.paths)

    def record(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "num_faces": len(self),
            "images_sha256_digest": self.digest(),
            "digest_rule": "sha256 of the sorted, newline-joined hex sha256 of each image file",
            "images_examined": self.images_seen,
            "detection": self.status_counts,
        }


def images_digest(paths: Sequence[str | Path]) -> str:
    return hashlib.sha256("\n".join(sorted(sha256_file(p) for p in paths)).encode()).hexdigest()


def list_images(folder: str | Path, what: str = "calibration folder") -> list[Path]:
    """Every image under ``folder`` (recursively), sorted; ExportError when none."""
    root = Path(folder)
    if not root.exists():
        raise ExportError(f"{what} {root} does not exist")
    if not root.is_dir():
        raise ExportError(f"{what} {root} is not a folder")
    images = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ExportError(f"{what} {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def _label(root: Path) -> str:
    """A short, machine-independent name for a data folder (its last two path parts)."""
    parts = root.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else root.name


def _usable_faces(
    images: Sequence[Path], needed: int, cfg: PreprocessConfig, detector: Path, cache_dir: str | Path | None,
    name: str, progress: bool,
) -> tuple[np.ndarray, list[str], int, dict[str, int]]:
    """Detect and align images in chunks, in the given order, until ``needed`` faces are usable."""
    from facelivenet.training.data.face_cache import load_or_build

    crops: list[np.ndarray] = []
    paths: list[str] = []
    counts: dict[str, int] = {}
    seen = 0
    chunk = max(32, math.ceil(needed * 1.15))
    while seen < len(images) and len(paths) < needed:
        batch = [str(p) for p in images[seen:seen + chunk]]
        faces = load_or_build(f"export-{name}", batch, cfg, "detect", detector_path=detector,
                              cache_dir=cache_dir, progress=progress)
        seen += len(batch)
        for k, v in faces.counts().items():
            counts[k] = counts.get(k, 0) + v
        ok = np.flatnonzero(faces.ok)
        crops.append(faces.crops[ok])
        paths.extend(faces.paths[i] for i in ok)
        chunk = max(32, math.ceil((needed - len(paths)) * 1.3))
    s = cfg.input_size
    stacked = np.concatenate(crops) if crops else np.zeros((0, s, s, 3), np.uint8)
    return stacked, paths, seen, counts


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(counts.items())) or "none examined"


def collect_faces(
    calib_dir: str | Path,
    cfg: PreprocessConfig,
    detector: str | Path | None = None,
    calib_count: int = MIN_CALIB_FACES,
    min_calib: int = MIN_CALIB_FACES,
    parity_count: int = DEFAULT_PARITY_FACES,
    min_parity: int = MIN_PARITY_FACES,
    parity_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[FaceSet, FaceSet]:
    """(calibration faces, held-out parity faces), both real and aligned; ExportError when too few."""
    if calib_count < min_calib:
        raise ExportError(f"--calib-count {calib_count} is below the minimum of {min_calib} calibration faces")
    root = Path(calib_dir)
    images = list_images(root)
    order = [images[i] for i in np.random.default_rng(seed).permutation(len(images))]
    detector_path = resolve_detector_path(detector)
    want = calib_count + (0 if parity_dir else parity_count)
    crops, paths, seen, counts = _usable_faces(order, want, cfg, detector_path, cache_dir, "calib", progress)
    if len(paths) < min_calib:
        raise ExportError(
            f"calibration folder {root}: {len(paths)} usable face(s) found in {seen} image(s) "
            f"({_describe(counts)}); need at least {min_calib}"
        )
    n_cal = min(calib_count, len(paths))
    calib = FaceSet(crops[:n_cal], paths[:n_cal], "calibration", _label(root), seen, counts)
    if parity_dir:
        proot = Path(parity_dir)
        pimages = list_images(proot, "parity folder")
        porder = [pimages[i] for i in np.random.default_rng(seed + 1).permutation(len(pimages))]
        pcrops, ppaths, pseen, pcounts = _usable_faces(porder, parity_count, cfg, detector_path, cache_dir,
                                                        "parity", progress)
        overlap = set(ppaths) & set(calib.paths)
        keep = [i for i, p in enumerate(ppaths) if p not in overlap][:parity_count]
        parity = FaceSet(pcrops[keep], [ppaths[i] for i in keep], "parity", _label(proot), pseen, pcounts)
        where = f"parity folder {proot}"
    else:
        parity = FaceSet(crops[n_cal:n_cal + parity_count], paths[n_cal:n_cal + parity_count], "parity",
                         _label(root), seen, counts)
        where = f"calibration folder {root} after the {n_cal} calibration faces"
    if len(parity) < min_parity:
        raise ExportError(
            f"only {len(parity)} held-out face(s) for the parity check in the {where}; need at least {min_parity} "
            "(use a bigger folder or pass --parity-data DIR)"
        )
    log.info("faces: %d for calibration, %d held out for parity", len(calib), len(parity))
    return calib, parity
