"""The attack suite end to end: people, enrollment, thresholds, sessions, rates, report folder."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from facelivenet.edge_runtime.challenge import ChallengeConfig, distinct_orders
from facelivenet.edge_runtime.face_pipeline import FacePipeline
from facelivenet.edge_runtime.store import TemplateStore

from .calibration import enroll_subjects, loso_thresholds, still_embeddings
from .data import load_subjects, split_description
from .memo import MemoDetector, MemoModel
from .render import CANVAS_HW, Renderer
from .report import det_curve, error_rates, meets_targets, open_identity_rates, replay_detail, write_report
from .scenarios import BONA_FIDE, SESSION_TYPES, plan_sessions
from .simulate import SuiteSetup, run_plans

log = logging.getLogger(__name__)

FULL_SESSIONS, QUICK_SESSIONS = 100, 20
FULL_VARIANTS, QUICK_VARIANTS = 6, 3


@dataclass(frozen=True)
class SuiteConfig:
    """What a run measures; the report's config.json is this plus the model and data it ran on."""

    data: Path  # a JAFFE-shaped folder
    sessions_per_type: int = FULL_SESSIONS
    variants: int = FULL_VARIANTS  # jitter variants per image and kind
    seed: int = 0
    target_far: float = 1e-2
    expression_threshold: float = 0.3
    expressions: tuple[str, ...] = ("happy", "surprise")
    length: int = 0
    fps: float = 10.0
    hold_frames: int = 3
    step_timeout_s: float = 5.0
    types: tuple[str, ...] = SESSION_TYPES
    quick: bool = False

    def __post_init__(self) -> None:
        if self.sessions_per_type < 1 or self.variants < 1:
            raise ValueError("sessions per type and jitter variants must be >= 1")
        if not 0 < self.target_far < 1:
            raise ValueError(f"target FAR must be in (0, 1), got {self.target_far}")
        if not 0 < self.expression_threshold <= 1:
            raise ValueError(f"expression threshold must be in (0, 1], got {self.expression_threshold}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        unknown = [t for t in self.types if t not in SESSION_TYPES]
        if unknown:
            raise ValueError(f"unknown session type(s) {', '.join(unknown)}; choose from {', '.join(SESSION_TYPES)}")
        # bona fide sessions always run: BPCER and the DET curve need them
        object.__setattr__(self, "types", tuple(t for t in SESSION_TYPES if t == BONA_FIDE or t in self.types))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data"] = str(self.data)
        return d


def run_suite(cfg: SuiteConfig, pipeline: FacePipeline, out_dir: Path,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run every session type and write the report folder; returns the summary (the JSON of the CLI)."""
    start = time.perf_counter()
    model = pipeline.model
    pipeline.detector, pipeline.model = MemoDetector(pipeline.detector), MemoModel(pipeline.model)
    ccfg = ChallengeConfig(cfg.expressions, cfg.length)
    subjects = load_subjects(cfg.data, ccfg.expressions)
    renderer = Renderer(seed=cfg.seed)
    with tempfile.TemporaryDirectory(prefix="facelive-attacks-") as tmp, \
            TemplateStore(Path(tmp) / "templates.db") as store:
        templates, rejected = enroll_subjects(pipeline, renderer, store, subjects)
    embeddings, failed = still_embeddings(pipeline, renderer, subjects)
    calib = loso_thresholds(subjects, templates, embeddings, cfg.target_far)
    setup = SuiteSetup(pipeline, renderer, {s.name: s for s in subjects}, templates,
                       {k: v["threshold"] for k, v in calib.items()}, ccfg, cfg.expression_threshold,
                       cfg.variants, cfg.fps, cfg.hold_frames, cfg.step_timeout_s)
    plans = [p for kind in cfg.types for p in plan_sessions(kind, cfg.sessions_per_type, subjects, ccfg, cfg.seed)]
    log.info("%d subjects enrolled; running %d sessions (%d per type)", len(subjects), len(plans),
             cfg.sessions_per_type)
    records = run_plans(setup, plans, progress)
    rates = error_rates(records)
    orders = distinct_orders(ccfg)
    thresholds = [v["threshold"] for v in calib.values()]
    summary: dict[str, Any] = {
        "sessions_per_type": cfg.sessions_per_type,
        "quick": cfg.quick,
        "bpcer": rates.get("bpcer"),
        "apcer": rates["apcer"],
        "ci95": rates["ci95"],
        "challenge_orders": orders,
        "challenge_orders_seen": len({tuple(r.challenge) for r in records}),
        "challenge": {"expressions": list(ccfg.expressions), "steps": ccfg.steps},
        "reasons": rates["reasons"],
        "counts": rates["counts"],
        "meets_target": meets_targets(rates, orders),
        "without_identity": open_identity_rates(records),
        "replay_detail": replay_detail(records),
        "thresholds": {
            "verification": {
                "method": "leave-one-subject-out: for sessions enrolled as S, the lowest threshold with FAR <= "
                          "target_far on (template of U, still of V) pairs, U and V != S (genuine U == V, "
                          "U's enrollment images excluded); never the reported sessions",
                "target_far": cfg.target_far, "min": min(thresholds), "max": max(thresholds),
                "per_subject": calib,
            },
            "expression": cfg.expression_threshold,
            "expression_rule": "argmax == asked and p >= threshold, held for hold_frames frames",
        },
        "split": split_description(subjects),
        "enrollment_rejected": rejected,
        "stills_without_face": failed,
        "derivation_mismatches": sum(not r.detail["derivation_agrees"] for r in records),
        "model": model.description,
        "forward_passes": pipeline.model.computed,
        "detections": pipeline.detector.computed,
        "frames_judged": pipeline.detector.calls,
        "report": str(out_dir),
    }
    if cfg.quick:
        summary["note"] = (f"--quick: {cfg.sessions_per_type} sessions per type and {cfg.variants} jitter variants; "
                           f"the full run has {FULL_SESSIONS} and {FULL_VARIANTS}")
    config = {**cfg.to_dict(), "canvas_hw": list(CANVAS_HW), "model": model.description,
              "bundle": str(model.bundle_dir), "fingerprint": model.fingerprint,
              "detector": str(pipeline.detector.model_path), "model_threads": model.backend.threads,
              "challenge_orders": orders}
    summary["elapsed_s"] = round(time.perf_counter() - start, 1)
    write_report(out_dir, summary, config, records, det_curve(records))
    return summary
