"""What the demo can be told: model, thresholds, challenge, timing, sources. Validated, Kivy-free.

The command line fills a :class:`DemoSettings`; the settings screen edits a copy
and swaps it in. Thresholds left at ``None`` come from the bundle's manifest.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from facelivenet.edge_runtime.challenge import DEFAULT_EXPRESSIONS, ChallengeConfig
from facelivenet.edge_runtime.cli_runtime import DEFAULT_DB
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.face_pipeline import DEFAULT_MAX_PIXELS
from facelivenet.edge_runtime.session import SessionConfig

FORMATS = ("onnx", "tflite", "coreml")
PRECISIONS = ("fp32", "fp16", "int8")


class SettingsError(FaceLiveError):
    """A demo setting the app cannot act on."""


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo's flows read; replace it with :meth:`replace` (validated again)."""

    # model
    bundle: str | None = None
    fmt: str = "onnx"
    precision: str = "int8"
    threads: int = 1
    detector: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    public_key: str | None = None  # enforce a signed bundle manifest (edge_runtime.signing)
    # decision
    threshold: float | None = None  # verification cosine; None = the bundle's
    expression_threshold: float | None = None  # None = the bundle's
    challenge: tuple[str, ...] = DEFAULT_EXPRESSIONS
    length: int = 0
    fixed_order: bool = False  # tests and evaluation only
    seed: int | None = None  # tests and evaluation only
    hold_frames: int = 3
    step_timeout_s: float = 5.0
    max_failures: int = 5
    lockout_window_s: float = 300.0
    # enrollment
    enroll_frames: int = 5
    enroll_interval_s: float = 0.2
    # frames
    source: tuple[str, ...] = ("0",)
    enroll_source: tuple[str, ...] | None = None
    fps: float = 10.0
    mirror: bool | None = None  # None: mirror camera previews only
    db: str = DEFAULT_DB
    user: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """SettingsError naming the first value that is out of range."""
        if self.fmt not in FORMATS:
            raise SettingsError(f"format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.precision not in PRECISIONS:
            raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        checks = [
            (self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (self.max_pixels >= 1, f"max pixels must be >= 1, got {self.max_pixels}"),
            (self.threshold is None or -1.0 <= self.threshold <= 1.0,
             f"the verification threshold is a cosine in [-1, 1], got {self.threshold}"),
            (self.expression_threshold is None or 0.0 < self.expression_threshold <= 1.0,
             f"the expression threshold is a probability in (0, 1], got {self.expression_threshold}"),
            (self.length >= 0, f"challenge length must be >= 0, got {self.length}"),
            (self.hold_frames >= 1, f"hold frames must be >= 1, got {self.hold_frames}"),
            (self.step_timeout_s > 0, f"the step timeout must be > 0 s, got {self.step_timeout_s}"),
            (self.max_failures >= 1, f"max failures must be >= 1, got {self.max_failures}"),
            (self.lockout_window_s > 0, f"the lock-out window must be > 0 s, got {self.lockout_window_s}"),
            (self.enroll_frames >= 1, f"enroll frames must be >= 1, got {self.enroll_frames}"),
            (self.enroll_interval_s >= 0, f"the enroll interval must be >= 0 s, got {self.enroll_interval_s}"),
            (self.fps > 0, f"fps must be > 0, got {self.fps}"),
            (bool(self.source), "a source is needed: a camera index, a video file or a folder of frames"),
            (bool(self.db), "a template database path is needed"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        self.challenge_config()

    def replace(self, **changes) -> DemoSettings:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def challenge_config(self) -> ChallengeConfig:
        """The challenge set and length; SettingsError on an unknown expression."""
        try:
            return ChallengeConfig(tuple(self.challenge), self.length)
        except ValueError as exc:
            raise SettingsError(f"challenge: {exc}") from exc

    def session_config(self, manifest) -> SessionConfig:
        """Thresholds (overrides, else the bundle's) and timing for one authentication."""
        thr = manifest.thresholds
        return SessionConfig(
            verification_threshold=self.threshold if self.threshold is not None else thr.verification_cosine,
            expression_threshold=(self.expression_threshold if self.expression_threshold is not None
                                  else thr.expression_probability),
            hold_frames=self.hold_frames, step_timeout_s=self.step_timeout_s)

    def model_args(self) -> argparse.Namespace:
        """The model options as ``facelive``'s parser would give them (for ``cli_runtime.build_pipeline``)."""
        return argparse.Namespace(bundle=self.bundle, format=self.fmt, precision=self.precision,
                                  threads=self.threads, detector=self.detector, max_pixels=self.max_pixels,
                                  public_key=self.public_key)

    def model_key(self) -> tuple:
        """Settings that need the model reloaded when they change."""
        return (self.bundle, self.fmt, self.precision, self.threads, self.detector, self.max_pixels, self.public_key)

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
