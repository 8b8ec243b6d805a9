"""What an app tells the runtime: :class:`RuntimeOptions` (model, detector, database) and
:class:`SessionSettings` (challenge, timings, thresholds, lock-out). Frozen and validated on creation.

The command line, the demo and the benchmarks build these (never an ``argparse.Namespace``) and hand
them to :func:`facelivenet.edge_runtime.api.open_pipeline` or :class:`~.api.Authenticator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .challenge import ChallengeConfig, parse_expressions
from .constants import (DEFAULT_CHALLENGE, DEFAULT_DB, DEFAULT_HOLD_FRAMES, DEFAULT_LOCKOUT_WINDOW_S,
                        DEFAULT_MAX_FAILURES, DEFAULT_MAX_PIXELS, DEFAULT_STEP_TIMEOUT_S,
                        DEFAULT_THREADS, FORMATS, INT8_VARIANTS, MAX_THREADS, PRECISIONS)
from .errors import FaceLiveError
from .expression_baseline import DEFAULT_MARGIN
from .step_plan import PositionRule, StepPlan, TimingRule, draw_plan

if TYPE_CHECKING:
    from .authenticate import LockoutConfig
    from .session import SessionConfig


class OptionsError(FaceLiveError, ValueError):
    """An option value the runtime cannot act on; the message names it."""


def bundle_or(explicit: float | None, manifest, name: str) -> float:
    """A threshold given explicitly, else the bundle's (``manifest.thresholds.<name>``): the one place the
    runtime resolves a threshold."""
    return explicit if explicit is not None else getattr(manifest.thresholds, name)


def _require(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise OptionsError(message)


@dataclass(frozen=True)
class SessionSettings:
    """How an authentication session runs. Thresholds left at ``None`` come from the bundle's manifest
    (the verification cosine, the expression probability) or from the session rules' defaults (the
    expression margin, the identity floor and continuity; ARCHITECTURE.md, "Session rules")."""

    challenge: tuple[str, ...] = DEFAULT_CHALLENGE  # the expressions to draw from (neutral comes before each)
    length: int = 0  # expression steps; 0 = one per expression
    fixed_order: bool = False  # the challenge in its given order: tests and evaluation only
    seed: int | None = None  # seed the draw: tests and evaluation only
    hold_frames: int = DEFAULT_HOLD_FRAMES
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    threshold: float | None = None  # verification cosine of the identity aggregate
    expression_threshold: float | None = None  # the old global floor: reported, no longer decides
    expression_margin: float | None = None  # log-odds rise over the face at rest
    identity_floor: float | None = None
    continuity: float | None = None
    max_failures: int = DEFAULT_MAX_FAILURES
    lockout_window_s: float = DEFAULT_LOCKOUT_WINDOW_S
    # a target oval per step and a random rest before each prompt (step_plan.py); None turns each off, as
    # recorded sources (a folder, a video) need: a recording cannot answer a live prompt
    positions: PositionRule | None = PositionRule()
    timing: TimingRule | None = TimingRule()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "challenge", tuple(parse_expressions(self.challenge)))
            self.challenge_config()
        except ValueError as exc:
            raise OptionsError(f"challenge: {exc}") from exc
        _require([
            (self.threshold is None or -1.0 <= self.threshold <= 1.0,
             f"the verification threshold is a cosine in [-1, 1], got {self.threshold}"),
            (self.expression_threshold is None or 0.0 < self.expression_threshold <= 1.0,
             f"the expression threshold is a probability in (0, 1], got {self.expression_threshold}"),
            (self.hold_frames >= 1, f"hold frames must be >= 1, got {self.hold_frames}"),
            (self.step_timeout_s > 0, f"the step timeout must be > 0 s, got {self.step_timeout_s}"),
            (self.max_failures >= 1, f"max failures must be >= 1, got {self.max_failures}"),
            (self.lockout_window_s > 0, f"the lock-out window must be > 0 s, got {self.lockout_window_s}"),
            (self.positions is None or isinstance(self.positions, PositionRule),
             "positions must be a PositionRule or None"),
            (self.timing is None or isinstance(self.timing, TimingRule), "timing must be a TimingRule or None"),
            (self.timing is None or self.timing.hold_max_s + self.hold_frames * 0.1 < self.step_timeout_s,
             f"timing.hold_max_s ({self.timing and self.timing.hold_max_s} s) leaves no time for the hold frames "
             f"within the step timeout ({self.step_timeout_s} s)"),
        ])

    def challenge_config(self) -> ChallengeConfig:
        """The challenge set and its length."""
        return ChallengeConfig(self.challenge, self.length)

    def draw_challenge(self) -> tuple[str, ...]:
        """A challenge for one session: drawn at random (or seeded), or the set's order with ``fixed_order``."""
        from .authenticate import choose_challenge

        return choose_challenge(self.challenge_config(), self.seed, self.fixed_order)

    def draw_plan(self, labels: tuple[str, ...]) -> StepPlan:
        """Each step's target and rest for one session: from :mod:`secrets` (or seeded with ``seed``)."""
        return draw_plan(labels, self.positions, self.timing, self.seed)

    def lockout(self) -> LockoutConfig:
        """How many failures within how long lock the user out."""
        from .authenticate import LockoutConfig

        return LockoutConfig(self.max_failures, self.lockout_window_s)

    def session_config(self, manifest) -> SessionConfig:
        """The session's thresholds (these settings, else the bundle's) and timings; OptionsError on a bad one."""
        from .session import SessionConfig

        try:
            return SessionConfig(
                verification_threshold=bundle_or(self.threshold, manifest, "verification_cosine"),
                expression_threshold=bundle_or(self.expression_threshold, manifest, "expression_probability"),
                hold_frames=self.hold_frames, step_timeout_s=self.step_timeout_s,
                expression_margin=self.expression_margin if self.expression_margin is not None else DEFAULT_MARGIN,
                identity_floor=self.identity_floor, continuity_threshold=self.continuity,
                positions=self.positions, timing=self.timing)
        except ValueError as exc:
            raise OptionsError(str(exc)) from exc


