"""The Kivy app: five screens (home, enroll, authenticate, result, settings) around one :class:`DemoEngine`.

The analysis runs on the flows' worker threads; the UI polls their live views
on Kivy's clock (30 Hz) and never waits for the model. Import this module only
after :func:`kivy_env.prepare_kivy`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.uix.screenmanager import FadeTransition, NoTransition, ScreenManager

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.sources import SourceError

from .engine import DemoEngine, ModelLoadError
from .engine_switch import switch_engine
from .screen_auth import AuthScreen
from .screen_capture import CaptureScreen
from .screen_enroll import EnrollScreen
from .screen_home import HomeScreen
from .screen_result import ResultScreen
from .screen_settings import SettingsScreen
from .settings import DemoSettings
from .settings_file import remember_server

log = logging.getLogger(__name__)

POLL_HZ = 30


class DemoApp(App):
    """FaceLiveNet demo. ``auto_navigate`` moves to the result screen by itself; ``poll_hz`` refreshes the
    capture screens (a driving script turns both off and refreshes before each screenshot: offscreen
    rendering is software GL, and every redraw would take CPU from the analysis). ``settings_file``: where
    Settings stores the server URL and key (None: nowhere)."""

    title = "FaceLiveNet"

    def __init__(self, engine: DemoEngine, auto_navigate: bool = True, poll_hz: float = POLL_HZ,
                 on_start_hook: Callable[[DemoApp], None] | None = None, settings_file: Path | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.settings_file = settings_file
        self.auto_navigate = auto_navigate
        self.poll_hz = poll_hz
        self.on_start_hook = on_start_hook
        self.user = engine.settings.user
        self.last_outcome: dict[str, Any] | None = None
        self.start_error: FaceLiveError | None = None  # why the last start_enroll / start_auth did not start
        self.sm: ScreenManager | None = None

    # ---------------------------------------------------------------- build

    def build(self) -> ScreenManager:
        sm = ScreenManager(transition=FadeTransition(duration=0.15) if self.auto_navigate else NoTransition())
        for screen in (HomeScreen(name="home"), EnrollScreen(name="enroll"), AuthScreen(name="auth"),
                       ResultScreen(name="result"), SettingsScreen(name="settings")):
            sm.add_widget(screen)
        self.sm = sm
        sm.get_screen("home").ids.user.text = self.user
        self.refresh_home(problem=self.engine.model_error or "")
        if self.poll_hz > 0:
            Clock.schedule_interval(self.poll, 1.0 / self.poll_hz)
        return sm

    def on_start(self) -> None:
        if self.on_start_hook is not None:
            self.on_start_hook(self)

    def on_stop(self) -> None:
        self.engine.close()

    def screen(self, name: str | None = None):
        return self.sm.get_screen(name or self.sm.current)

    # ----------------------------------------------------------------- poll

    def poll(self, _dt: float = 0.0) -> None:
        """Refresh the current capture screen from its flow; move on when the flow has finished."""
        screen = self.screen()
        if not isinstance(screen, CaptureScreen) or screen.flow is None:
            return
        view = screen.refresh()
        if view is None or not view.finished or not self.auto_navigate or screen.name != "auth":
            return
        if view.outcome is not None:
            self.show_result(view.outcome)
        elif view.error:
            self.go_home(problem=view.error, offer_source=view.error_kind == "SourceError")

    # ----------------------------------------------------------- navigation

    def refresh_home(self, problem: str = "", offer_source: bool = False) -> None:
        e = self.engine
        try:
            users = e.users()
        except FaceLiveError as exc:
            users, problem = [], problem or str(exc)
        self.screen("home").refresh(users, e.model_description, e.ready, problem,
                                    offer_source, e.matches_model)

    def go_home(self, problem: str = "", offer_source: bool = False) -> None:
        self.engine.cancel()
        self.refresh_home(problem or (self.engine.model_error or ""), offer_source)
        self.sm.current = "home"

    def _user(self, user: str | None) -> str | None:
        user = (user if user is not None else self.user).strip()
        if not user:
            self.start_error = FaceLiveError("type a user id first")
            self.go_home(problem="Type a user id first")
            return None
        self.user = user
        return user

    def _start(self, screen_name: str, start: Callable[[str], Any], user: str | None):
        user = self._user(user)
        if user is None:
            return None
        self.start_error = None
        try:
            flow, feed = start(user)
        except FaceLiveError as exc:
            self.start_error = exc
            self.go_home(problem=str(exc), offer_source=isinstance(exc, SourceError))
            return None
        s = self.engine.settings
        screen = self.screen(screen_name)
        screen.attach(flow, feed, s.mirrors(s.enroll_spec if screen_name == "enroll" else s.source))
        self.sm.current = screen_name
        return flow

    def start_enroll(self, user: str | None = None):
        """Enroll screen with a running capture (None when it could not start; the banner says why)."""
        flow = self._start("enroll", self.engine.enroll, user)
        if flow is not None:
            self.screen("enroll").start(self.user)
        return flow

    def start_auth(self, user: str | None = None):
        """Authenticate screen with a running session (None when it could not start)."""
        flow = self._start("auth", self.engine.authenticate, user)
        if flow is not None:
            self.screen("auth").start(flow.expression_threshold)
        return flow

    def show_result(self, outcome: dict[str, Any]) -> None:
        self.last_outcome = outcome
        self.screen("result").show(outcome)
        self.sm.current = "result"

    def show_settings(self) -> None:
        e = self.engine
        thresholds = None
        if e.auth is not None:
            t = e.auth.manifest.thresholds
            thresholds = (t.verification_cosine, t.expression_probability)
        self.screen("settings").load(e.settings, thresholds)
        self.sm.current = "settings"

    def apply_settings(self, settings: DemoSettings) -> None:
        """Swap in validated settings: a server URL set or cleared swaps the engine (engine_switch); a changed
        server URL or key is stored. Raises with the reason when the model or the server cannot be used."""
        before = self.engine.settings
        self.engine = switch_engine(self.engine, settings)
        remember_server(self.settings_file, before, self.engine.settings)
        if not self.engine.ready:
            raise ModelLoadError(self.engine.model_error or "no model loaded")
        self.go_home()

    def use_source(self, text: str) -> None:
        """The home banner's "use this source" (e.g. when there is no camera)."""
        spec = tuple(text.split())
        if not spec:
            self.go_home(problem="Type the path of a video file or a folder of frames", offer_source=True)
            return
        try:
            self.engine.apply(self.engine.settings.replace(source=spec, enroll_source=None))
        except FaceLiveError as exc:
            self.go_home(problem=str(exc), offer_source=True)
            return
        self.go_home(problem=f"Source: {' '.join(spec)}")

    def delete_user(self, user: str) -> None:
        try:
            self.engine.delete_user(user)
        except FaceLiveError as exc:
            self.go_home(problem=str(exc))
            return
        self.go_home()

