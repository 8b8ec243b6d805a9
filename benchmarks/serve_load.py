"""The load: the attack suite's sessions, each played through the server by its actor, paced at real time.

Each session runs in one of ``concurrency`` client threads (one kept-alive :class:`Client` each). Its actor
(:func:`~.attacks.scenarios.build_actor`, the very one the offline suite uses) is asked for frame ``i``
with what the server's last reply asked (the step's expected expression and target oval; None once
decided), and the frame is sent at its capture time ``t = i / fps`` after the session's first frame; a
frame captured while a reply was awaited is dropped for the newest, as a camera app does
(:func:`run_load_session`). A
frame is rendered and JPEG-encoded once per frame spec (:class:`JpegMemo`) and its bytes are spooled on
disk by digest: the offline replay reads the exact bytes the server answered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2

from facelivenet.edge_runtime.challenge import ChallengeConfig
from facelivenet.edge_runtime.step_plan import PositionRule, Target, TimingRule

from .attacks.data import Subject
from .attacks.render import FrameSpec, Renderer
from .attacks.scenarios import SessionPlan, build_actor

log = logging.getLogger(__name__)

JPEG_QUALITY = 90  # what a phone app would send (the client's own default)
MEMO_BUDGET_BYTES = 512 * 2**20
INDEX = "index.pkl"  # the spool's spec -> digest index (JpegMemo.save)


class JpegMemo:
    """JPEG bytes per frame spec (rendered and encoded once while they fit ``budget`` bytes, least recently used
    out first); every distinct JPEG is written once to ``spool`` as ``<digest>.jpg``. Thread-safe.

    :meth:`save` keeps the spec -> digest index in the spool (``index.pkl``): a later run on the same spool
    (``facelive-bench serve --frame-cache DIR``) reads a frame it has seen from disk instead of rendering it,
    so the load generator takes less of the CPU it shares with the server. The index is ours (a local cache
    folder), and it is only used when the renderer's seed, the canvas, the JPEG quality and OpenCV match."""

    def __init__(self, spool: Path, seed: int = 0, budget: int = MEMO_BUDGET_BYTES,
                 quality: int = JPEG_QUALITY) -> None:
        # the renderer keeps only a few arrays: the JPEGs are what is memoised
        self.renderer = Renderer(cache_frames=4, seed=seed)
        self.spool, self.budget, self.quality = spool, budget, quality
        self.spool.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[FrameSpec, tuple[bytes, str]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.from_disk = 0
        self.render_s = 0.0  # thread CPU seconds spent rendering and encoding
        self._key = (seed, tuple(self.renderer.canvas_hw), quality, cv2.__version__)
        self._index: dict[FrameSpec, str] = self._load_index()

    def _load_index(self) -> dict[FrameSpec, str]:
        try:
            saved = pickle.loads((self.spool / INDEX).read_bytes())
            return dict(saved["index"]) if saved.get("key") == self._key else {}
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, KeyError, TypeError):
            return {}

    def save(self) -> None:
        """Write the spec -> digest index into the spool (atomically)."""
        with self._lock:
            blob = pickle.dumps({"key": self._key, "index": self._index}, protocol=5)
        tmp = self.spool / f"{INDEX}.tmp"
        tmp.write_bytes(blob)
        os.replace(tmp, self.spool / INDEX)

    def _stored(self, spec: FrameSpec) -> tuple[bytes, str] | None:
        digest = self._index.get(spec)
        if digest is None:
            return None
        try:
            jpeg = (self.spool / f"{digest}.jpg").read_bytes()
        except OSError:
            return None
        self.from_disk += 1
        return jpeg, digest

    def get(self, spec: FrameSpec) -> tuple[bytes, str]:
        """(JPEG bytes, hex digest) of ``spec``."""
        with self._lock:
            held = self._cache.get(spec)
            if held is not None:
                self._cache.move_to_end(spec)
                self.hits += 1
                return held
            held = self._stored(spec)
            if held is not None:
                self._keep(spec, held)
                return held
            start = time.thread_time()
            ok, data = cv2.imencode(".jpg", self.renderer.render(spec), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise RuntimeError("OpenCV could not encode a rendered frame")
            jpeg = data.tobytes()
            digest = hashlib.blake2b(jpeg, digest_size=16).hexdigest()
            path = self.spool / f"{digest}.jpg"
            if not path.exists():
                path.write_bytes(jpeg)
            self.render_s += time.thread_time() - start
            self.misses += 1
            self._index[spec] = digest
            self._keep(spec, (jpeg, digest))
            return jpeg, digest

    def _keep(self, spec: FrameSpec, held: tuple[bytes, str]) -> None:
        self._cache[spec] = held
        self._bytes += len(held[0])
        while self._bytes > self.budget and len(self._cache) > 1:
            _, (old, _) = self._cache.popitem(last=False)
            self._bytes -= len(old)

    def stats(self) -> dict[str, Any]:
        calls = self.hits + self.misses + self.from_disk
        return {"frames": calls, "rendered": self.misses, "read_from_cache_folder": self.from_disk,
                "hit_rate": round((self.hits + self.from_disk) / calls, 4) if calls else None,
                "render_encode_cpu_s": round(self.render_s, 2), "budget_mib": self.budget // 2**20}


@dataclass
class SentFrame:
    """One frame the server answered 200: what was sent (``t``, the JPEG's digest) and how long it took."""

    seq: int  # the server's frame count
    index: int  # the camera's frame index (t = index / fps); frames captured while a reply was awaited are skipped
    t: float
    digest: str
    latency_ms: float
    done_at: float  # perf_counter when the reply was read
    lag_ms: float  # how long after its capture it was sent (the previous reply came after its capture time)


@dataclass
class LoadSession:
    """One session through the server: its plan, what the server said, and every frame."""

    plan: SessionPlan
    session_id: str | None = None
    opened_status: str | None = None
    start_ms: float | None = None
    frames: list[SentFrame] = field(default_factory=list)
    refused: dict[str, Any] | None = None  # the first refused frame: {"seq", "index", "status", "code"}
    skipped: int = 0  # frames the camera captured while waiting for a reply, never sent
    ended_by: str = ""  # "decided" | "source_ended" | "max_frames" | "refused" | "error"
    decision: str | None = None
    reason: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.plan.kind, "index": self.plan.index, "subject": self.plan.subject,
                "attacker": self.plan.attacker, "session_id": self.session_id, "opened_status": self.opened_status,
                "frames": len(self.frames), "skipped": self.skipped, "refused": self.refused, "ended_by": self.ended_by,
                "decision": self.decision, "reason": self.reason, "error": self.error, "detail": self.detail}


@dataclass(frozen=True)
class LoadSetup:
    """What every session of one run shares."""

    url: str
    app_key: str
    subjects: dict[str, Subject]
    ccfg: ChallengeConfig
    memo: JpegMemo
    variants: int
    fps: float
    positions: PositionRule | None = PositionRule()  # the server's rules: a replay's recording follows its own
    timing: TimingRule | None = TimingRule()  # order, places and rests drawn with them, as in the offline suite
    session_model: str = "smooth"
    timeout_s: float = 30.0


def _target(oval: Any) -> Target | None:
    return None if oval is None else Target(oval.cx, oval.cy, oval.rx, oval.ry)


def run_load_session(setup: LoadSetup, client: Any, plan: SessionPlan) -> LoadSession:
    """One session of ``plan`` through the server, as a camera app at ``setup.fps`` sends it: frame ``i`` is
    captured at ``t = i / fps`` (after the session's first frame) and sent then; while a reply is awaited the
    camera goes on, so the next frame sent is the newest one captured (the ones in between are dropped,
    counted in ``skipped``), and the client's clock never falls behind the server's."""
    from facelivenet.server.client import ServerError

    rec = LoadSession(plan)
    # the actor follows the targets the server sends; the rules only shape a replay's own recording
    actor, rec.detail = build_actor(plan, setup.subjects, setup.ccfg, setup.variants, setup.session_model,
                                    setup.positions, setup.timing, setup.fps)
    rec.detail.pop("places_match", None)  # against the offline plan's places, not the server's: meaningless here
    try:
        start = time.perf_counter()
        session = client.start_session(plan.subject)
        rec.start_ms = (time.perf_counter() - start) * 1e3
        rec.session_id, rec.opened_status = session.session_id, session.status
        max_frames = int(session.limits.get("max_frames", 600))
        expected, target = session.step.expected if session.step else None, \
            _target(session.step.target if session.step else None)
        t0, i = None, 0
        while True:
            if not session.pending:
                rec.ended_by = "decided"
                break
            if len(rec.frames) >= max_frames:
                rec.ended_by = "max_frames"
                break
            spec = actor.spec(i, expected, target)
            if spec is None:
                rec.ended_by = "source_ended"
                break
            jpeg, digest = setup.memo.get(spec)
            t = i / setup.fps
            now = time.perf_counter()
            if t0 is None:
                t0 = now
            wait = t0 + t - now
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter()
            try:
                reply = session.send(jpeg, t)
            except ServerError as exc:
                rec.refused = {"seq": len(rec.frames), "index": i, "status": exc.status, "code": exc.code}
                rec.ended_by = "refused"
                break
            done = time.perf_counter()
            rec.frames.append(SentFrame(len(rec.frames), i, t, digest, (done - sent) * 1e3, done,
                                        max(0.0, -wait) * 1e3))
            expected, target = reply.expected, _target(reply.target)
            newest = int((done - t0) * setup.fps)  # the newest frame the camera has captured by now
            rec.skipped += max(0, newest - (i + 1))
            i = max(i + 1, newest)
        outcome = session.result()
        rec.decision, rec.reason = outcome.decision, outcome.reason
    except Exception as exc:  # noqa: BLE001 - a failed session is counted and reported, the run goes on
        rec.error = f"{type(exc).__name__}: {exc}"
        rec.ended_by = rec.ended_by or "error"
        log.warning("%s #%d: %s", plan.kind, plan.index, rec.error)
    return rec


def run_load(setup: LoadSetup, plans: Sequence[SessionPlan], concurrency: int,
             progress: Callable[[int, int], None] | None = None,
             connection_per_session: bool = False) -> tuple[list[LoadSession], dict[str, float]]:
    """Every plan through the server, ``concurrency`` sessions at a time; (sessions in plan order, timing of the
    run: perf_counter start/end and the bench process's CPU seconds). Each client thread keeps one connection
    for all its sessions, or with ``connection_per_session`` opens a new one for each (and closes it after)."""
    from facelivenet.server.client import Client

    local = threading.local()
    clients: list[Any] = []
    lock = threading.Lock()
    done = [0]

    def one(plan: SessionPlan) -> LoadSession:
        if connection_per_session:
            with Client(setup.url, setup.app_key, timeout_s=setup.timeout_s) as client:
                rec = run_load_session(setup, client, plan)
        else:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = Client(setup.url, setup.app_key, timeout_s=setup.timeout_s)
                with lock:
                    clients.append(client)
            rec = run_load_session(setup, client, plan)
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], len(plans))
        return rec

    cpu0, start = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load") as pool:
        records = list(pool.map(one, plans))
    timing = {"start": start, "end": time.perf_counter(), "bench_cpu_s": time.process_time() - cpu0}
    for client in clients:
        client.close()
    return records, timing
