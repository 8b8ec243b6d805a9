"""Detect and align every image once; epochs read aligned crops from a cache.

Cache location: ``DataConfig.cache_dir``, else ``$FACELIVE_CACHE``, else
``~/.cache/facelivenet``. An entry lives in ``faces/<name>-<key>/`` where the key
hashes the preprocessing config, the alignment mode (with its upscale size and
fallback), the detector file and the list of images, so a change to any of them
builds a new entry. Each entry holds ``crops.npy`` (uint8, N x S x S x C, C = 1
for grey models) and ``index.json`` (paths and status per image). Writes are
atomic (temp folder, then rename).

Already-cropped small faces (FER2013, CK+48, 48x48) go through
:func:`load_precropped`: either the centre crop, or ``detect`` -- upscaled
(bicubic, bit-identical on every CPU: ``photo_align.resize_bicubic``) until the shorter side
reaches ``upscale_to``, YuNet on that, then the
same landmark alignment as the runtime (``face_crop`` with landmarks), with the
centre crop as the recorded fallback (``center_fallback``) when no face is found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from facelivenet.edge_runtime.constants import CACHE_ENV
from facelivenet.edge_runtime.detection import YuNetDetector
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.manifest import sha256_file
from facelivenet.edge_runtime.photo_align import STATUS_FALLBACK, STATUS_OK, align_photo
from facelivenet.edge_runtime.preprocess import PreprocessConfig, face_crop

from facelivenet.edge_runtime.progress import progress as show_progress

log = logging.getLogger(__name__)

AlignSource = Literal["detect", "center_crop"]
PrecroppedAlign = Literal["center_crop", "detect"]  # how already-cropped faces (FER2013, CK+48) are aligned
STATUS_UNREADABLE = "unreadable"


def cache_root(explicit: str | Path | None = None) -> Path:
    """Where caches live: explicit, then $FACELIVE_CACHE, then ~/.cache/facelivenet."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get(CACHE_ENV):
        return Path(env)
    return Path.home() / ".cache" / "facelivenet"


@dataclass
class AlignedFaces:
    """Aligned crops for a list of image paths; ``ok`` marks images that gave a usable crop."""

    crops: np.ndarray  # uint8 (N, S, S, 3) in the model's colour mode (rows of failed images are zero)
    paths: list[str]
    status: list[str]

    @property
    def ok(self) -> np.ndarray:
        return np.array([s in (STATUS_OK, STATUS_FALLBACK) for s in self.status], dtype=bool)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.status:
            out[s] = out.get(s, 0) + 1
        return out


def align_images(
    paths: Sequence[str],
    cfg: PreprocessConfig,
    source: AlignSource,
    detector: YuNetDetector | None = None,
    fallback_fraction: float | None = None,
    progress: bool = True,
    upscale_to: int = 0,
) -> AlignedFaces:
    """Decode, detect (or centre-crop) and align each image; failures are recorded, not raised.

    With ``fallback_fraction`` an image where no face is found gets a centre crop of that
    fraction instead (status ``center_fallback``), so evaluation protocols keep every pair.
    With ``upscale_to`` (detect mode) a small image is first enlarged so its shorter side is
    at least that many pixels; detection and alignment both work on the enlarged image (the
    fallback centre crop on the original).
    """
    if source == "detect" and detector is None:
        raise ValueError("source='detect' needs a YuNetDetector")
    s = cfg.input_size
    crops = np.zeros((len(paths), s, s, 3), dtype=np.uint8)
    status: list[str] = []
    iterator = show_progress(paths, progress, "aligning faces", unit="img")
    for i, path in enumerate(iterator):
        try:
            image = read_image(path)
        except FaceLiveError as exc:
            log.warning("skipping %s", exc)
            status.append(STATUS_UNREADABLE)
            continue
        if source == "center_crop":
            crops[i] = face_crop(image, cfg)
            status.append(STATUS_OK)
            continue
        crop, state = align_photo(image, cfg, detector, upscale_to, fallback_fraction)
        if crop is not None:
            crops[i] = crop
        status.append(state)
    return AlignedFaces(crops, list(paths), status)


