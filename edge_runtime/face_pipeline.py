"""The per-frame path: detect -> (track) -> align -> quality -> ONE forward pass.

Detection runs on the full frame every ``detect_every`` frames; in between, the
face is re-detected inside a small window around its last box (a fraction of
the full detector's cost, still giving fresh landmarks, so alignment is as
exact as on a full detection). A face lost by the window search falls back to
a full-frame detection at once. A second face that walks in is seen at the
next full detection, so ``detect_every`` bounds how many frames it can hide
for; the default (1) looks at the whole frame every time.

Full-frame detection runs on the frame downscaled to ``detect_max_side``
(320 px): at 640x480 that is about three times faster than full resolution on
one core, the faces an authentication needs (a person at arm's length) stay
well above YuNet's smallest, and enrollment and authentication align with the
same detector, so their landmarks are alike. The crop itself is always cut
from the full-resolution frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import reasons
from .constants import DEFAULT_MAX_PIXELS
from .detection import Face, YuNetDetector, pick_face
from .errors import FrameTooLargeError
from .face_model import FaceModel
from .imageio import to_bgr_uint8
from .preprocess import face_crop
from .quality import FaceMeasures, QualityConfig, face_measures, quality_reasons
from .tracking import FaceTracker, TrackerConfig



@dataclass(frozen=True)
class PipelineConfig:
    detect_every: int = 1
    detect_max_side: int = 320  # frames are downscaled to this for full-frame detection (speed; see module doc)
    roi_scale: float = 2.2  # search window side / face box side
    roi_size: int = 224  # the window is resized to this square before detection (160 lost alignment precision)
    detector_score: float = 0.6
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    quality: QualityConfig = field(default_factory=QualityConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")


@dataclass
class FrameAnalysis:
    """Everything a session or an enrollment needs to know about one frame."""

    faces: list[Face]
    reasons: list[str]  # empty when exactly one usable face was analysed
    face: Face | None = None
    continuous: bool = True  # the face continues the previous frame's track
    track_id: int = 0
    measures: FaceMeasures | None = None
    crop: np.ndarray | None = None
    embedding: np.ndarray | None = None  # (D,) unit length
    probabilities: np.ndarray | None = None  # (7,)
    full_detection: bool = True
    stage_ms: dict[str, float] = field(default_factory=dict)
    frame_hw: tuple[int, int] | None = None  # the frame's height and width (where the face box lies)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def analysed(self) -> bool:
        """True when the model ran on the frame's one face."""
        return self.embedding is not None


class FacePipeline:
    """Detection, tracking, alignment, quality gates and the model, for a stream of frames."""

    def __init__(self, model: FaceModel, detector: YuNetDetector | None = None,
                 cfg: PipelineConfig = PipelineConfig(), detector_path: str | None = None) -> None:
        self.model = model
        self.cfg = cfg
        self.detector = detector or YuNetDetector(detector_path, score_threshold=cfg.detector_score,
                                                  max_side=cfg.detect_max_side)
        self._roi_detector: YuNetDetector | None = None
        self.tracker = FaceTracker(cfg.tracker)
        self._frame_index = 0

    def reset(self) -> None:
        """Forget the track (start of a new session)."""
        self.tracker.reset()
        self._frame_index = 0

    def check_frame(self, frame: np.ndarray) -> np.ndarray:
        """Any image array -> BGR uint8, or ValueError naming what is wrong with it."""
        if not isinstance(frame, np.ndarray) or frame.size == 0 or frame.ndim not in (2, 3):
            raise ValueError(f"not an image: {getattr(frame, 'shape', type(frame).__name__)}")
        if frame.shape[0] * frame.shape[1] > self.cfg.max_image_pixels:
            raise FrameTooLargeError(f"{frame.shape[1]}x{frame.shape[0]} is over the limit of {self.cfg.max_image_pixels} pixels")
        return to_bgr_uint8(frame)

    def _detect_in_window(self, frame: np.ndarray, last: Face) -> list[Face]:
        if self._roi_detector is None:
            self._roi_detector = YuNetDetector(self.detector.model_path, score_threshold=self.cfg.detector_score,
                                               max_side=self.cfg.roi_size)
        h, w = frame.shape[:2]
        cx, cy = last.box[0] + last.box[2] / 2, last.box[1] + last.box[3] / 2
        half = max(last.box[2], last.box[3]) * self.cfg.roi_scale / 2
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return []
        window = frame[y0:y1, x0:x1]
        offset = np.array([x0, y0], dtype=np.float32)
        faces = self._roi_detector.detect(window)
        return [Face(box=np.concatenate([f.box[:2] + offset, f.box[2:]]).astype(np.float32),
                     landmarks=(f.landmarks + offset).astype(np.float32), score=f.score) for f in faces]

    def analyze(self, frame: np.ndarray, track: bool = True, gate_quality: bool = True) -> FrameAnalysis:
        """Analyse one BGR frame. With ``track`` the face must continue the previous frame's face.

        The model runs only when there is exactly one face and (with ``gate_quality``) it
        passes the quality gates; otherwise ``reasons`` says why not.
        """
        t0 = time.perf_counter()
        full = (not track or self.tracker.last is None or self._frame_index % self.cfg.detect_every == 0)
        faces: list[Face] = []
        if not full:
            faces = self._detect_in_window(frame, self.tracker.last)
            if len(faces) != 1:
                full = True
        if full:
            faces = self.detector.detect(frame)
        self._frame_index += 1
        t1 = time.perf_counter()
        result = FrameAnalysis(faces=faces, reasons=[], full_detection=full, stage_ms={"detect": (t1 - t0) * 1e3},
                               frame_hw=(int(frame.shape[0]), int(frame.shape[1])))
        if not faces:
            result.reasons.append(reasons.NO_FACE)
            return result
        if len(faces) > 1:
            result.reasons.append(reasons.MULTIPLE_FACES)
            return result
        face = result.face = faces[0]
        if track:
            result.continuous = self.tracker.update(face)
            result.track_id = self.tracker.track_id
            if not result.continuous:
                result.reasons.append(reasons.TRACK_LOST)
        crop = face_crop(frame, self.model.preprocess, face.landmarks)
        t2 = time.perf_counter()
        result.stage_ms["align"] = (t2 - t1) * 1e3
        result.crop = crop
        result.measures = face_measures(face, crop)
        bad = quality_reasons(result.measures, self.cfg.quality)
        result.stage_ms["quality"] = (time.perf_counter() - t2) * 1e3
        if gate_quality and bad:
            result.reasons.extend(bad)
            return result
        t3 = time.perf_counter()
        out = self.model.infer(crop)
        result.embedding, result.probabilities = out.embeddings[0], out.probabilities[0]
        result.stage_ms["model"] = (time.perf_counter() - t3) * 1e3
        return result


    def analyze_still(self, image: np.ndarray) -> FrameAnalysis:
        """A still photo that may show bystanders: the central face is analysed, no quality gates, no track."""
        t0 = time.perf_counter()
        faces = self.detector.detect(image)
        result = FrameAnalysis(faces=faces, reasons=[], stage_ms={"detect": (time.perf_counter() - t0) * 1e3})
        face = pick_face(faces, image.shape)
        if face is None:
            result.reasons.append(reasons.NO_FACE)
            return result
        result.face = face
        result.crop = face_crop(image, self.model.preprocess, face.landmarks)
        result.measures = face_measures(face, result.crop)
        out = self.model.infer(result.crop)
        result.embedding, result.probabilities = out.embeddings[0], out.probabilities[0]
        return result
