"""A served session's life outside its frames: start, fail closed, deliver the result once, and what a
client or an admin sees of it.

The worker (:class:`Worker`) is one process's pipeline, the lock that keeps it to one frame at a time, and
the session rules every session of this server is judged with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..edge_runtime import reasons
from ..edge_runtime.authenticate import open_session
from ..edge_runtime.challenge import with_neutral_steps
from ..edge_runtime.face_pipeline import FacePipeline
from ..edge_runtime.reasons import Decision
from ..edge_runtime.session import AuthSession, SessionConfig
from ..edge_runtime.step_plan import StepPlan
from . import session_state
from .config import ServerConfig, session_to_dict
from .errors import ApiError
from .outcomes import client_reason
from .session_state import TrackerState
from .store import ServerStore, SessionRow

log = logging.getLogger("facelivenet.server.sessions")


@dataclass
class Worker:
    """One process's pipeline (not thread-safe: hold ``lock`` while it runs), the server's session rules, and
    the sessions this process judged last (``states``)."""

    config: ServerConfig
    pipeline: FacePipeline
    lock: threading.Lock = field(default_factory=threading.Lock)
    states: session_state.StateCache = field(default_factory=session_state.StateCache)
    # tests only (create_app's ``test_draw_seed``): each session's challenge and plan from a generator seeded
    # with it, so a test's sessions are the same on every run; a served config cannot seed its draws
    draw_rng: np.random.Generator | None = None

    def draw(self) -> tuple[tuple[str, ...], StepPlan]:
        """One session's challenge and plan: unseen (``secrets`` and OS entropy), or from ``draw_rng`` in tests."""
        settings = self.config.session
        if self.draw_rng is not None:
            settings = dataclasses.replace(settings, seed=int(self.draw_rng.integers(2**31)))
        challenge = settings.draw_challenge()
        return challenge, settings.draw_plan(with_neutral_steps(challenge))

    @cached_property
    def session_config(self) -> SessionConfig:
        """The thresholds (the config's, else the bundle's) and timings of every session."""
        return self.config.session.session_config(self.pipeline.model.manifest)

    @property
    def fingerprint(self) -> str:
        return self.pipeline.model.fingerprint


def nonce_pair() -> tuple[str, str]:
    """A fresh one-time nonce and the sha256 the store keeps of it."""
    nonce = secrets.token_urlsafe(24)
    return nonce, hashlib.sha256(nonce.encode("ascii")).hexdigest()


def nonce_matches(row: SessionRow, nonce: str) -> bool:
    given = hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).hexdigest()
    return hmac.compare_digest(given, row.nonce_sha256)


def is_expired(row: SessionRow, now: float, max_gap_s: float) -> bool:
    """Past its time, or no frame (nor its start) for more than ``max_gap_s`` (the store's sweep's rule)."""
    idle_since = row.last_server_t if row.last_server_t is not None else row.created
    return now >= row.expires_at or idle_since < now - max_gap_s


def step_view(session: AuthSession) -> dict[str, Any] | None:
    """The step the client must perform now (None once decided); ``deadline_t`` in the client's time units
    (None before the first frame fixed them)."""
    expected = session.current_expected
    if expected is None:
        return None
    target = session.target
    return {"index": session.step_index, "expected": expected, "target": None if target is None else target.to_dict(),
            "timeout_s": session.cfg.step_timeout_s, "deadline_t": session.deadline()}


def client_status(status: str) -> str:
    return "pending" if status == Decision.PENDING else "decided"


def _plain(value: Any) -> Any:
    """JSON-ready (numpy scalars as floats, enums as their strings)."""
    return json.loads(json.dumps(value, default=float))


def decided_detail(row: SessionRow, session: AuthSession) -> dict[str, Any]:
    """The row's admin detail with the session's result (the evidence, scores and thresholds)."""
    result = session.result()
    return {**row.detail, "result": _plain(result.to_dict()), "thresholds": _plain(result.thresholds())}


