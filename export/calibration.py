"""Real aligned faces for calibration and for the parity gates.

``--calib DIR`` is any folder of face images (searched recursively). Images are
taken in a seeded, deterministic order, detected and aligned with YuNet exactly
as the runtime does (the checkpoint's preprocessing), through the training face
cache. The first ``calib_count`` usable faces calibrate the int8 quantisers;
the next ``parity_count`` (or faces from ``--parity-data``) are held out to
measure parity. Both sets are recorded in the manifest by count and by a
digest of the images' sha256 list, never by content.

``--expression-data DIR`` (FER2013 layout: already-cropped faces in
``train/`` and ``test/``) adds expression faces, aligned the way the
checkpoint's Stage 2 training aligned them (its ``data.expression_align``:
centre crop, or YuNet on the upscaled image): ``train/`` images to the
calibration set, ``test/`` images (never used for calibration) to the parity
set. The int8 weights are rounded on the calibration faces, and Branch 2 is
an expression classifier: identity faces alone (mostly neutral or smiling)
under-represent it.
"""

from __future__ import annotations

import dataclasses
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
DEFAULT_PARITY_FACES = 300
MIN_PARITY_FACES = 16
DEFAULT_EXPRESSION_FACES = 200
DETECT, CENTRE_CROP = "detect", "center_crop"


@dataclass
class FaceSet:
    """Aligned uint8 crops (N, S, S, 3) in the model's colour mode, with their source images."""

    crops: np.ndarray
    paths: list[str]
    role: str
    folder: str
    images_seen: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    alignment: str = DETECT
    upscale_to: int = 0  # already-cropped faces aligned with YuNet: the size they were enlarged to first
    parts: list["FaceSet"] = field(default_factory=list)  # the sets a merged set was made of

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
        """What the manifest says about the set: folders, counts, digest (never the images)."""
        out: dict[str, Any] = {
            "folder": self.folder,
            "num_faces": len(self),
            "images_sha256_digest": self.digest(),
            "digest_rule": "sha256 of the sorted, newline-joined hex sha256 of each image file",
            "images_examined": self.images_seen,
        }
        if self.parts:
            out["parts"] = [p.record() for p in self.parts]
        else:
            out["alignment"] = ("already-cropped faces, centre crop (crop_fraction)" if self.alignment == CENTRE_CROP
                                else "YuNet landmarks, aligned to the template" + (
                                    f" (image upscaled to {self.upscale_to} px first; no face: centre crop)"
                                    if self.upscale_to else ""))
            out["detection"] = self.status_counts
        return out

    def subsets(self) -> list[tuple[str, slice]]:
        """(folder, rows) of each part of a merged set; the whole set otherwise."""
        if not self.parts:
            return [(self.folder, slice(0, len(self)))]
        out, start = [], 0
        for p in self.parts:
            out.append((p.folder, slice(start, start + len(p))))
            start += len(p)
        return out


def merge_sets(sets: Sequence[FaceSet], role: str) -> FaceSet:
    """One set of the non-empty ``sets`` (in order), remembering its parts."""
    sets = [s for s in sets if len(s)]
    if len(sets) == 1:
        return sets[0]
    return FaceSet(np.concatenate([s.crops for s in sets]), [p for s in sets for p in s.paths], role,
                   " + ".join(s.folder for s in sets), sum(s.images_seen for s in sets), parts=list(sets))


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


def _precropped(images: Sequence[Path], count: int, cfg: PreprocessConfig, align: str, upscale_to: int,
                detector: Path | None, cache_dir: str | Path | None, name: str,
                progress: bool) -> tuple[np.ndarray, list[str], int, dict[str, int]]:
    """The first ``count`` readable images of ``images``, aligned as training aligned them."""
    from facelivenet.training.data.face_cache import load_precropped

    batch = [str(p) for p in images[:count]]
    faces = load_precropped(f"export-{name}", batch, cfg, align, upscale_to, detector, cache_dir, progress)
    ok = np.flatnonzero(faces.ok)
    return faces.crops[ok], [faces.paths[i] for i in ok], len(batch), faces.counts()


def collect_expression_faces(
    root: str | Path,
    cfg: PreprocessConfig,
    calib_count: int = DEFAULT_EXPRESSION_FACES,
    parity_count: int = DEFAULT_EXPRESSION_FACES,
    align: str = CENTRE_CROP,
    upscale_to: int = 0,
    detector: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[FaceSet, FaceSet]:
    """(calibration, parity) expression faces from ``root``: ``train/`` and ``test/`` when both exist
    (FER2013), else one seeded split of all its images.

    The faces are already cropped; they are aligned the way the checkpoint's Stage 2 aligned
    them (``align``: ``center_crop``, or ``detect``: YuNet on the image upscaled to ``upscale_to``
    pixels, falling back to the centre crop), by the training code that did it.
    """
    root = Path(root)
    detector_path = resolve_detector_path(detector) if align == DETECT else None
    if calib_count < 0 or parity_count < 0:
        raise ExportError("expression face counts must be >= 0")
    train, test = root / "train", root / "test"
    spare = parity_count // 10 + 4  # a few more parity images, for those identical to calibration ones
    if train.is_dir() and test.is_dir():
        pools = [(train, calib_count, 2 * seed + 10), (test, parity_count + spare, 2 * seed + 11)]
    else:
        pools = [(root, calib_count + parity_count + spare, 2 * seed + 10)]
    sets: list[FaceSet] = []
    for folder, count, pool_seed in pools:
        images = list_images(folder, "expression data folder")
        order = [images[i] for i in np.random.default_rng(pool_seed).permutation(len(images))]
        crops, paths, seen, counts = _precropped(order, count, cfg, align, upscale_to, detector_path, cache_dir,
                                                 f"expr-{folder.name}", progress)
        sets.append(FaceSet(crops, paths, "", _label(folder), seen, counts, align, upscale_to=upscale_to))
    if len(sets) == 1:
        whole = sets[0]
        sets = [dataclasses.replace(whole, crops=whole.crops[:calib_count], paths=whole.paths[:calib_count]),
                dataclasses.replace(whole, crops=whole.crops[calib_count:], paths=whole.paths[calib_count:])]
    calib, parity = sets
    calib.role, parity.role = "calibration", "parity"
    seen_in_calib = {sha256_file(p) for p in calib.paths}  # FER2013 repeats some images across its splits
    held_out = [i for i, p in enumerate(parity.paths) if sha256_file(p) not in seen_in_calib]
    if len(held_out) < len(parity):
        log.info("expression faces: %d parity image(s) identical to calibration ones left out",
                 len(parity) - len(held_out))
    held_out = held_out[:parity_count]
    parity = dataclasses.replace(parity, crops=parity.crops[held_out], paths=[parity.paths[i] for i in held_out])
    if len(calib) < calib_count or len(parity) < parity_count:
        raise ExportError(f"expression data {root}: {len(calib)} calibration and {len(parity)} parity faces readable; "
                          f"asked for {calib_count} and {parity_count}")
    log.info("expression faces: %d for calibration, %d held out for parity", len(calib), len(parity))
    return calib, parity
