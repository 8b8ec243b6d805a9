"""The per-frame runtime pipeline (detect -> align -> one forward pass -> decision), stage by stage.

:func:`runtime_stages` returns the ordered ``(name, callable)`` stages of one
640x480 frame, each doing one stage of ``facelive auth``'s path on a prepared
frame; :func:`pipeline_section` times each stage and the whole frame with the
same harness as the model rows. Without a real face to run on (no data), the
section says it was not measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .latency import time_callable

Stage = tuple[str, Callable[[], Any]]
NOT_PLUGGED_IN = "no real face to time the per-frame pipeline on: pass --data (JAFFE or LFW)"


@dataclass(frozen=True)
class PipelineStages:
    """The ordered stages of one frame, and the model file their ``model`` stage runs (its parity key)."""

    stages: Sequence[Stage]
    model_file: str


def _camera_frame(data: Path | None):
    """A 640x480 frame holding one real face (a JAFFE or LFW photo on a grey canvas), or None without data."""
    import numpy as np

    from facelivenet.edge_runtime.imageio import read_image

    if data is None:
        return None
    candidates = sorted((data / "jaffe").glob("*.NE*.tiff"))[:1] or sorted((data / "lfw" / "images").glob("*/*.jpg"))[:1]
    if not candidates:
        return None
    photo = read_image(candidates[0])
    frame = np.full((480, 640, 3), 90, np.uint8)
    h, w = min(photo.shape[0], 480), min(photo.shape[1], 640)
    top, left = (480 - h) // 2, (640 - w) // 2
    frame[top:top + h, left:left + w] = photo[:h, :w]
    return frame


def runtime_stages(bundle: Path, threads: int, data: Path | None, detector: str | Path | None = None,
                   ) -> PipelineStages | None:
    """The runtime's per-frame stages at 640x480 (detect, align, quality, model, decision) for the bundle's
    default file (manifest ``default_file``), exactly as ``facelive auth`` runs them; None without a face.

    The detector is ``detector``, else $FACELIVE_DETECTOR, else the bundle's own (hash-checked)."""
    from facelivenet.edge_runtime.api import open_pipeline
    from facelivenet.edge_runtime.face_pipeline import FrameAnalysis
    from facelivenet.edge_runtime.options import RuntimeOptions
    from facelivenet.edge_runtime.preprocess import face_crop
    from facelivenet.edge_runtime.quality import face_measures, quality_reasons
    from facelivenet.edge_runtime.session import AuthSession

    frame = _camera_frame(data)
    if frame is None:
        return None
    options = RuntimeOptions(bundle=bundle, threads=threads, detector=detector)  # the bundle's default file
    pipeline = open_pipeline(options)
    model = pipeline.model
    faces = pipeline.detector.detect(frame)
    if len(faces) != 1:
        return None
    face = faces[0]
    crop = face_crop(frame, model.preprocess, face.landmarks)
    out = model.infer(crop)
    analysis = FrameAnalysis(faces=faces, reasons=[], face=face, embedding=out.embeddings[0],
                             probabilities=out.probabilities[0])
    cfg = options.session.session_config(model.manifest)
    return PipelineStages([
        ("detect", lambda: pipeline.detector.detect(frame)),
        ("align", lambda: face_crop(frame, model.preprocess, face.landmarks)),
        ("quality", lambda: quality_reasons(face_measures(face, crop), pipeline.cfg.quality)),
        ("model", lambda: model.infer(crop)),
        ("decision", lambda: AuthSession(out.embeddings[0], options.session.challenge, cfg).feed(analysis, 0.0)),
    ], model.file.parity_key)


def pipeline_section(timed: PipelineStages | None, runs: int, warmup: int, threads: int) -> dict[str, Any]:
    """Per-stage and whole-frame latency (ms) of ``timed``'s stages, or why nothing was measured."""
    if not timed:
        return {"measured": False, "reason": NOT_PLUGGED_IN}
    stages = timed.stages
    per_stage = {name: time_callable(fn, runs, warmup)[0].to_dict() for name, fn in stages}

    def frame() -> None:
        for _, fn in stages:
            fn()

    total, _ = time_callable(frame, runs, warmup)
    frame_ms = total.to_dict()
    return {"measured": True, "threads": threads, "frame_size": "640x480", "model_file": timed.model_file,
            "stages_ms": {name: stats["median"] for name, stats in per_stage.items()}, "stages": per_stage,
            "frame_latency_ms": frame_ms, "fps": round(1000.0 / frame_ms["median"], 1) if frame_ms["median"] else None}