def log_decision(row: SessionRow, detail: dict[str, Any]) -> None:
    """One INFO line per decision, with the evidence an app-scope client never sees."""
    result = detail.get("result") or {}
    identity = result.get("identity") or {}
    log.info("session %s user %r key %s: %s %s (frames %s, identity aggregate %s >= %s, min score %s >= %s, "
             "min continuity %s >= %s)", row.session_id, row.user_id, row.key_id, row.status,
             ",".join(row.reasons) or "-", result.get("frames", row.seq), identity.get("aggregate"),
             identity.get("aggregate_threshold"), identity.get("min_score"), identity.get("floor_threshold"),
             identity.get("min_continuity"), identity.get("continuity_threshold"))


def start_session(worker: Worker, store: ServerStore, user: str, key_id: str, now: float) -> tuple[SessionRow, str]:
    """A new session for ``user`` with a challenge and a plan drawn here (:mod:`secrets`); (its row, its first
    nonce). A locked-out user's session is created already rejected (LOCKED_OUT, no attempt recorded: the
    runtime's rule). UnknownUserError / ModelMismatchError when there is no template for this model."""
    settings = worker.config.session
    challenge, plan = worker.draw()
    session = open_session(worker.pipeline, store, user, challenge, worker.session_config, settings.lockout(), now,
                           plan)
    nonce, digest = nonce_pair()
    row = SessionRow(
        session_id=secrets.token_urlsafe(16), user_id=user, key_id=key_id, model_fingerprint=worker.fingerprint,
        status=str(session.status), reasons=[str(r) for r in session.reasons], created=now,
        expires_at=now + worker.config.session_ttl_s, nonce_sha256=digest,
        state=session_state.dumps(session, TrackerState()),
        detail={"challenge": list(challenge), "plan": plan.to_dict(), "settings": session_to_dict(settings),
                "t_fed": "the client's t of each frame, as sent (AuthSession.feed(analysis, t))"})
    if row.status != Decision.PENDING:
        row.detail = decided_detail(row, session)
        log_decision(row, row.detail)
    store.create_session(row)
    return row, nonce


def close_session(store: ServerStore, row: SessionRow, reason: str, now: float) -> SessionRow:
    """Reject a pending session with ``reason`` and record its failed attempt, exactly once (another worker
    that decided it first wins); the row as stored afterwards."""
    for _ in range(5):
        if row.status != Decision.PENDING:
            return row
        session, tracker = session_state.loads(row.state)
        session.finish(row.last_client_t, reason)
        closed = dataclasses.replace(row, status=str(session.status), reasons=[str(r) for r in session.reasons],
                                     state=session_state.dumps(session, tracker))
        closed.detail = decided_detail(closed, session)
        if store.update_session(closed, row.version, attempt=(False, closed.reasons, now)):
            closed.version = row.version + 1
            log_decision(closed, closed.detail)
            return closed
        fresh = store.session(row.session_id)
        if fresh is None:
            break
        row = fresh
    raise ApiError("internal_error", "the session changed under five attempts to close it; try again")


def deliver_result(store: ServerStore, row: SessionRow, now: float, max_gap_s: float) -> dict[str, Any]:
    """The decision, once: a pending session ends here (rejected: expired, else abandoned)."""
    if row.status == Decision.PENDING:
        reason = reasons.SESSION_EXPIRED if is_expired(row, now, max_gap_s) else reasons.ABANDONED
        row = close_session(store, row, reason, now)
    if not store.claim_result(row.session_id):
        raise ApiError("result_already_delivered", f"the result of session {row.session_id} was already delivered")
    return {"session_id": row.session_id, "user": row.user_id, "decision": row.status,
            "reason": client_reason(row.status, row.reasons)}


def admin_view(row: SessionRow) -> dict[str, Any]:
    """Everything about a session, for an admin key: the row, the challenge and plan, the result with its
    scores and thresholds."""
    detail = dict(row.detail)
    if row.status != Decision.PENDING and "result" not in detail:  # closed by the store's expiry sweep
        detail["result"] = {"decision": row.status, "reasons": list(row.reasons), "frames": row.seq}
    return {"session_id": row.session_id, "user": row.user_id, "key_id": row.key_id,
            "model_fingerprint": row.model_fingerprint, "status": row.status, "reasons": list(row.reasons),
            "created": row.created, "expires_at": row.expires_at, "frames": row.seq, "client_t0": row.client_t0,
            "server_t0": row.server_t0, "last_client_t": row.last_client_t, "last_server_t": row.last_server_t,
            "result_delivered": row.result_delivered, "version": row.version, **detail}
