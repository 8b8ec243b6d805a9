"""The per-frame runtime pipeline (detect -> align -> quality -> one forward pass -> decision), timed as it runs.

:func:`runtime_frame` prepares one 640x480 frame holding a real face and a
session against that face, and returns a callable that sends the frame down
``facelive auth``'s own path: :meth:`FacePipeline.analyze` (which reports its
stages' times in ``stage_ms``) and then the session's decision.
:func:`pipeline_section` times whole frames with the same harness as the model
rows and summarises the stage times the pipeline reported. Without a real face
to run on (no data), the section says it was not measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .latency import summarize, time_callable

NOT_PLUGGED_IN = "no real face to time the per-frame pipeline on: pass --data (JAFFE or LFW)"


@dataclass(frozen=True)
class PipelineRun:
    """One frame through the runtime (returns its stage times in ms), and the model file it runs (its parity
    key)."""

    frame: Callable[[], Mapping[str, float]]
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


def runtime_frame(bundle: Path, threads: int, data: Path | None, detector: str | Path | None = None,
                  ) -> PipelineRun | None:
    """One 640x480 frame through the runtime as ``facelive auth`` runs it, for the bundle's default file
    (manifest ``default_file``); None without a face the model runs on.

    The detector is ``detector``, else $FACELIVE_DETECTOR, else the bundle's own (hash-checked)."""
    from facelivenet.edge_runtime.api import open_pipeline
    from facelivenet.edge_runtime.options import RuntimeOptions
    from facelivenet.edge_runtime.reasons import Decision
    from facelivenet.edge_runtime.session import AuthSession

    image = _camera_frame(data)
    if image is None:
        return None
    options = RuntimeOptions(bundle=bundle, threads=threads, detector=detector)  # the bundle's default file
    pipeline = open_pipeline(options)
    first = pipeline.analyze(pipeline.check_frame(image))
    if not first.analysed:
        return None
    cfg = options.session.session_config(pipeline.model.manifest)
    session = AuthSession(first.embedding, options.session.challenge, cfg)

    def frame() -> dict[str, float]:
        nonlocal session
        if session.status != Decision.PENDING:  # decided: a new attempt, as the next user would start
            session = AuthSession(first.embedding, options.session.challenge, cfg)
        analysis = pipeline.analyze(pipeline.check_frame(image))
        start = time.perf_counter()
        session.feed(analysis, 0.0)
        return {**analysis.stage_ms, "decision": (time.perf_counter() - start) * 1e3}

    return PipelineRun(frame, pipeline.model.file.parity_key)


ROW_TOGETHER_S = 10.0  # how long each process of row_on_all_cores times the row
ROW_START_S = 10.0  # the common start, after every process has opened its pipeline


def _row_process(bundle: Path | None, data: Path | None, start_at: float, seconds: float) -> tuple[float, float]:
    """One process of :func:`row_on_all_cores`: (frames/s, frames per CPU second) of the row from ``start_at``."""
    run = runtime_frame(bundle, 1, data)
    if run is None:
        return 0.0, 0.0
    for _ in range(10):
        run.frame()
    time.sleep(max(0.0, start_at - time.time()))
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        run.frame()
        n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n / wall, (n / cpu if cpu > 0 else 0.0)


def row_on_all_cores(bundle: Path | None, data: Path | None, processes: int, seconds: float = ROW_TOGETHER_S,
                     start_s: float = ROW_START_S) -> dict[str, Any]:
    """The per-frame row of :func:`runtime_frame` in ``processes`` processes at once (1 thread each), all timed
    over the same ``seconds``: what the offline pipeline reaches on that many cores, per process and in all."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        start_at = time.time() + start_s
        got = pool.starmap(_row_process, [(bundle, data, start_at, seconds)] * processes)
    fps = [round(g[0], 1) for g in got]
    return {"processes": processes, "seconds": seconds, "fps_per_process": fps, "fps": round(sum(fps), 1),
            "fps_per_cpu_s": round(sum(g[1] for g in got) / processes, 1)}


def pipeline_section(run: PipelineRun | None, runs: int, warmup: int, threads: int) -> dict[str, Any]:
    """Whole-frame latency (ms) of ``run`` and each stage's, as the pipeline reported it; or why nothing was
    measured."""
    if not run:
        return {"measured": False, "reason": NOT_PLUGGED_IN}
    reported: list[Mapping[str, float]] = []
    total, _ = time_callable(lambda: reported.append(run.frame()), runs, warmup)
    timed = reported[warmup:]
    names = list(dict.fromkeys(name for stages in timed for name in stages))
    per_stage = {name: summarize([s[name] for s in timed if name in s], warmup).to_dict() for name in names}
    frame_ms = total.to_dict()
    return {"measured": True, "threads": threads, "frame_size": "640x480", "model_file": run.model_file,
            "stages_ms": {name: stats["median"] for name, stats in per_stage.items()}, "stages": per_stage,
            "frame_latency_ms": frame_ms, "fps": round(1000.0 / frame_ms["median"], 1) if frame_ms["median"] else None}
