"""A job on a worker thread (an enrollment or an authentication) and the live view it publishes.

The worker analyses frames off the UI thread and publishes a :class:`LiveView`
after each; the UI polls :meth:`Flow.view` on its clock. Nothing here imports Kivy.
A driver (the headless script) can ask the worker to hold once a condition is
met (:meth:`Flow.hold_when`), to capture a screenshot of exactly that state.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.face_pipeline import FrameAnalysis
from facelivenet.edge_runtime.step_plan import Target

from .feed import Cancelled, FrameFeed
from .guidance import guidance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveView:
    """What a capture screen shows, as of the latest analysed frame."""

    frame_index: int = -1
    frame_t: float = 0.0
    image: np.ndarray | None = None  # the analysed frame (BGR, as the source gave it)
    box: np.ndarray | None = None  # (x, y, w, h) in the unmirrored frame
    landmarks: np.ndarray | None = None
    usable: bool = False  # one face, passed the gates, analysed
    reasons: tuple[str, ...] = ()
    guidance: str = ""
    probabilities: np.ndarray | None = None
    identity: float | None = None
    # enrollment
    captured: int = 0
    wanted: int = 0
    # authentication
    expected: str | None = None
    step_index: int = 0
    step_count: int = 0
    remaining_s: float | None = None
    target: Target | None = None  # the oval the face should be in now (None: anywhere)
    threshold: float | None = None
    challenge: tuple[str, ...] = ()
    # end
    finished: bool = False
    outcome: dict[str, Any] | None = None
    error: str | None = None
    error_kind: str | None = None  # the exception's class name (SourceError: offer another source)
    held: bool = False


def view_of(analysis: FrameAnalysis | None, **fields) -> dict[str, Any]:
    """The face part of a LiveView from one frame's analysis."""
    if analysis is None:
        out = {"box": None, "landmarks": None, "usable": False, "reasons": (), "guidance": "", "probabilities": None}
    else:
        face = analysis.face if analysis.face is not None else (analysis.faces[0] if analysis.faces else None)
        out = {"box": None if face is None else face.box, "landmarks": None if face is None else face.landmarks,
               "usable": analysis.analysed and not analysis.reasons, "reasons": tuple(analysis.reasons),
               "guidance": guidance(list(analysis.reasons)), "probabilities": analysis.probabilities}
    out.update(fields)
    return out


class Flow:
    """Runs :meth:`work` on a thread; ``view()`` is its latest LiveView (thread-safe)."""

    name = "flow"

    def __init__(self, feed: FrameFeed) -> None:
        self.feed = feed
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._view = LiveView()
        self._thread: threading.Thread | None = None
        self._hold_when: Callable[[LiveView], bool] | None = None
        self._released = threading.Event()

    # --------------------------------------------------------------- UI side

    def start(self) -> Flow:
        self._thread = threading.Thread(target=self._run, name=f"flow-{self.name}", daemon=True)
        self._thread.start()
        return self

    def view(self) -> LiveView:
        with self._lock:
            return self._view

    def cancel(self, wait: float = 5.0) -> None:
        """Stop the worker (its result is dropped) and wait for it."""
        self.stop.set()
        self._released.set()
        self.join(wait)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def hold_when(self, condition: Callable[[LiveView], bool] | None) -> None:
        """Make the worker wait, once, right after publishing a view for which ``condition`` is true."""
        self._released.clear()
        self._hold_when = condition

    def release(self) -> None:
        """Let a held worker go on."""
        self.publish(held=False)
        self._released.set()

    # ----------------------------------------------------------- worker side

    def publish(self, **fields) -> LiveView:
        """Update the live view (worker thread); holds here when the driver asked for it."""
        with self._lock:
            self._view = dataclasses.replace(self._view, **fields)
            view = self._view
        condition = self._hold_when
        if condition is not None and not view.finished and condition(view):
            self._hold_when = None
            with self._lock:
                self._view = view = dataclasses.replace(self._view, held=True)
            while not self._released.wait(0.05):
                if self.stop.is_set():
                    break
        return view

    def _run(self) -> None:
        try:
            outcome = self.work()
        except Cancelled:
            log.info("%s cancelled", self.name)
            self.publish(finished=True, error=None, outcome=None)
            return
        except FaceLiveError as exc:
            self.publish(finished=True, error=str(exc), error_kind=type(exc).__name__)
            return
        except Exception as exc:  # noqa: BLE001 - shown on screen; the traceback goes to the log
            log.exception("%s failed", self.name)
            self.publish(finished=True, error=f"internal error: {type(exc).__name__}: {exc}", error_kind="InternalError")
            return
        self.publish(finished=True, outcome=outcome)

    def work(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError
