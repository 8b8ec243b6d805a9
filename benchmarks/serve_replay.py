"""Decision equality and the offline rate: every server session's accepted frames again, through the runtime.

Each session the server answered is replayed offline as ``facelive auth`` runs one (the pipeline reset,
each frame through :func:`~facelivenet.edge_runtime.authenticate.feed_frame` until the session decides):
the JPEG bytes the server answered 200 (from the spool, by digest), decoded by the runtime's own decoder, at
the ``t`` the server was given (the client's, as sent), against the same template, challenge and plan (the
admin read) and the same session settings (``GET /v1/admin/config``). A session still pending after its
last frame was ended by the client: the server closes it as ABANDONED at the last frame's ``t``, and so does
the replay (``AuthSession.finish``; ``facelive auth`` names the same event SOURCE_ENDED). Its decision and
reasons must equal the server's.

The replay runs in ``processes`` worker processes at once (as many as the server's workers, on the same
cores), each with its own pipeline at one thread; every frame's bytes are read before the clock starts, so
the timed part is decode + pipeline + session rules, the server's per-frame work without HTTP and the
database. Its frames per busy second, summed over the processes, is the offline rate the server's is
compared with.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import BenchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayJob:
    """One server session to replay: what the server decided and everything needed to decide it again."""

    session_id: str
    kind: str
    template: np.ndarray
    challenge: tuple[str, ...]
    plan: dict[str, Any]  # StepPlan.to_dict()
    frames: tuple[tuple[float, str], ...]  # (t as the session was fed, JPEG digest) in order
    server_decision: str
    server_reasons: tuple[str, ...]
    server_thresholds: dict[str, Any] | None = None  # the admin read's (None: not given)


@dataclass(frozen=True)
class ReplayOptions:
    """The runtime as the server runs it (pickled to each worker process)."""

    bundle: str | None
    public_key: str | None
    spool: str
    session: Any  # the server's SessionSettings


_worker: dict[str, Any] = {}
# the reasons a server gives a session that no frame decided (the client ended it; its clock ran out; its limit)
CLOSING = ("ABANDONED", "SESSION_EXPIRED", "TOO_MANY_FRAMES")


def _init_worker(options: ReplayOptions) -> None:
    from facelivenet.edge_runtime.api import open_pipeline
    from facelivenet.edge_runtime.options import RuntimeOptions

    runtime = RuntimeOptions(bundle=options.bundle, public_key=options.public_key, threads=1, session=options.session)
    pipeline = open_pipeline(runtime)
    _worker.update(pipeline=pipeline, options=options,
                   config=options.session.session_config(pipeline.model.manifest))


def _replay(jobs: Sequence[ReplayJob]) -> dict[str, Any]:
    """Replay ``jobs`` in this worker; per session the offline result, and the worker's busy time."""
    from facelivenet.edge_runtime import reasons
    from facelivenet.edge_runtime.authenticate import feed_frame
    from facelivenet.edge_runtime.imageio import decode_image
    from facelivenet.edge_runtime.reasons import Decision
    from facelivenet.edge_runtime.session import AuthSession
    from facelivenet.edge_runtime.sources import Frame
    from facelivenet.edge_runtime.step_plan import StepPlan

    pipeline, spool, cfg = _worker["pipeline"], Path(_worker["options"].spool), _worker["config"]
    out, busy, cpu, frames = [], 0.0, 0.0, 0
    for job in jobs:
        data = [(t, (spool / f"{digest}.jpg").read_bytes()) for t, digest in job.frames]
        session = AuthSession(job.template, job.challenge, cfg, StepPlan.from_dict(job.plan))
        start, cpu0 = time.perf_counter(), time.process_time()
        pipeline.reset()
        for k, (t, jpeg) in enumerate(data):
            feed_frame(pipeline, session, Frame(k, t, decode_image(jpeg), f"frame {k}"))
            if session.status != Decision.PENDING:
                break
        busy += time.perf_counter() - start
        cpu += time.process_time() - cpu0
        # still pending: the server closed it without a frame deciding (the client ended it, or its clock did)
        closing = job.server_reasons[-1] if job.server_reasons and job.server_reasons[-1] in CLOSING else \
            reasons.ABANDONED
        result = session.finish(data[-1][0] if data else None, closing)
        frames += len(data)
        out.append({"session_id": job.session_id, "kind": job.kind, "decision": result.decision,
                    "reasons": list(result.reasons), "frames": result.frames,
                    "thresholds": json.loads(json.dumps(result.thresholds(), default=float))})
    return {"sessions": out, "busy_s": busy, "cpu_s": cpu, "frames": frames, "fingerprint": pipeline.model.fingerprint}


