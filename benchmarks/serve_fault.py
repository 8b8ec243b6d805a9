"""The fault trial (``facelive-bench serve --fault-trial``): ``kill -9`` the server mid-session, restart it, go on.

Each session is opened for its own user, so the user's attempt rows are that session's:

- ``done``: decided and its result delivered before the kill (the client ended it: ABANDONED);
- ``mid-N``: bona fide sessions streaming frames at real time when the whole process group is killed;
- ``opened``: started, no frame sent yet;
- the server is restarted no sooner than ``DOWN_S`` after the kill (more than the idle limit
  ``max_frame_gap_s``, as a real restart takes); each open session then sends its next frame on its own
  clock;
- ``lockout``: a user with ``LOCKOUT_FAILURES - 1`` failures before the kill and one after: the next start
  must be locked out (the count survived the crash).

After the restart every open session must fail closed (410 session_expired, or 409 session_decided when the
expiry sweep closed it first), its result must be a reject delivered once (a second ask: 409
result_already_delivered), the templates must be byte-identical, and every session must have exactly one
attempt row. The log (timestamps, what was killed, what each session got) is written with the result.
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

LOCKOUT_FAILURES = 3  # the trial's lock-out: this many failures lock the user
MID_SESSIONS = 4
FRAMES_BEFORE_KILL_S = 1.5  # the mid-sessions stream this long before the kill
DOWN_S = 2.5  # the server stays down at least this long (> the default max_frame_gap_s, 1.5 s)


@dataclass
class TrialLog:
    """Timestamped events (wall clock and seconds since the trial's start)."""

    start: float = field(default_factory=time.time)
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, **info: Any) -> None:
        now = time.time()
        event = {"utc": time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}",
                 "t_s": round(now - self.start, 3), "event": what, **info}
        with self.lock:
            self.events.append(event)
        log.info("%s %s", what, info or "")


def _call(fn, *args) -> dict[str, Any]:
    """Call ``fn``; what happened as a dict (ok + value, or the server's status and code, or unreachable)."""
    from facelivenet.server.client import ServerConnectionError, ServerError

    try:
        return {"ok": True, "value": fn(*args)}
    except ServerError as exc:
        return {"ok": False, "status": exc.status, "code": exc.code}
    except ServerConnectionError as exc:
        return {"ok": False, "status": None, "code": "unreachable", "message": str(exc)[:120]}


def _stream(trial: TrialLog, name: str, session: Any, actor: Any, memo: Any, fps: float, stop: threading.Event,
            state: dict[str, Any]) -> None:
    """Send the actor's frames at ``fps`` until the server stops answering or ``stop`` is set."""
    from facelivenet.edge_runtime.step_plan import Target

    expected = session.step.expected if session.step else None
    oval = session.step.target if session.step else None
    t0 = state["t0"] = time.perf_counter()
    i = 0
    while not stop.is_set() and session.pending:
        target = None if oval is None else Target(oval.cx, oval.cy, oval.rx, oval.ry)
        spec = actor.spec(i, expected, target)
        jpeg, _ = memo.get(spec)
        wait = t0 + i / fps - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        got = _call(session.send, jpeg, time.perf_counter() - t0)
        if not got["ok"]:
            trial.add("frame refused", session=name, seq=i, status=got["status"], code=got["code"])
            state["stream_end"] = got
            return
        expected, oval = got["value"].expected, got["value"].target
        state["frames_answered"] = i + 1
        i += 1


def _counts(db: str, users: Sequence[str]) -> dict[str, Any]:
    """Templates (bytes digest per user) and attempt rows per user, read from the store."""
    import hashlib

    from facelivenet.server.store import open_store

    store = open_store(db)
    try:
        infos = {u.user_id: u for u in store.users()}
        templates = {}
        for user, info in sorted(infos.items()):
            t = store.template(user, info.model_fingerprint)
            templates[user] = hashlib.sha256(np.ascontiguousarray(t.embeddings).tobytes()
                                             + np.ascontiguousarray(t.template).tobytes()).hexdigest()[:16]
        attempts = {u: store.attempts(u, limit=100_000) for u in users}
        return {"templates": templates, "attempts": {u: len(a) for u, a in attempts.items()}}
    finally:
        store.close()


