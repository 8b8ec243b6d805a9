"""The headless script: drive the app's real screens through enrollment and authentication, with
screenshots, and collect one outcome.

Runs inside the Kivy app (SDL offscreen). Each step waits for its flow on the
app's clock; the authentication screenshot is taken while the worker holds on
the first frame that asks for an expression (or on the 10th frame, or at the
end), so it shows the challenge being performed. Screenshots render the widget
tree into an image (``export_to_png``) after every label was updated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kivy.clock import Clock

from facelivenet.edge_runtime.errors import FaceLiveError

from .flow import Flow, LiveView
from .widgets import refresh_labels

log = logging.getLogger(__name__)

HOLD_AFTER_FRAMES = 10


class ScriptError(FaceLiveError):
    """The script could not go on (the message says why)."""

    def __init__(self, message: str, kind: str = "ScriptError") -> None:
        super().__init__(message)
        self.kind = kind


class ScriptDriver:
    """Runs ``steps`` on a started :class:`DemoApp`; ``outcome`` holds what happened."""

    def __init__(self, steps: list[str], user: str, screenshot_prefix: Path | None, max_seconds: float) -> None:
        self.steps, self.user, self.prefix, self.max_seconds = steps, user, screenshot_prefix, max_seconds
        self.screenshots: list[dict[str, str]] = []
        self.enrollment: dict[str, Any] | None = None
        self.auth: dict[str, Any] | None = None
        self.error: ScriptError | None = None
        self._shot_screens: set[str] = set()
        self._app = None
        self._script: Iterator[None] | None = None
        self._started = 0.0

    # -------------------------------------------------------------- running

    def start(self, app) -> None:
        """Begin on the app's clock (called from the app's on_start)."""
        self._app = app
        self._script = self._run()
        self._started = time.monotonic()
        Clock.schedule_interval(self._tick, 1.0 / 60)

    def _tick(self, _dt: float) -> bool:
        try:
            if time.monotonic() - self._started > self.max_seconds:
                raise ScriptError(f"the script did not finish within {self.max_seconds:g} s", "Timeout")
            next(self._script)
            return True
        except StopIteration:
            pass
        except ScriptError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - reported as the run's one-line error
            log.exception("headless script failed")
            self.error = ScriptError(f"internal error: {type(exc).__name__}: {exc}", "InternalError")
        self._app.engine.cancel()
        self._app.stop()
        return False

    def _run(self) -> Iterator[None]:
        app = self._app
        yield
        yield from self.shoot("home")
        for step in self.steps:
            if step == "enroll":
                yield from self._enroll(app)
            elif step == "auth":
                yield from self._auth(app)
            elif step == "settings":
                app.show_settings()
                yield from self.shoot("settings")
                app.go_home()

    def _started_flow(self, app, flow: Flow | None) -> Flow:
        if flow is None:
            exc = app.start_error
            raise ScriptError(str(exc) if exc else "the flow could not start", type(exc).__name__ if exc else
                              "StartError")
        return flow

    def _wait(self, flow: Flow, until) -> Iterator[LiveView]:
        while True:
            view = flow.view()
            if until(view):
                return view
            yield

    def _enroll(self, app) -> Iterator[None]:
        flow = self._started_flow(app, app.start_enroll(self.user))
        view = yield from self._wait(flow, lambda v: v.finished)
        yield from self.shoot("enroll")
        if view.error:
            raise ScriptError(f"enrollment failed: {view.error}", view.error_kind or "EnrollmentError")
        self.enrollment = view.outcome
        app.go_home()
        yield

    def _auth(self, app) -> Iterator[None]:
        flow = self._started_flow(app, app.start_auth(self.user))
        first = {}

        def asks_expression(v: LiveView) -> bool:
            if v.frame_index < 0:  # no frame analysed yet (a server session shows its first step before one)
                return False
            first.setdefault("index", v.frame_index)
            return v.expected not in (None, "neutral") or v.frame_index - first["index"] >= HOLD_AFTER_FRAMES

        flow.hold_when(asks_expression)
        view = yield from self._wait(flow, lambda v: v.held or v.finished)
        yield from self.shoot("auth")
        flow.release()
        view = yield from self._wait(flow, lambda v: v.finished)
        app.poll()
        if view.error:
            raise ScriptError(f"authentication failed: {view.error}", view.error_kind or "AuthError")
        self.auth = view.outcome
        app.show_result(view.outcome)
        yield from self.shoot("result")

    # ---------------------------------------------------------- screenshots

    def shoot(self, name: str) -> Iterator[None]:
        """Save the current screen as PREFIX_<name>.png (once per screen), with its main words.

        Kivy applies the canvas updates of kv rules on the next frame: the widgets are refreshed, then
        two frames pass before the widget tree is rendered into the picture.
        """
        if self.prefix is None or name in self._shot_screens:
            return
        app = self._app
        app.poll()
        yield
        yield
        screen = app.screen()
        refresh_labels(app.sm)
        path = Path(f"{self.prefix}_{name}.png")
        app.sm.export_to_png(str(path))
        self._shot_screens.add(name)
        self.screenshots.append({"screen": name, "path": str(path), "text": screen.summary_text()})
        log.info("screenshot %s: %s", name, path)
