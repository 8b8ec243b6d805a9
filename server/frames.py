"""One frame of a served session: check it, decode it, run it through the worker's pipeline and the
session rules, store the new state.

Order (each refusal leaves the session as it was unless said): the session exists (404 unknown_session), the
key opened it (403 session_not_yours), it is pending (409 session_decided), this worker runs the model it
was started on (else 409 model_mismatch: rejected), it is not expired nor idle (410
session_expired: the session is rejected and its attempt recorded, once), the nonce is the current one
(409 bad_nonce), ``seq`` is the number of frames so far (409 frame_out_of_order), ``t`` increases (409
frame_time_not_increasing), the client's elapsed time keeps to the server's within the clock skew (409
frame_late / frame_early), the frame limit (429 too_many_frames: rejected), the JPEG decodes (415
not_a_jpeg) within the pixel limit (422 bad_frame). Then, holding the pipeline: restore the tracker, judge
the frame, take the tracker's state; the new state is written only if nobody wrote the session meanwhile
(else 409 bad_nonce: the other request used the nonce). The session's objects come from the worker's
:class:`~.session_state.StateCache` when it wrote the row's current version, else from the row's blob. A
decision writes its attempt in the same transaction. The JPEG is decoded before the pipeline is taken
(decoding needs no lock).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from ..edge_runtime import reasons
from ..edge_runtime.authenticate import feed_frame
from ..edge_runtime.imageio import declared_size
from ..edge_runtime.reasons import Decision
from ..edge_runtime.sources import Frame
from . import session_state
from .errors import ApiError
from .sessions import (Worker, client_status, close_session, decided_detail, is_expired, log_decision, nonce_matches,
                       nonce_pair, step_view)
from .store import KeyRecord, ServerStore, SessionRow

JPEG_MAGIC = b"\xff\xd8\xff"


def check_jpeg_bytes(body: bytes) -> None:
    """ApiError not_a_jpeg unless the body starts like a JPEG."""
    if not body.startswith(JPEG_MAGIC):
        raise ApiError("not_a_jpeg", "the frame must be one JPEG image (Content-Type: image/jpeg, starting FF D8 FF)")


def decode_jpeg(body: bytes, max_pixels: int) -> np.ndarray:
    """The frame as BGR uint8; ApiError not_a_jpeg (does not decode) / bad_frame (over the pixel limit)."""
    check_jpeg_bytes(body)
    size = declared_size(body[:65536])
    if size is not None and size[0] * size[1] > max_pixels:
        raise ApiError("bad_frame", f"the frame is {size[0]}x{size[1]}: more than the limit of {max_pixels} pixels")
    try:
        image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ApiError("not_a_jpeg", "the frame does not decode as a JPEG image (truncated or corrupt)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ApiError("bad_frame", f"the frame is {image.shape[1]}x{image.shape[0]}: more than the limit of "
                                    f"{max_pixels} pixels")
    return image


def _check_order(worker: Worker, store: ServerStore, row: SessionRow, key: KeyRecord, seq: int, t: float,
                 nonce: str, now: float) -> None:
    cfg = worker.config
    if row.key_id != key.key_id:
        raise ApiError("session_not_yours", "this session was opened with another API key")
    if row.status != Decision.PENDING:
        raise ApiError("session_decided", "the session is decided: fetch its result")
    if row.model_fingerprint != worker.fingerprint:  # an instance on another bundle never judges this session
        close_session(store, row, reasons.MODEL_MISMATCH, now)
        raise ApiError("model_mismatch", "the session was started on another model (the servers sharing this "
                                         "database run different bundles): it is rejected")
    if is_expired(row, now, cfg.max_frame_gap_s):
        close_session(store, row, reasons.SESSION_EXPIRED, now)
        raise ApiError("session_expired", "the session expired (past its time, or no frame for more than "
                                          f"{cfg.max_frame_gap_s:g} s): it is rejected")
    if not nonce_matches(row, nonce):
        raise ApiError("bad_nonce", "not the session's current nonce (each frame's answer gives the next one)")
    if seq != row.seq:
        raise ApiError("frame_out_of_order", f"seq {seq}: the session has received {row.seq} frame(s), so the next "
                                             f"one is seq {row.seq}")
    if not math.isfinite(t):
        raise ApiError("invalid_request", f"t must be a finite number of seconds, got {t}")
    if row.last_client_t is not None and t <= row.last_client_t:
        raise ApiError("frame_time_not_increasing", f"t {t} is not after the previous frame's t {row.last_client_t}")
    if row.client_t0 is not None:
        client_elapsed, server_elapsed = t - row.client_t0, now - row.server_t0
        if client_elapsed < server_elapsed - cfg.max_clock_skew_s:
            raise ApiError("frame_late", f"the frame was taken {server_elapsed - client_elapsed:.2f} s before the "
                                         f"server's clock allows (skew limit {cfg.max_clock_skew_s:g} s)")
        if client_elapsed > server_elapsed + cfg.max_clock_skew_s:
            raise ApiError("frame_early", f"the frame's time is {client_elapsed - server_elapsed:.2f} s ahead of the "
                                          f"server's clock (skew limit {cfg.max_clock_skew_s:g} s)")
    if row.seq >= cfg.max_frames:
        close_session(store, row, reasons.TOO_MANY_FRAMES, now)
        raise ApiError("too_many_frames", f"the session reached its limit of {cfg.max_frames} frames: it is rejected")


def _face_view(analysis, target, positions) -> dict[str, Any] | None:
    """The face box (normalised to the frame) and whether it sits in the step's target oval."""
    if analysis is None or analysis.face is None or analysis.frame_hw is None:
        return None
    h, w = analysis.frame_hw
    x, y, bw, bh = (float(v) for v in analysis.face.box)
    in_target = None
    if target is not None and positions is not None:
        in_target = positions.miss(target, analysis.face.box, analysis.frame_hw) is None
    return {"box": [round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)], "in_target": in_target}