def run_fault_trial(cfg: Any, work: Path) -> dict[str, Any]:
    """The trial (module docstring) with ``cfg``'s data, database, bundle and workers."""
    from facelivenet.edge_runtime.challenge import ChallengeConfig
    from facelivenet.edge_runtime.constants import DEFAULT_CHALLENGE
    from facelivenet.server.client import Client

    from .attacks.data import load_subjects
    from .attacks.scenarios import BONA_FIDE, SessionPlan, build_actor
    from .errors import BenchError
    from .serve import enroll_subjects
    from .serve_load import JpegMemo
    from .serve_server import ServerProcess, ServerSpec, add_key

    trial = TrialLog()
    db = cfg.db or str(work / "server.db")
    spec = ServerSpec(db=db, workers=cfg.workers, bundle=cfg.bundle, public_key=cfg.public_key,
                      max_failures=LOCKOUT_FAILURES)
    ccfg = ChallengeConfig(DEFAULT_CHALLENGE, 0)
    subjects = load_subjects(cfg.data, ccfg.expressions)
    roles = ["done", *(f"mid-{k}" for k in range(MID_SESSIONS)), "opened", "lockout"]
    if len(subjects) < len(roles):
        raise BenchError(f"the fault trial needs {len(roles)} subjects (one user per session), got {len(subjects)}")
    user = {role: s.name for role, s in zip(roles, subjects)}
    admin_key, app_key = add_key(db, "trial-admin", "admin"), add_key(db, "trial-app", "app")
    memo = JpegMemo(cfg.frame_cache or work / "spool", cfg.seed)
    server = ServerProcess(spec, Path(cfg.out or work) / "fault_server.log")
    sessions: dict[str, Any] = {}
    got: dict[str, dict[str, Any]] = {role: {"user": user[role]} for role in roles}
    try:
        server.start()
        trial.add("server started", pid=server.proc.pid, pids=server.pids(), workers=cfg.workers,
                  max_failures=LOCKOUT_FAILURES)
        enroll_subjects(server.url, admin_key, subjects[:len(roles)])
        trial.add("enrolled", users=sorted(user.values()))
        before = _counts(db, list(user.values()))
        trial.add("counted before", templates=len(before["templates"]), attempts=before["attempts"])
        app = Client(server.url, app_key)
        # lock-out: LOCKOUT_FAILURES - 1 failures before the kill
        for k in range(LOCKOUT_FAILURES - 1):
            s = app.start_session(user["lockout"])
            out = s.result()
            trial.add("lockout failure", n=k + 1, decision=out.decision, reason=out.reason)
        s = app.start_session(user["done"])
        out = s.result()
        sessions["done"] = s
        got["done"]["before_kill"] = {"decision": out.decision, "reason": out.reason}
        trial.add("session decided and delivered", session="done", id=s.session_id, decision=out.decision,
                  reason=out.reason)
        sessions["opened"] = app.start_session(user["opened"])
        trial.add("session opened (no frame)", session="opened", id=sessions["opened"].session_id)
        stop, threads, states = threading.Event(), [], {}
        for k in range(MID_SESSIONS):
            role = f"mid-{k}"
            client = Client(server.url, app_key)
            sessions[role] = client.start_session(user[role])
            plan = SessionPlan(BONA_FIDE, k, user[role], None, (), (cfg.seed, 99, k))  # follows the server's prompts
            actor, _ = build_actor(plan, {s.name: s for s in subjects}, ccfg, cfg.variants, cfg.session_model,
                                   fps=cfg.fps)
            states[role] = {}
            th = threading.Thread(target=_stream, args=(trial, role, sessions[role], actor, memo, cfg.fps, stop,
                                                        states[role]), daemon=True)
            threads.append(th)
            trial.add("session opened, streaming", session=role, id=sessions[role].session_id)
            th.start()
        time.sleep(FRAMES_BEFORE_KILL_S)
        killed, killed_at = server.kill9(), time.time()
        trial.add("kill -9 the server's process group", pids=killed,
                  frames_answered={r: states[r].get("frames_answered", 0) for r in states})
        for th in threads:
            th.join(timeout=30)
        stop.set()
        # down for longer than max_frame_gap_s, as a real restart is (the model and workers load): the
        # open sessions then must fail closed however quick this machine's restart would be
        time.sleep(max(0.0, DOWN_S - (time.time() - killed_at)))
        server.start()
        trial.add("server restarted", pid=server.proc.pid, pids=server.pids())
        app = Client(server.url, app_key)
        for role in ["opened", *(f"mid-{k}" for k in range(MID_SESSIONS))]:
            s = sessions[role]
            s.client = app
            t = time.perf_counter() - states[role]["t0"] if role in states else 0.0  # the client's clock goes on
            frame = _call(s.send, memo.get(_any_spec(subjects[0]))[0], t)
            first = _call(s.result)
            second = _call(s.result)
            got[role].update(frame_after_restart=_brief(frame), result=_brief(first), result_again=_brief(second),
                             stream_end=_brief(states.get(role, {}).get("stream_end")),
                             frames_before_kill=states.get(role, {}).get("frames_answered", 0))
            trial.add("after restart", session=role, frame=_brief(frame), result=_brief(first),
                      result_again=_brief(second))
        sessions["done"].client = app
        again = _call(sessions["done"].result)
        got["done"]["result_again"] = _brief(again)
        trial.add("after restart", session="done", result_again=_brief(again))
        s = app.start_session(user["lockout"])
        out = s.result()
        trial.add("lockout failure", n=LOCKOUT_FAILURES, decision=out.decision, reason=out.reason)
        s = app.start_session(user["lockout"])
        locked = {"status": s.status, "outcome": _brief(_call(s.result))}
        got["lockout"].update(after=locked)
        trial.add("lockout: next start", **locked)
        with Client(server.url, admin_key) as admin:
            reads = {role: _call(admin.admin_session, sessions[role].session_id)
                     for role in sessions}
        after = _counts(db, list(user.values()))
        trial.add("counted after", templates=len(after["templates"]), attempts=after["attempts"])
    finally:
        server.stop()
    return _verdict(trial, roles, user, got, reads, before, after, spec, server)


