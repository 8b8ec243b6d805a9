"""What the demo can be told: the runtime's options (model, database, session) and the app's own (sources,
enrollment capture, preview). Validated, Kivy-free.

The command line (over what :mod:`settings_file` kept: the server URL and key)
fills a :class:`DemoSettings`; the settings screen edits a copy and swaps it in.
Thresholds left at ``None`` come from the bundle's manifest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from facelivenet.edge_runtime.constants import DEFAULT_FPS
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.options import OptionsError, RuntimeOptions, SessionSettings

from .server_setting import url_problem

RUNTIME_FIELDS = frozenset(f.name for f in dataclasses.fields(RuntimeOptions)) - {"session"}
SESSION_FIELDS = frozenset(f.name for f in dataclasses.fields(SessionSettings))
# the runtime options that need the model reloaded when they change (the database and session do not)
MODEL_FIELDS = tuple(sorted(RUNTIME_FIELDS - {"db"}))


class SettingsError(FaceLiveError):
    """A demo setting the app cannot act on."""


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo's flows read; replace it with :meth:`replace` (validated again)."""

    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)  # model, database, challenge, thresholds
    # enrollment
    enroll_frames: int = 5
    enroll_interval_s: float = 0.2
    # frames
    source: tuple[str, ...] = ("0",)
    enroll_source: tuple[str, ...] | None = None
    fps: float = DEFAULT_FPS
    mirror: bool | None = None  # None: mirror camera previews only
    user: str = ""
    # server mode: the verification server decides (its URL and API key); None: the model on this device
    server: str | None = None  # http:// or https:// with a host (server_setting.url_problem)
    api_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.runtime, RuntimeOptions), "runtime must be a RuntimeOptions"),
            (self.enroll_frames >= 1, f"enroll frames must be >= 1, got {self.enroll_frames}"),
            (self.enroll_interval_s >= 0, f"the enroll interval must be >= 0 s, got {self.enroll_interval_s}"),
            (self.fps > 0, f"fps must be > 0, got {self.fps}"),
            (bool(self.source), "a source is needed: a camera index, a video file or a folder of frames"),
            (self.server is None or bool(self.api_key), "server mode needs an API key: pass --api-key, set "
                                                        "FACELIVE_API_KEY or type it in Settings"),
        ]
        if self.server is not None and (problem := url_problem(self.server)):
            raise SettingsError(problem)
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)

    @property
    def session(self) -> SessionSettings:
        """The challenge, timings, thresholds and lock-out of one authentication."""
        return self.runtime.session

    @property
    def db(self) -> str:
        return str(self.runtime.db)

    def value(self, name: str) -> Any:
        """A setting by name: the app's own, a runtime option or a session setting."""
        if name in SESSION_FIELDS:
            return getattr(self.session, name)
        return getattr(self.runtime if name in RUNTIME_FIELDS else self, name)

    def replace(self, **changes) -> DemoSettings:
        """A validated copy with ``changes`` applied; runtime options (``format``, ``threads``, ``db``, ...)
        and session settings (``threshold``, ``challenge``, ...) are named as in :mod:`edge_runtime.options`."""
        session = {k: changes.pop(k) for k in list(changes) if k in SESSION_FIELDS}
        runtime = {k: changes.pop(k) for k in list(changes) if k in RUNTIME_FIELDS}
        try:
            if session:
                runtime["session"] = dataclasses.replace(self.session, **session)
            if runtime:
                changes["runtime"] = dataclasses.replace(self.runtime, **runtime)
        except OptionsError as exc:
            raise SettingsError(str(exc)) from exc
        return dataclasses.replace(self, **changes)

    def model_key(self) -> tuple:
        """Settings that need the model reloaded (or, in server mode, the server reached again) when they
        change."""
        return (*(getattr(self.runtime, name) for name in MODEL_FIELDS), self.server, self.api_key)

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
