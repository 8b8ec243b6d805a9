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
from facelivenet.edge_runtime.constants import DEFAULT_CHALLENGE, DEFAULT_FPS, DEFAULT_HOLD_FRAMES, DEFAULT_STEP_TIMEOUT_S
from facelivenet.edge_runtime.face_pipeline import FacePipeline
from facelivenet.edge_runtime.store import TemplateStore

from facelivenet.edge_runtime.identity_evidence import DEFAULT_WINDOW
from facelivenet.edge_runtime.step_plan import PositionRule, TimingRule, distinct_challenges

from .calibration import CalibrationRates, enroll_subjects, loso_rules, session_rule, still_outputs
from .data import load_subjects, split_description
from .identity import IDENTITIES, identity_pipeline
from .memo import MemoDetector, MemoModel
from .render import CANVAS_HW, Renderer
from .report import (BPCER_TARGETS, det_curve, error_rates, meets_targets, open_identity_rates, replay_detail,
                     write_report)
from .scenarios import BONA_FIDE, SESSION_MODELS, SESSION_TYPES, plan_sessions
from .simulate import SessionThresholds, SuiteSetup, run_plans

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
    target_far: float = CalibrationRates.far  # the identity aggregate's
    floor_far: float = CalibrationRates.floor_far
    continuity_far: float = CalibrationRates.continuity_far
    rest_rate: float = CalibrationRates.rest_rate  # the expression margin's: how often a face at rest rises that much
    continuity_window: int = DEFAULT_WINDOW
    identity: str = "model"  # or "dlib": the diagnostic (identity.py)
    session_model: str = "smooth"
    expression_threshold: float = 0.3  # the old global floor: reported, no longer decides
    expressions: tuple[str, ...] = DEFAULT_CHALLENGE
    length: int = 0
    fps: float = DEFAULT_FPS
    hold_frames: int = DEFAULT_HOLD_FRAMES
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    types: tuple[str, ...] = SESSION_TYPES
    quick: bool = False
    positions: PositionRule | None = PositionRule()  # a target oval per step (None: anywhere)
    timing: TimingRule | None = TimingRule()  # a random rest before each prompt, the reaction bound

    def __post_init__(self) -> None:
        if self.sessions_per_type < 1 or self.variants < 1:
            raise ValueError("sessions per type and jitter variants must be >= 1")
        self.rates  # validates the four rates
        if self.identity not in IDENTITIES:
            raise ValueError(f"unknown identity {self.identity!r}; choose from {', '.join(IDENTITIES)}")
        if self.session_model not in SESSION_MODELS:
            raise ValueError(f"unknown session model {self.session_model!r}; choose from {', '.join(SESSION_MODELS)}")
        if not 0 < self.expression_threshold <= 1:
            raise ValueError(f"expression threshold must be in (0, 1], got {self.expression_threshold}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        unknown = [t for t in self.types if t not in SESSION_TYPES]
        if unknown:
            raise ValueError(f"unknown session type(s) {', '.join(unknown)}; choose from {', '.join(SESSION_TYPES)}")
        # bona fide sessions always run: BPCER and the DET curve need them
        object.__setattr__(self, "types", tuple(t for t in SESSION_TYPES if t == BONA_FIDE or t in self.types))

    @property
    def rates(self) -> CalibrationRates:
        try:
            return CalibrationRates(self.target_far, self.floor_far, self.continuity_far, self.rest_rate)
        except ValueError as exc:
            raise ValueError(f"target FAR: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data"] = str(self.data)
        return d


@dataclass
class PreparedSuite:
    """What every operating point of one suite shares: the cached pipeline, the enrolled people and
    the still outputs thresholds are calibrated on (they depend on the data, seed, variants,
    challenge and identity, not on the rates)."""

    key: tuple
    model: Any  # the bundle's model (unwrapped): its description and fingerprint go into reports
    pipeline: FacePipeline  # with the memoised detector and model
    judged: Any  # the pipeline that decides identity (``pipeline``, or dlib's for the diagnostic)
    challenge: ChallengeConfig
    subjects: list
    renderer: Renderer
    templates: dict
    rejected: Any
    stills: Any


def _prepared_key(cfg: SuiteConfig) -> tuple:
    return (str(cfg.data), cfg.seed, cfg.variants, cfg.identity, cfg.expressions, cfg.length)


def prepare_suite(cfg: SuiteConfig, pipeline: FacePipeline) -> PreparedSuite:
    """Memoise the pipeline's detector and model, enroll every subject and run the calibration stills."""
    model = pipeline.model
    pipeline.detector, pipeline.model = MemoDetector(pipeline.detector), MemoModel(pipeline.model)
    judged = identity_pipeline(pipeline, cfg.identity)
    ccfg = ChallengeConfig(cfg.expressions, cfg.length)
    subjects = load_subjects(cfg.data, ccfg.expressions)
    renderer = Renderer(seed=cfg.seed)
    with tempfile.TemporaryDirectory(prefix="facelive-attacks-") as tmp, \
            TemplateStore(Path(tmp) / "templates.db") as store:
        templates, rejected = enroll_subjects(judged, renderer, store, subjects)
    stills = still_outputs(judged, renderer, subjects, rest_variants=cfg.variants, rest_pipeline=pipeline)
    return PreparedSuite(_prepared_key(cfg), model, pipeline, judged, ccfg, subjects, renderer, templates, rejected,
                         stills)


def run_suite(cfg: SuiteConfig, pipeline: FacePipeline, out_dir: Path,
              progress: Callable[[int, int], None] | None = None,
              prepared: PreparedSuite | None = None) -> dict[str, Any]:
    """Run every session type and write the report folder; returns the summary (the JSON of the CLI).

    ``prepared`` (from :func:`prepare_suite` on ``pipeline``) lets several operating points share
    one enrollment and one set of cached detections and forward passes.
    """
    start = time.perf_counter()
    if prepared is None:
        prepared = prepare_suite(cfg, pipeline)
    elif prepared.key != _prepared_key(cfg):
        raise ValueError("the prepared suite was built for other data, seed, variants, identity or challenge")
    model, pipeline, judged = prepared.model, prepared.pipeline, prepared.judged
    ccfg, subjects, renderer, templates = prepared.challenge, prepared.subjects, prepared.renderer, prepared.templates
    rejected, stills = prepared.rejected, prepared.stills
    calib = loso_rules(subjects, templates, stills, ccfg.expressions, cfg.rates)
    rules = {name: SessionThresholds(*session_rule(rule, cfg.continuity_window)) for name, rule in calib.items()}
    positions, timing = cfg.positions, cfg.timing
    setup = SuiteSetup(judged, renderer, {s.name: s for s in subjects}, templates, rules, ccfg,
                       cfg.expression_threshold, cfg.variants, cfg.fps, cfg.hold_frames, cfg.step_timeout_s,
                       cfg.session_model, positions, timing)
    plans = [p for kind in cfg.types for p in plan_sessions(kind, cfg.sessions_per_type, subjects, ccfg, cfg.seed)]
    log.info("%d subjects enrolled; running %d sessions (%d per type), identity %s, session model %s",
             len(subjects), len(plans), cfg.sessions_per_type, cfg.identity, cfg.session_model)
    records = run_plans(setup, plans, progress)
    rates = error_rates(records)
    orders = distinct_orders(ccfg)
    challenges = distinct_challenges(orders, positions, timing, ccfg.steps)
    bpcer_target = BPCER_TARGETS[cfg.identity]
    ranges = {kind: {"min": min(r[kind]["threshold"] for r in calib.values()),
                     "max": max(r[kind]["threshold"] for r in calib.values())} for kind in next(iter(calib.values()))}
    summary: dict[str, Any] = {
        "sessions_per_type": cfg.sessions_per_type,
        "quick": cfg.quick,
        "bpcer": rates.get("bpcer"),
        "apcer": rates["apcer"],
        "ci95": rates["ci95"],
        "challenge_orders": orders,
        "challenge_orders_seen": len({tuple(r.challenge) for r in records}),
        "distinct_challenges": challenges,
        "plan": {"positions": None if positions is None else positions.to_dict(),
                 "timing": None if timing is None else timing.to_dict()},
        "challenge": {"expressions": list(ccfg.expressions), "steps": ccfg.steps},
        "reasons": rates["reasons"],
        "counts": rates["counts"],
        "meets_target": meets_targets(rates, orders, bpcer_target, challenges),
        "bpcer_target": bpcer_target,
        "identity": {"name": cfg.identity, "description": IDENTITIES[cfg.identity],
                     **({"dlib_descriptors": judged.computed} if cfg.identity == "dlib" else {})},
        "session_model": {"name": cfg.session_model, "description": SESSION_MODELS[cfg.session_model]},
        "without_identity": open_identity_rates(records),
        "replay_detail": replay_detail(records),
        "thresholds": {
            "method": "leave-one-subject-out: every threshold of the sessions enrolled as S is the lowest one "
                      "whose false-accept rate on its impostor pairs of the OTHER subjects' stills is <= its "
                      "stated rate (calibration.py); never the reported sessions, never an image of S",
            "rates": dataclasses.asdict(cfg.rates),
            "ranges": ranges,
            "per_subject": calib,
            "verification": {
                "method": "the identity aggregate: (template of U, neutral still of V) pairs, U and V != S",
                "target_far": cfg.target_far, "min": ranges["aggregate"]["min"], "max": ranges["aggregate"]["max"],
                "per_subject": {k: v["aggregate"] for k, v in calib.items()},
            },
            "continuity_window": cfg.continuity_window,
            "expression": cfg.expression_threshold,
            "expression_rule": "log-odds rise over the session's own rest profile >= margin AND the most probable "
                               "of the challenge's expressions, held for hold_frames frames (the global floor "
                               "'expression' no longer decides)",
        },
        "split": split_description(subjects),
        "enrollment_rejected": rejected,
        "stills_without_face": stills.failed,
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
