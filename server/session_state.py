"""A pending session between two frames: the :class:`AuthSession` and the face tracker's state, as bytes.

Any worker (any process, any machine sharing the database) may take the next frame of a session: it
restores the session and the tracker into its own pipeline, feeds the frame, and stores the new state. The
blob is a pickle: the database is the trust boundary (only the server writes it; a client never sees it).
"""

from __future__ import annotations

import pickle
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