def cache_key(paths: Sequence[str], cfg: PreprocessConfig, source: AlignSource, detector_sha: str, fallback: float | None,
              upscale_to: int = 0) -> str:
    head = {"preprocess": cfg.to_dict(), "source": source, "detector": detector_sha, "fallback": fallback, "v": 1}
    if upscale_to:  # only when set, so the entries built before the option keep their keys
        head["upscale_to"] = upscale_to
        head["upscale"] = "bicubic-exact"  # photo_align.resize_bicubic, not cv2.INTER_CUBIC (entries before it)
    h = hashlib.sha256()
    h.update(json.dumps(head, sort_keys=True).encode())
    for p in paths:
        h.update(os.path.abspath(p).encode() + b"\0")
    return h.hexdigest()[:16]


def load_or_build(
    name: str,
    paths: Sequence[str],
    cfg: PreprocessConfig,
    source: AlignSource,
    detector_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    fallback_fraction: float | None = None,
    progress: bool = True,
    upscale_to: int = 0,
) -> AlignedFaces:
    """Aligned faces for ``paths``, read from the cache or built once and stored."""
    if source != "detect":
        upscale_to = 0  # only detection looks at an enlarged image
    detector = YuNetDetector(detector_path) if source == "detect" else None
    detector_sha = sha256_file(detector.model_path) if detector else ""
    key = cache_key(paths, cfg, source, detector_sha, fallback_fraction, upscale_to)
    entry = cache_root(cache_dir) / "faces" / f"{name}-{key}"
    grey = cfg.colour == "gray"
    if (entry / "index.json").is_file():
        index = json.loads((entry / "index.json").read_text())
        crops = np.load(entry / "crops.npy", mmap_mode="r")
        crops = np.repeat(np.asarray(crops), 3, axis=3) if grey else np.asarray(crops)
        log.info("face cache hit %s (%d images)", entry, len(index["paths"]))
        # The key holds every image's absolute path, in order: the entry is these very images, so the caller's
        # own path strings come back (the stored ones may be relative to another working directory).
        return AlignedFaces(crops, [str(p) for p in paths], index["status"])
    faces = align_images(paths, cfg, source, detector, fallback_fraction, progress, upscale_to)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=entry.parent))
    try:
        np.save(tmp / "crops.npy", faces.crops[..., :1] if grey else faces.crops)
        index = {"paths": faces.paths, "status": faces.status, "preprocess": cfg.to_dict(), "source": source,
                 "upscale_to": upscale_to, "fallback_fraction": fallback_fraction, "detector_sha256": detector_sha,
                 "counts": faces.counts()}
        (tmp / "index.json").write_text(json.dumps(index))
        if entry.exists():  # another process finished the same entry first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("face cache built %s: %s", entry, faces.counts())
    return faces


def load_precropped(
    name: str,
    paths: Sequence[str],
    cfg: PreprocessConfig,
    align: PrecroppedAlign = "center_crop",
    upscale_to: int = 0,
    detector_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> AlignedFaces:
    """Aligned crops of already-cropped face images (FER2013, CK+48): the one place that decides how.

    ``center_crop``: the central ``cfg.crop_fraction`` of the image. ``detect``: YuNet on the
    image upscaled to ``upscale_to`` (shorter side), aligned to the template exactly like the
    runtime; an image without a detected face falls back to that same centre crop, with status
    ``center_fallback``.
    """
    if align == "center_crop":
        return load_or_build(name, paths, cfg, "center_crop", None, cache_dir, progress=progress)
    if align == "detect":
        return load_or_build(name, paths, cfg, "detect", detector_path, cache_dir, cfg.crop_fraction, progress,
                             upscale_to)
    raise ValueError(f"unknown alignment {align!r} for already-cropped faces; use 'center_crop' or 'detect'")