def _any_spec(subject: Any):
    from .attacks.render import BASE, FrameSpec

    return FrameSpec((BASE.layer(subject.neutral[0]),), "live", 0)


def _brief(outcome: dict[str, Any] | None) -> dict[str, Any] | None:
    """A call's outcome for the log: the status and code, or what the value says."""
    if outcome is None:
        return None
    if not outcome["ok"]:
        return {k: v for k, v in outcome.items() if k != "ok"}
    v = outcome["value"]
    if hasattr(v, "decision"):
        return {"decision": v.decision, "reason": v.reason}
    if hasattr(v, "status"):
        return {"status": v.status}
    return {"value": v}


def _verdict(trial: TrialLog, roles, user, got, reads, before, after, spec, server) -> dict[str, Any]:
    """Every check of the trial, and the trial's record."""
    checks: dict[str, bool] = {}
    checks["templates_intact"] = before["templates"] == after["templates"] and len(after["templates"]) == len(roles)
    expected_attempts = {user[r]: 1 for r in roles if r != "lockout"}
    expected_attempts[user["lockout"]] = LOCKOUT_FAILURES
    delta = {u: after["attempts"][u] - before["attempts"][u] for u in after["attempts"]}
    checks["one_attempt_per_session"] = delta == expected_attempts
    open_roles = ["opened", *(r for r in roles if r.startswith("mid-"))]
    fail_closed = {}
    for role in open_roles:
        g = got[role]
        frame_refused = g["frame_after_restart"] and g["frame_after_restart"].get("code") in ("session_expired",
                                                                                             "session_decided")
        rejected = (g["result"] or {}).get("decision") == "reject"
        once = (g["result_again"] or {}).get("code") == "result_already_delivered"
        read = reads.get(role, {})
        stored = read.get("value", {}) if read.get("ok") else {}
        fail_closed[role] = {"frame_refused": bool(frame_refused), "rejected": rejected, "delivered_once": once,
                             "stored_status": stored.get("status"), "stored_reasons": stored.get("reasons")}
    checks["open_sessions_fail_closed"] = all(v["frame_refused"] and v["rejected"] and v["delivered_once"]
                                              and v["stored_status"] == "reject" for v in fail_closed.values())
    checks["done_not_delivered_twice"] = (got["done"].get("result_again") or {}).get("code") == \
        "result_already_delivered"
    lock = got["lockout"].get("after", {})
    checks["lockout_still_counts"] = (lock.get("outcome") or {}).get("reason") == "locked_out"
    checks["no_session_pending"] = all(r.get("ok") and r["value"].get("status") != "pending" for r in reads.values())
    return {"passed": all(checks.values()), "checks": checks, "fail_closed": fail_closed, "sessions": got,
            "attempts_before": before["attempts"], "attempts_after": after["attempts"], "attempt_delta": delta,
            "expected_attempt_delta": expected_attempts, "templates_before": before["templates"],
            "templates_after": after["templates"], "server": spec.to_dict(), "log": trial.events}


def trial_text(trial: dict[str, Any]) -> str:
    """The trial as text: the checks, then the log."""
    lines = [f"fault trial: {'PASSED' if trial['passed'] else 'FAILED'}"]
    lines += [f"  {name}: {'ok' if ok else 'FAILED'}" for name, ok in trial["checks"].items()]
    lines.append("log:")
    for e in trial["log"]:
        info = {k: v for k, v in e.items() if k not in ("utc", "t_s", "event")}
        lines.append(f"  {e['utc']} (+{e['t_s']:7.3f} s) {e['event']}" + (f" {json.dumps(info)}" if info else ""))
    return "\n".join(lines)


def write_trial(trial: dict[str, Any], out: Path, argv: Sequence[str]) -> None:
    """fault_trial.json, fault_trial.log and fault_command.txt into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "fault_trial.json").write_text(json.dumps(trial, indent=1, default=str) + "\n")
    (out / "fault_trial.log").write_text(trial_text(trial) + "\n")
    (out / "fault_command.txt").write_text(" ".join(["facelive-bench", "serve", *map(shlex.quote, argv)]) + "\n")
