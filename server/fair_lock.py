"""A first-come-first-served lock for the worker's one pipeline.

``threading.Lock`` promises no order: when it is released, any waiting thread (or a newcomer that never
waited) may take it, so under load one frame can be overtaken again and again while later frames pass it,
and its latency grows into the tail. :class:`FifoLock` hands the lock to the longest waiter directly on
release; a frame then waits for at most the frames that arrived before it.
"""

from __future__ import annotations

import collections
import threading


class FifoLock:
    """A non-reentrant lock granted in arrival order (context manager, like ``threading.Lock``)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def acquire(self) -> None:
        """Take the lock now if it is free and nobody waits, else queue and wait for the hand-over."""
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # release() sets it with the lock already ours: ``_held`` stays True across the hand-over

    def release(self) -> None:
        """Hand the lock to the longest waiter, or free it when nobody waits."""
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of an unheld FifoLock")
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._held = False

    def locked(self) -> bool:
        return self._held

    def __enter__(self) -> "FifoLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
