"""What the demo can be told: model, thresholds, challenge, timing, sources. Validated, Kivy-free.

The command line fills a :class:`DemoSettings`; the settings screen edits a copy
and swaps it in. Thresholds left at ``None`` come from the bundle's manifest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from facelivenet.edge_runtime.challenge import ChallengeConfig
from facelivenet.edge_runtime.constants import (DEFAULT_CHALLENGE, DEFAULT_DB, DEFAULT_FPS,
                                                 DEFAULT_HOLD_FRAMES, DEFAULT_LOCKOUT_WINDOW_S, DEFAULT_MAX_FAILURES,
                                                 DEFAULT_MAX_PIXELS, DEFAULT_STEP_TIMEOUT_S,
                                                 DEFAULT_THREADS)
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.options import OptionsError, RuntimeOptions, SessionSettings
from facelivenet.edge_runtime.session import SessionConfig


class SettingsError(FaceLiveError):
    """A demo setting the app cannot act on."""


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo's flows read; replace it with :meth:`replace` (validated again)."""

    # model
    bundle: str | None = None
    fmt: str | None = None  # None: the bundle's default file
    precision: str | None = None
    variant: str | None = None  # int8: "static" or "weight-only"; None: the bundle's choice
    threads: int = DEFAULT_THREADS
    detector: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    public_key: str | None = None  # enforce a signed bundle manifest (edge_runtime.signing)
    # decision
    threshold: float | None = None  # verification cosine; None = the bundle's
    expression_threshold: float | None = None  # None = the bundle's
    challenge: tuple[str, ...] = DEFAULT_CHALLENGE
    length: int = 0
    fixed_order: bool = False  # tests and evaluation only
    seed: int | None = None  # tests and evaluation only
    hold_frames: int = DEFAULT_HOLD_FRAMES
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    max_failures: int = DEFAULT_MAX_FAILURES
    lockout_window_s: float = DEFAULT_LOCKOUT_WINDOW_S
    # enrollment
    enroll_frames: int = 5
    enroll_interval_s: float = 0.2
    # frames
    source: tuple[str, ...] = ("0",)
    enroll_source: tuple[str, ...] | None = None
    fps: float = DEFAULT_FPS
    mirror: bool | None = None  # None: mirror camera previews only
    db: str = DEFAULT_DB
    user: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """SettingsError naming the first value that is out of range."""
        try:
            self.runtime_options()
        except OptionsError as exc:
            raise SettingsError(str(exc)) from exc
        checks = [
            (self.enroll_frames >= 1, f"enroll frames must be >= 1, got {self.enroll_frames}"),
            (self.enroll_interval_s >= 0, f"the enroll interval must be >= 0 s, got {self.enroll_interval_s}"),
            (self.fps > 0, f"fps must be > 0, got {self.fps}"),
            (bool(self.source), "a source is needed: a camera index, a video file or a folder of frames"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)

    def replace(self, **changes) -> DemoSettings:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def session_settings(self) -> SessionSettings:
        """The challenge, timings, thresholds and lock-out of one authentication."""
        return SessionSettings(
            challenge=tuple(self.challenge), length=self.length, fixed_order=self.fixed_order, seed=self.seed,
            hold_frames=self.hold_frames, step_timeout_s=self.step_timeout_s, threshold=self.threshold,
            expression_threshold=self.expression_threshold, max_failures=self.max_failures,
            lockout_window_s=self.lockout_window_s)

    def runtime_options(self) -> RuntimeOptions:
        """The runtime's options (model, detector, database, session) these settings describe."""
        return RuntimeOptions(bundle=self.bundle, format=self.fmt, precision=self.precision, variant=self.variant,
                              threads=self.threads,
                              public_key=self.public_key, detector=self.detector, max_pixels=self.max_pixels,
                              db=self.db, session=self.session_settings())

    def challenge_config(self) -> ChallengeConfig:
        """The challenge set and length; SettingsError on an unknown expression."""
        try:
            return self.session_settings().challenge_config()
        except OptionsError as exc:
            raise SettingsError(str(exc)) from exc

    def session_config(self, manifest) -> SessionConfig:
        """Thresholds (overrides, else the bundle's) and timing for one authentication."""
        return self.session_settings().session_config(manifest)

    def model_key(self) -> tuple:
        """Settings that need the model reloaded when they change."""
        return (self.bundle, self.fmt, self.precision, self.variant, self.threads, self.detector, self.max_pixels, self.public_key)

    @property
    def enroll_spec(self) -> tuple[str, ...]:
        """The source enrollment reads: --enroll-source, else the main source."""
        return self.enroll_source or self.source

    def mirrors(self, source: tuple[str, ...]) -> bool:
        """Is the preview of ``source`` mirrored? (a front camera: yes; files: no; unless set)."""
        return self.mirror if self.mirror is not None else is_camera(source)


def is_camera(source: tuple[str, ...]) -> bool:
    """A source spec that names a camera index."""
    return len(source) == 1 and str(source[0]).isdigit()