def _split(jobs: Sequence[ReplayJob], parts: int) -> list[list[ReplayJob]]:
    """``jobs`` in ``parts`` shares of about equal frame counts (greedy, longest first)."""
    shares: list[list[ReplayJob]] = [[] for _ in range(parts)]
    load = [0] * parts
    for job in sorted(jobs, key=lambda j: -len(j.frames)):
        k = load.index(min(load))
        shares[k].append(job)
        load[k] += len(job.frames)
    return [s for s in shares if s]


def replay_sessions(jobs: Sequence[ReplayJob], options: ReplayOptions, processes: int) -> dict[str, Any]:
    """Replay every job in ``processes`` worker processes at once; the equality table and the offline rate."""
    if not jobs:
        return {"sessions": [], "agree": {}, "offline": None}
    shares = _split(jobs, max(1, processes))
    # fresh interpreters (no state from the load's threads); a worker that cannot start breaks the pool and
    # the run stops with its error (multiprocessing.Pool would start it again and again)
    with ProcessPoolExecutor(len(shares), mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(options,)) as pool:
        try:
            parts = list(pool.map(_replay, shares))
        except BrokenProcessPool as exc:
            raise BenchError(f"the offline replay's worker processes could not run: {exc}") from exc
    by_id = {s["session_id"]: s for part in parts for s in part["sessions"]}
    rows, agree = [], {}
    for job in jobs:
        offline = by_id[job.session_id]
        same = offline["decision"] == job.server_decision and tuple(offline["reasons"]) == job.server_reasons
        same_thresholds = None if job.server_thresholds is None else offline["thresholds"] == job.server_thresholds
        rows.append({"session_id": job.session_id, "kind": job.kind, "server": [job.server_decision,
                                                                                list(job.server_reasons)],
                     "offline": [offline["decision"], offline["reasons"]], "frames": len(job.frames),
                     "agree": same, "same_thresholds": same_thresholds})
        a = agree.setdefault(job.kind, {"agree": 0, "total": 0})
        a["total"] += 1
        a["agree"] += int(same)
    per_process = [p["frames"] / p["busy_s"] for p in parts if p["busy_s"] > 0]
    offline_rate = {"processes": len(parts), "frames": sum(p["frames"] for p in parts),
                    "busy_s": [round(p["busy_s"], 2) for p in parts],
                    "fps_per_process": [round(r, 1) for r in per_process],
                    "fps": round(sum(per_process), 1),
                    "fps_per_cpu_s": round(sum(p["frames"] for p in parts) / max(1e-9, sum(p["cpu_s"] for p in parts)),
                                           1),
                    "what": "decode + FacePipeline + AuthSession per frame (feed_frame), the server's exact JPEGs, "
                            "one pipeline at 1 thread per process, all processes at once"}
    checked = [r["same_thresholds"] for r in rows if r["same_thresholds"] is not None]
    return {"sessions": rows, "agree": agree, "offline": offline_rate,
            "model_fingerprints": sorted({p["fingerprint"] for p in parts}),
            "thresholds_equal": f"{sum(checked)}/{len(checked)}"}