def feed_served_frame(worker: Worker, store: ServerStore, session_id: str, key: KeyRecord, seq: int, t: float,
                      nonce: str, body: bytes, now: float) -> dict[str, Any]:
    """Judge one frame of session ``session_id`` (module docstring); the client's answer."""
    row = store.session(session_id)
    if row is None:
        raise ApiError("unknown_session", f"no session {session_id!r}")
    _check_order(worker, store, row, key, seq, t, nonce, now)
    image = decode_jpeg(body, worker.config.max_frame_pixels)
    kept = worker.states.take(row.session_id, row.version)
    session, tracker = kept if kept is not None else session_state.loads(row.state)
    target = session.target
    with worker.lock:
        tracker.restore(worker.pipeline)
        analysis = feed_frame(worker.pipeline, session, Frame(seq, t, image, f"frame {seq}"))
        tracker = session_state.TrackerState.of(worker.pipeline)
    next_nonce, digest = nonce_pair()
    first = row.client_t0 is None
    updated = dataclasses.replace(
        row, status=str(session.status), reasons=[str(r) for r in session.reasons], nonce_sha256=digest,
        seq=row.seq + 1, client_t0=t if first else row.client_t0, server_t0=now if first else row.server_t0,
        last_client_t=t, last_server_t=now, state=session_state.dumps(session, tracker))
    decided = updated.status != Decision.PENDING
    attempt = None
    if decided:
        updated.detail = decided_detail(updated, session)
        attempt = (updated.status == Decision.ACCEPT, updated.reasons, now)
    if not store.update_session(updated, row.version, attempt=attempt):
        raise ApiError("bad_nonce", "another request used this nonce first")
    if decided:
        log_decision(updated, updated.detail)
    else:
        worker.states.keep(updated.session_id, updated.version, session, tracker)
    return {"status": client_status(updated.status), "nonce": None if decided else next_nonce,
            "frames": updated.seq, "step": step_view(session),
            "face": _face_view(analysis, target, session.cfg.positions)}
