"""The app's runtime side, without Kivy: the verified model, the frame feeds, the template database.

Screens and the headless driver ask the engine for a flow (:meth:`DemoEngine.enroll`,
:meth:`DemoEngine.authenticate`); at most one runs at a time. Only
``facelivenet.edge_runtime`` is imported: no torch, no training or export code.
"""

from __future__ import annotations

import logging
from pathlib import Path

from facelivenet.edge_runtime.api import open_pipeline
from facelivenet.edge_runtime.errors import DetectorNotFoundError, FaceLiveError
from facelivenet.edge_runtime.face_pipeline import FacePipeline
from facelivenet.edge_runtime.sources import open_source
from facelivenet.edge_runtime.store import TemplateStore, UserInfo

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


def load_pipeline(settings: DemoSettings) -> FacePipeline:
    """The verified model and detector; ModelLoadError with the fix when the bundle is missing or tampered."""
    try:
        return open_pipeline(settings.runtime_options())
    except DetectorNotFoundError as exc:
        raise ModelLoadError(f"cannot load the face detector: {exc}") from exc
    except FaceLiveError as exc:
        message = str(exc)
        fix = CHOICE_FIX if "bundle has no" in message else "" if "pass --bundle" in message else BUNDLE_FIX
        raise ModelLoadError(f"cannot load the model: {message}" + (f"; {fix}" if fix else "")) from exc


class DemoEngine:
    """Owns the pipeline, the feeds and the running flow for one app."""

    def __init__(self, settings: DemoSettings, lossless: bool = False) -> None:
        self.settings = settings
        self.lossless = lossless
        self.pipeline: FacePipeline | None = None
        self.model_error: str | None = None
        self.flow: Flow | None = None
        self._feeds: dict[tuple[str, ...], FrameFeed] = {}

    # ----------------------------------------------------------------- model

    def load_model(self) -> FacePipeline:
        """Load (or reload) the model the settings name; remembers the error for the home screen."""
        self.pipeline, self.model_error = None, None
        try:
            self.pipeline = load_pipeline(self.settings)
        except ModelLoadError as exc:
            self.model_error = str(exc)
            raise
        return self.pipeline

    @property
    def model_description(self) -> str:
        return self.pipeline.model.description if self.pipeline is not None else "no model loaded"

    def apply(self, settings: DemoSettings) -> None:
        """Swap in new settings; reloads the model and reopens sources when they changed."""
        self.cancel()
        old, self.settings = self.settings, settings
        if (old.source, old.enroll_source, old.fps) != (settings.source, settings.enroll_source, settings.fps):
            self.close_feeds()
        if old.model_key() != settings.model_key() or self.pipeline is None:
            previous = self.pipeline
            try:
                self.load_model()
            except ModelLoadError:
                if previous is not None:  # keep the model (and settings) that worked
                    self.settings, self.pipeline, self.model_error = old, previous, None
                raise

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

    def _need_model(self) -> FacePipeline:
        if self.pipeline is None:
            raise ModelLoadError(self.model_error or "no model loaded")
        return self.pipeline

    def enroll(self, user: str) -> tuple[EnrollFlow, FrameFeed]:
        """Start enrolling ``user`` (from the enroll source, else the main source); SourceError when it
        cannot be opened."""
        pipeline = self._need_model()
        self.cancel()
        s = self.settings
        feed = self.feed(s.enroll_spec)
        feed.start()
        flow = EnrollFlow(feed, pipeline, s.db, user, s.enroll_frames, s.enroll_interval_s)
        self.flow = flow.start()
        return flow, feed

    def authenticate(self, user: str) -> tuple[AuthFlow, FrameFeed]:
        """Start authenticating ``user`` with a freshly drawn challenge."""
        pipeline = self._need_model()
        self.cancel()
        s = self.settings
        feed = self.feed(s.source)
        feed.start()
        session = s.session_settings()
        flow = AuthFlow(feed, pipeline, s.db, user, session.draw_challenge(),
                        session.session_config(pipeline.model.manifest), session.lockout())
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
        if not Path(self.settings.db).is_file():
            return []
        with TemplateStore(self.settings.db, create=False) as store:
            return store.users()

    def matches_model(self, info: UserInfo) -> bool:
        return self.pipeline is not None and info.model_fingerprint == self.pipeline.model.fingerprint

    def delete_user(self, user: str) -> None:
        with TemplateStore(self.settings.db, create=False) as store:
            store.delete(user)

    def close(self) -> None:
        self.cancel()
        self.close_feeds()
