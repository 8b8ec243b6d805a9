"""The app's runtime side, without Kivy: the :class:`~facelivenet.edge_runtime.api.Authenticator` (the
verified model and the template database) and the frame feeds.

Screens and the headless driver ask the engine for a flow (:meth:`DemoEngine.enroll`,
:meth:`DemoEngine.authenticate`); at most one runs at a time. Only the runtime's
public API is used: no torch, no training or export code, no store of its own.
"""

from __future__ import annotations

import logging

from facelivenet.edge_runtime.api import Authenticator, UserInfo, delete_user, enrolled_users
from facelivenet.edge_runtime.errors import (BundleNotFoundError, DetectorNotFoundError, FaceLiveError,
                                             FileChoiceError)
from facelivenet.edge_runtime.face_pipeline import FacePipeline
from facelivenet.edge_runtime.sources import open_source

from .auth_flow import AuthFlow
from .enroll_flow import EnrollFlow
from .feed import FrameFeed
from .flow import Flow
from .settings import DemoSettings, is_camera

log = logging.getLogger(__name__)

BUNDLE_FIX = ("fix: pass --bundle PATH to a bundle written by facelive-export (re-export a damaged one), or unset "
              "FACELIVE_BUNDLE to use the shipped one")
CHOICE_FIX = "fix: choose a format and precision the bundle has (--format, --precision, or Settings)"


class ModelLoadError(FaceLiveError):
    """The model (bundle, file, backend or detector) cannot be loaded; the message says how to fix it."""


def open_authenticator(settings: DemoSettings) -> Authenticator:
    """The verified model and detector; ModelLoadError with the fix when the bundle is missing or tampered."""
    try:
        return Authenticator(settings.runtime)
    except DetectorNotFoundError as exc:
        raise ModelLoadError(f"cannot load the face detector: {exc}") from exc
    except FileChoiceError as exc:
        raise ModelLoadError(f"cannot load the model: {exc}; {CHOICE_FIX}") from exc
    except BundleNotFoundError as exc:  # its message says to pass --bundle
        raise ModelLoadError(f"cannot load the model: {exc}") from exc
    except FaceLiveError as exc:
        raise ModelLoadError(f"cannot load the model: {exc}; {BUNDLE_FIX}") from exc


class DemoEngine:
    """Owns the authenticator, the feeds and the running flow for one app."""

    def __init__(self, settings: DemoSettings, lossless: bool = False) -> None:
        self.settings = settings
        self.lossless = lossless
        self.auth: Authenticator | None = None
        self.model_error: str | None = None
        self.flow: Flow | None = None
        self._feeds: dict[tuple[str, ...], FrameFeed] = {}

    # ----------------------------------------------------------------- model

    def load_model(self) -> Authenticator:
        """Load (or reload) the model the settings name; remembers the error for the home screen."""
        self.auth, self.model_error = None, None
        try:
            self.auth = open_authenticator(self.settings)
        except ModelLoadError as exc:
            self.model_error = str(exc)
            raise
        return self.auth

    @property
    def pipeline(self) -> FacePipeline | None:
        """The loaded model's per-frame pipeline (None when no model is loaded)."""
        return self.auth.pipeline if self.auth is not None else None

    @property
    def ready(self) -> bool:
        """Can a flow start (the model is loaded)?"""
        return self.auth is not None

    @property
    def model_description(self) -> str:
        return self.auth.pipeline.model.description if self.auth is not None else "no model loaded"

    def apply(self, settings: DemoSettings) -> None:
        """Swap in new settings; reloads the model and reopens sources when they changed."""
        self.cancel()
        old, self.settings = self.settings, settings
        if (old.source, old.enroll_source, old.fps) != (settings.source, settings.enroll_source, settings.fps):
            self.close_feeds()
        if old.model_key() != settings.model_key() or self.auth is None:
            previous = self.auth
            try:
                self.load_model()
            except ModelLoadError:
                if previous is not None:  # keep the model (and settings) that worked
                    self.settings, self.auth, self.model_error = old, previous, None
                raise
        else:  # the same model with other session or database settings
            self.auth = Authenticator(settings.runtime, pipeline=self.auth.pipeline)

    # ----------------------------------------------------------------- frames

    def feed(self, spec: tuple[str, ...]) -> FrameFeed:
        """The feed of one source spec, opened on first use and kept across flows."""
        spec = tuple(spec)
        if spec not in self._feeds:
            fps = self.settings.fps
            self._feeds[spec] = FrameFeed(lambda: open_source(list(spec), fps=fps), lossless=self.lossless,
                                          paced=not is_camera(spec), name=" ".join(spec)[:60])
        return self._feeds[spec]

    def close_feeds(self) -> None:
        for feed in self._feeds.values():
            feed.close()
        self._feeds.clear()

    # ----------------------------------------------------------------- flows

    def _need_ready(self) -> None:
        if not self.ready:
            raise ModelLoadError(self.model_error or "no model loaded")

    def _need_model(self) -> Authenticator:
        self._need_ready()
        return self.auth

    def enroll(self, user: str) -> tuple[Flow, FrameFeed]:
        """Start enrolling ``user`` (from the enroll source, else the main source); SourceError when it
        cannot be opened."""
        return self._start(self.settings.enroll_spec, lambda feed: self.enroll_flow(feed, user))

    def authenticate(self, user: str) -> tuple[Flow, FrameFeed]:
        """Start authenticating ``user`` with a freshly drawn challenge."""
        return self._start(self.settings.source, lambda feed: self.auth_flow(feed, user))

    def enroll_flow(self, feed: FrameFeed, user: str) -> Flow:
        """The (not yet started) enrollment of ``user`` from ``feed``."""
        s = self.settings
        return EnrollFlow(feed, self._need_model(), user, s.enroll_frames, s.enroll_interval_s)

    def auth_flow(self, feed: FrameFeed, user: str) -> Flow:
        """The (not yet started) authentication of ``user`` on ``feed``."""
        return AuthFlow(feed, self._need_model(), user)

    def _start(self, spec: tuple[str, ...], make) -> tuple[Flow, FrameFeed]:
        self._need_ready()
        self.cancel()
        feed = self.feed(spec)
        feed.start()
        flow = make(feed)
        self.flow = flow.start()
        return flow, feed

    def cancel(self) -> None:
        """Stop the running flow, if any."""
        if self.flow is not None and self.flow.running:
            self.flow.cancel()
        self.flow = None

    # ------------------------------------------------------------------ users

    def users(self) -> list[UserInfo]:
        """The enrolled users (every model; see ``matches_model``); empty when there is no database yet."""
        return enrolled_users(self.settings.db)

    def matches_model(self, info: UserInfo) -> bool:
        return self.auth is not None and self.auth.matches_model(info)

    def delete_user(self, user: str) -> None:
        delete_user(self.settings.db, user)

    def close(self) -> None:
        self.cancel()
        self.close_feeds()
        if self.auth is not None:
            self.auth.close()