@dataclass(frozen=True)
class RuntimeOptions:
    """Which model runs, on what, and where templates live. ``bundle=None``: ``$FACELIVE_BUNDLE``, else the
    shipped default bundle; ``detector=None``: ``$FACELIVE_DETECTOR``, else the bundle's own (hash-checked);
    ``public_key=None``: ``$FACELIVE_BUNDLE_PUBLIC_KEY`` (a signed manifest is then required)."""

    bundle: str | Path | None = None
    # None: the bundle chooses (its manifest's default_file, the fastest file that passed every gate)
    format: str | None = None
    precision: str | None = None
    variant: str | None = None  # int8 only: "static" or "weight-only"
    threads: int = DEFAULT_THREADS
    rerank: bool = False  # measure which file is fastest and correct on this device again (file_ranking.py)
    public_key: str | Path | None = None
    detector: str | Path | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS  # images with more pixels are refused
    detect_every: int = 1  # full-frame detection every N frames, a window search in between
    db: str | Path = DEFAULT_DB  # the SQLite template database
    session: SessionSettings = field(default_factory=SessionSettings)

    def __post_init__(self) -> None:
        _require([
            (self.format in (None, *FORMATS), f"format must be one of {', '.join(FORMATS)}, got {self.format!r}"),
            (self.precision in (None, *PRECISIONS),
             f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (self.variant in (None, *INT8_VARIANTS),
             f"variant must be one of {', '.join(INT8_VARIANTS)}, got {self.variant!r}"),
            (self.variant is None or self.precision in (None, "int8"),
             f"a variant ({self.variant}) is an int8 file's; precision {self.precision} has none"),
            (1 <= self.threads <= MAX_THREADS, f"threads must be >= 1 and <= {MAX_THREADS}, got {self.threads}"),
            (self.max_pixels >= 1, f"max pixels must be >= 1, got {self.max_pixels}"),
            (self.detect_every >= 1, f"detect_every must be >= 1, got {self.detect_every}"),
            (bool(str(self.db)), "a template database path is needed"),
            (isinstance(self.session, SessionSettings), "session must be a SessionSettings"),
        ])
