"""Detect and align every image once; epochs read aligned crops from a cache.

Cache location: ``DataConfig.cache_dir``, else ``$FACELIVE_CACHE``, else
``~/.cache/facelivenet``. An entry lives in ``faces/<name>-<key>/`` where the key
hashes the preprocessing config, the alignment mode, the detector file and the
list of images, so a change to any of them builds a new entry. Each entry holds
``crops.npy`` (uint8, N x S x S x C, C = 1 for grey models) and ``index.json``
(paths and status per image). Writes are atomic (temp folder, then rename).
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

from facelivenet.edge_runtime.detection import YuNetDetector, pick_face
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.manifest import sha256_file
from facelivenet.edge_runtime.preprocess import PreprocessConfig, face_crop

from facelivenet.edge_runtime.progress import progress as show_progress

log = logging.getLogger(__name__)

CACHE_ENV = "FACELIVE_CACHE"
AlignSource = Literal["detect", "center_crop"]
STATUS_OK, STATUS_NO_FACE, STATUS_UNREADABLE, STATUS_FALLBACK = "ok", "no_face", "unreadable", "center_fallback"


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
) -> AlignedFaces:
    """Decode, detect (or centre-crop) and align each image; failures are recorded, not raised.

    With ``fallback_fraction`` an image where no face is found gets a centre crop of that
    fraction instead (status ``center_fallback``), so evaluation protocols keep every pair.
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
        face = pick_face(detector.detect(image), image.shape)
        if face is not None:
            crops[i] = face_crop(image, cfg, face.landmarks)
            status.append(STATUS_OK)
        elif fallback_fraction:
            crops[i] = face_crop(image, cfg, crop_fraction=fallback_fraction)
            status.append(STATUS_FALLBACK)
        else:
            status.append(STATUS_NO_FACE)
    return AlignedFaces(crops, list(paths), status)


def cache_key(paths: Sequence[str], cfg: PreprocessConfig, source: AlignSource, detector_sha: str, fallback: float | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"preprocess": cfg.to_dict(), "source": source, "detector": detector_sha, "fallback": fallback, "v": 1}, sort_keys=True).encode())
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
) -> AlignedFaces:
    """Aligned faces for ``paths``, read from the cache or built once and stored."""
    detector = YuNetDetector(detector_path) if source == "detect" else None
    detector_sha = sha256_file(detector.model_path) if detector else ""
    key = cache_key(paths, cfg, source, detector_sha, fallback_fraction)
    entry = cache_root(cache_dir) / "faces" / f"{name}-{key}"
    grey = cfg.colour == "gray"
    if (entry / "index.json").is_file():
        index = json.loads((entry / "index.json").read_text())
        crops = np.load(entry / "crops.npy", mmap_mode="r")
        crops = np.repeat(np.asarray(crops), 3, axis=3) if grey else np.asarray(crops)
        log.info("face cache hit %s (%d images)", entry, len(index["paths"]))
        return AlignedFaces(crops, index["paths"], index["status"])
    faces = align_images(paths, cfg, source, detector, fallback_fraction, progress)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=entry.parent))
    try:
        np.save(tmp / "crops.npy", faces.crops[..., :1] if grey else faces.crops)
        index = {"paths": faces.paths, "status": faces.status, "preprocess": cfg.to_dict(), "source": source,
                 "detector_sha256": detector_sha, "counts": faces.counts()}
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
