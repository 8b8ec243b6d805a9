"""A pending session between two frames: the :class:`AuthSession` and the face tracker's state, as bytes.

Any worker (any process, any machine sharing the database) may take the next frame of a session: it
restores the session and the tracker into its own pipeline, feeds the frame, and stores the new state. The
blob is a pickle: the database is the trust boundary (only the server writes it; a client never sees it).
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..edge_runtime.detection import Face
from ..edge_runtime.face_pipeline import FacePipeline
from ..edge_runtime.session import AuthSession

STATE_VERSION = 1


@dataclass
class TrackerState:
    """What :class:`~facelivenet.edge_runtime.face_pipeline.FacePipeline` carries from one frame to the next."""

    last: Face | None = None
    track_id: int = 0
    breaks: int = 0
    frame_index: int = 0

    @classmethod
    def of(cls, pipeline: FacePipeline) -> TrackerState:
        t = pipeline.tracker
        return cls(t.last, t.track_id, t.breaks, pipeline._frame_index)

    def restore(self, pipeline: FacePipeline) -> None:
        """Put this state into ``pipeline`` (its tracker then continues this session's track)."""
        t = pipeline.tracker
        t.last, t.track_id, t.breaks = self.last, self.track_id, self.breaks
        pipeline._frame_index = self.frame_index


def dumps(session: AuthSession, tracker: TrackerState) -> bytes:
    return pickle.dumps({"v": STATE_VERSION, "session": session, "tracker": tracker}, protocol=5)


def loads(blob: bytes) -> tuple[AuthSession, TrackerState]:
    """The session and tracker state :func:`dumps` wrote; ValueError for a blob of another version."""
    d = pickle.loads(blob)
    if not isinstance(d, dict) or d.get("v") != STATE_VERSION:
        raise ValueError(f"session state of version {d.get('v') if isinstance(d, dict) else '?'}; "
                         f"this server reads {STATE_VERSION}")
    return d["session"], d["tracker"]


class StateCache:
    """The sessions this worker wrote last, as objects, each under the row version it was written as.

    :meth:`take` hands a session back only when the row still has that version: a version that moved on means
    another worker (or process, or machine) judged a frame since, and the row's blob is the truth. An entry is
    taken out while its frame is judged, so a failed frame leaves nothing stale behind. Bounded (least recently
    written dropped first); thread-safe."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[int, AuthSession, TrackerState]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, session_id: str, version: int) -> tuple[AuthSession, TrackerState] | None:
        """The session and tracker kept for ``session_id`` at ``version`` (removed from the cache), or None."""
        with self._lock:
            item = self._items.pop(session_id, None)
        if item is None or item[0] != version:
            return None
        return item[1], item[2]

    def keep(self, session_id: str, version: int, session: AuthSession, tracker: TrackerState) -> None:
        """Keep the state just written as row version ``version``."""
        with self._lock:
            self._items[session_id] = (version, session, tracker)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
