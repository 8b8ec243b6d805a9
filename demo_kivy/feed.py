"""Frames for the app: a source read on its own thread, handed to one consumer, peeked at by the preview.

Two modes:

- live (the GUI): a file source is played at its own pace (``frame.t``), a camera
  as fast as it delivers; the consumer always gets the NEWEST frame, the frames
  that arrived while it was busy are dropped (counted in ``dropped``);
- lossless (headless runs, tests): the reader waits until the consumer took each
  frame, so every frame is analysed, whatever the machine's speed, and the result
  depends only on the frames and their timestamps.

The reader pauses while no consumer is attached; a flow that starts after
another continues the source where it stopped (a finite source that has ended
is opened again from its start). Cameras are read with OpenCV
(``cv2.VideoCapture``) by :func:`facelivenet.edge_runtime.sources.open_source`,
never through Kivy's camera provider (broken with OpenCV 5, ARCHITECTURE.md, "Toolchain notes").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.sources import Frame

log = logging.getLogger(__name__)

Opener = Callable[[], Iterable[Frame]]


class Cancelled(FaceLiveError):
    """The consumer was asked to stop (the user left the screen)."""


class FrameFeed:
    """A frame source on a reader thread. ``opener`` returns a fresh iterable of frames each time."""

    def __init__(self, opener: Opener, lossless: bool = False, paced: bool = True, name: str = "source") -> None:
        self._opener = opener
        self.lossless = lossless
        self.paced = paced  # live mode: play timestamps in real time (files); a camera is paced by itself
        self.name = name
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._source = None
        self._pending: Frame | None = None
        self._latest: Frame | None = None
        self._consumers = 0
        self._ended = False
        self._closing = False
        self._error: BaseException | None = None
        self.delivered = 0
        self.dropped = 0

    # ------------------------------------------------------------- reader

    def start(self) -> None:
        """Open the source (SourceError right here when it cannot be) and start reading, if not running."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._pending, self._ended, self._error, self._closing = None, False, None, False
        self._source = self._opener()
        self._thread = threading.Thread(target=self._read, name=f"feed-{self.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        last_t = last_wall = None
        try:
            for frame in self._source:
                with self._cond:
                    while not self._closing and (self._consumers == 0 or (self.lossless and self._pending is not None)):
                        self._cond.wait(0.1)
                    if self._closing:
                        return
                if self.paced and not self.lossless and last_t is not None:
                    delay = last_wall + (frame.t - last_t) - time.monotonic()
                    if delay > 0:
                        time.sleep(min(delay, 1.0))
                last_t, last_wall = frame.t, time.monotonic()
                with self._cond:
                    if self._pending is not None:
                        self.dropped += 1
                    self._pending = self._latest = frame
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which reports it
            log.warning("%s: %s", self.name, exc)
            with self._cond:
                self._error = exc
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    # ----------------------------------------------------------- consumer

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """The frames for one consumer, until the source ends; Cancelled when ``stop`` is set.

        In live mode a frame left over from a previous consumer is dropped (it is stale).
        """
        self.start()
        stop = stop or threading.Event()
        with self._cond:
            self._consumers += 1
            if not self.lossless and self._pending is not None:
                self._pending = None
                self.dropped += 1
            self._cond.notify_all()
        try:
            while True:
                with self._cond:
                    while self._pending is None and not self._ended and not stop.is_set():
                        self._cond.wait(0.05)
                    if stop.is_set():
                        raise Cancelled("cancelled")
                    if self._pending is None:  # ended
                        if self._error is not None:
                            raise self._error
                        return
                    frame, self._pending = self._pending, None
                    self.delivered += 1
                    self._cond.notify_all()
                yield frame
        finally:
            with self._cond:
                self._consumers -= 1
                self._cond.notify_all()

    def latest(self) -> Frame | None:
        """The newest frame read (for the preview), consumed or not."""
        return self._latest

    @property
    def ended(self) -> bool:
        return self._ended

    def close(self) -> None:
        """Stop the reader and release the source."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._thread = None
