"""``facelive-bench serve``: the verification server under load, on loopback, with its decisions checked.

One run:

1. starts the real server (``facelive serve``, a subprocess, 127.0.0.1 only, ``--workers N``) on a fresh
   SQLite file (or ``--db postgresql://...``), with the lock-out and the rate limits set high (the whole load
   is one key from one address, and attack sessions fail many times per subject; said in the report);
2. makes an admin and an app key (``facelive keys add``) and enrols every JAFFE subject through the API;
3. runs the attack suite's session types (``--sessions-per-type`` each) through the server with the Python
   client, ``--concurrency`` at a time, each paced at ``--fps`` (serve_load.py);
4. reads every session back (the admin read), stops the server and replays every session's accepted frames
   offline through the runtime (serve_replay.py): decisions agreeing per type, and the offline rate on the
   same frames and cores;
5. times ``facelive-bench``'s per-frame row (benchmarks/pipeline.py) in the same run, and writes the sizing.

``--fault-trial`` runs the kill -9 trial instead (serve_fault.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_bundle_option, add_data_option, add_json_flag,
                                                 add_log_options)
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import DEFAULT_CHALLENGE, DEFAULT_FPS, EXIT_OK

from .errors import BenchError
from .serve_load import MEMO_BUDGET_BYTES

PROG = "facelive-bench serve"
log = logging.getLogger("facelivenet.benchmarks.serve")

DEFAULT_SESSIONS_PER_TYPE = 2
DEFAULT_CONCURRENCY = 10
CONNECTIONS = ("kept", "per-session")
DEFAULT_VARIANTS = 3  # jitter variants per image: the attack suite's --quick (fewer distinct frames to render)


@dataclass(frozen=True)
class ServeBenchConfig:
    """One load run."""

    data: Path  # a JAFFE-shaped folder
    sessions_per_type: int = DEFAULT_SESSIONS_PER_TYPE
    types: tuple[str, ...] = ()  # () = every session type
    concurrency: int = DEFAULT_CONCURRENCY
    fps: float = DEFAULT_FPS
    workers: int = 1
    db: str | None = None  # None: a fresh SQLite file in a temporary folder
    bundle: str | None = None
    public_key: str | None = None
    variants: int = DEFAULT_VARIANTS
    seed: int = 0
    session_model: str = "smooth"
    out: Path | None = None
    replay: bool = True
    per_frame_row: bool = True
    memo_mib: int = MEMO_BUDGET_BYTES // 2**20
    frame_cache: Path | None = None  # keep the JPEGs and their index here across runs (None: a temporary folder)
    server_args: tuple[str, ...] = ()  # more `facelive serve` flags (e.g. --request-threads 2), passed as they are
    connections: str = "kept"  # "kept": one kept-alive connection per client thread; "per-session": a new one each

    def __post_init__(self) -> None:
        from .attacks.scenarios import SESSION_MODELS, SESSION_TYPES

        checks = [(self.sessions_per_type >= 1, f"--sessions-per-type must be >= 1, got {self.sessions_per_type}"),
                  (self.concurrency >= 1, f"--concurrency must be >= 1, got {self.concurrency}"),
                  (self.fps > 0, f"--fps must be > 0, got {self.fps}"),
                  (self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
                  (self.variants >= 1, f"--variants must be >= 1, got {self.variants}"),
                  (self.memo_mib >= 1, f"--memo-mib must be >= 1, got {self.memo_mib}"),
                  (self.session_model in SESSION_MODELS, f"unknown session model {self.session_model!r}"),
                  (self.connections in CONNECTIONS, f"--connections must be one of {', '.join(CONNECTIONS)}, "
                                                    f"got {self.connections!r}")]
        unknown = [t for t in self.types if t not in SESSION_TYPES]
        checks.append((not unknown, f"unknown session type(s) {', '.join(unknown)}; choose from "
                                    f"{', '.join(SESSION_TYPES)}"))
        for ok, message in checks:
            if not ok:
                raise BenchError(message)

    @property
    def session_types(self) -> tuple[str, ...]:
        from .attacks.scenarios import SESSION_TYPES

        return tuple(t for t in SESSION_TYPES if not self.types or t in self.types)

    def to_dict(self) -> dict[str, Any]:
        from facelivenet.server.store import redact_url

        d = asdict(self)
        d.update(data=str(self.data), out=None if self.out is None else str(self.out),
                 frame_cache=None if self.frame_cache is None else str(self.frame_cache),
                 db=None if self.db is None else redact_url(self.db), types=list(self.session_types))
        return d


def cpu_description() -> dict[str, Any]:
    """The CPU beside every figure: model, kernel family (AVX-512 VNNI / AVX2 ...), cores, load average."""
    from facelivenet.edge_runtime.cpu_features import cpu_identity

    ident = cpu_identity()
    return {"model": ident["model"], "family": ident["family"], "features": ident["features"],
            "cores": os.cpu_count(), "loadavg_start": [round(v, 2) for v in os.getloadavg()]}


def enroll_subjects(url: str, admin_key: str, subjects: Sequence[Any]) -> dict[str, Any]:
    """Enrol every subject from their enrollment images through ``PUT /v1/users/{user}``."""
    from facelivenet.server.client import Client

    out = {}
    with Client(url, admin_key, timeout_s=120.0) as admin:
        for s in subjects:
            done = admin.enroll(s.name, list(s.enroll))
            out[s.name] = {"images_used": done.images_used, "images_rejected": len(done.images_rejected)}
    return out


def admin_reads(url: str, admin_key: str, session_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``GET /v1/admin/sessions/{id}`` of every session, and the server's resolved config under ``""``."""
    from facelivenet.server.client import Client

    with Client(url, admin_key, timeout_s=60.0) as admin:
        reads = {sid: admin.admin_session(sid) for sid in session_ids}
        reads[""] = admin.request("GET", "/admin/config")
    return reads


def replay_jobs(sessions: Sequence[Any], reads: dict[str, dict[str, Any]], templates: dict[str, Any]) -> list:
    """The offline replay of every session the server opened and decided."""
    from .serve_replay import ReplayJob

    jobs = []
    for s in sessions:
        read = reads.get(s.session_id or "")
        if read is None:
            continue
        result = read.get("result") or {}
        jobs.append(ReplayJob(
            session_id=s.session_id, kind=s.plan.kind, template=templates[s.plan.subject],
            challenge=tuple(read["challenge"]), plan=read["plan"],
            frames=tuple((f.t, f.digest) for f in s.frames),
            server_decision=str(result.get("decision", read.get("status"))),
            server_reasons=tuple(result.get("reasons", read.get("reasons", ()))),
            server_thresholds=read.get("thresholds")))
    return jobs


def stored_templates(db: str, users: Sequence[str]) -> dict[str, Any]:
    """Each user's template as the server stored it (the one the server compares against)."""
    from facelivenet.server.store import open_store

    store = open_store(db)
    try:
        fingerprints = {u.user_id: u.model_fingerprint for u in store.users()}
        return {u: store.template(u, fingerprints[u]).template for u in users}
    finally:
        store.close()


def run_serve_bench(cfg: ServeBenchConfig, work: Path) -> dict[str, Any]:
    """The whole run (module docstring) in the folder ``work`` (the database, spool, logs); the result."""
    from facelivenet.edge_runtime.challenge import ChallengeConfig

    from .attacks.data import load_subjects
    from .attacks.scenarios import plan_sessions
    from .serve_load import JpegMemo, LoadSetup, run_load
    from .serve_report import cpu_split, percentiles, session_table, throughput
    from .serve_server import ServerProcess, ServerSpec, add_key

    started = time.time()
    cpu = cpu_description()
    spool = cfg.frame_cache or work / "spool"
    db = cfg.db or str(work / "server.db")
    log_dir = cfg.out or work
    spec = ServerSpec(db=db, workers=cfg.workers, bundle=cfg.bundle, public_key=cfg.public_key,
                      extra_args=cfg.server_args)
    ccfg = ChallengeConfig(DEFAULT_CHALLENGE, 0)
    subjects = load_subjects(cfg.data, ccfg.expressions)
    admin_key, app_key = add_key(db, "bench-admin", "admin"), add_key(db, "bench-app", "app")
    plans = [p for kind in cfg.session_types for p in plan_sessions(kind, cfg.sessions_per_type, subjects, ccfg,
                                                                      cfg.seed)]
    memo = JpegMemo(spool, cfg.seed, cfg.memo_mib * 2**20)
    with ServerProcess(spec, Path(log_dir) / "server.log") as server:
        server.start()
        enrolled = enroll_subjects(server.url, admin_key, subjects)
        setup = LoadSetup(server.url, app_key, {s.name: s for s in subjects}, ccfg, memo, cfg.variants, cfg.fps,
                          session_model=cfg.session_model)
        log.info("%d subjects enrolled; %d sessions (%d per type), %d at a time at %g fps, %d worker(s)",
                 len(subjects), len(plans), cfg.sessions_per_type, cfg.concurrency, cfg.fps, cfg.workers)
        cpu0 = server.cpu_seconds_by_process()
        sessions, timing = run_load(setup, plans, cfg.concurrency, _progress,
                                    connection_per_session=cfg.connections == "per-session")
        cpu1 = server.cpu_seconds_by_process()
        server_cpu = sum(cpu1.values()) - sum(cpu0.values())
        reads = admin_reads(server.url, admin_key, [s.session_id for s in sessions if s.session_id])
        health = server.health_info
    memo.save()
    load = throughput(sessions, timing["start"], timing["end"])
    load["fps_captured"] = round((load["frames"] + sum(s.skipped for s in sessions)) / load["wall_s"], 1)
    # a login's frames at the camera's full rate: sent + dropped (a saturated server sees fewer)
    bona = [len(s.frames) + s.skipped for s in sessions if s.plan.kind == "bona_fide"]
    login_basis = ("the bona fide sessions' mean, frames captured (sent + dropped)" if bona
                   else "no bona fide session ran: every session's mean, frames captured (sent + dropped)")
    bona = bona or [len(s.frames) + s.skipped for s in sessions]
    result: dict[str, Any] = {
        "config": cfg.to_dict(), "cpu": cpu,
        "server": {**spec.to_dict(), "store": (health or {}).get("store"), "model": (health or {}).get("model"),
                   "config": reads.get("", {})},
        "lockout_note": f"the server ran with max_failures {spec.max_failures} (lock-out effectively off: the "
                        "attack sessions fail many times per subject) and rate limits of "
                        f"{spec.rate_sessions_per_min:g} session starts/min and {spec.rate_frames_per_s:g} frames/s "
                        "(the whole load is one key from one address)",
        "sessions": len(sessions), "concurrency": cfg.concurrency, "fps": cfg.fps, "enrolled": enrolled,
        "load": load,
        "latency_ms": percentiles([f.latency_ms for s in sessions for f in s.frames]),
        "latency_ms_by_type": {k: percentiles([f.latency_ms for s in sessions if s.plan.kind == k for f in s.frames])
                               for k in cfg.session_types},
        "send_lag_ms": percentiles([f.lag_ms for s in sessions for f in s.frames]),
        "start_latency_ms": percentiles([s.start_ms for s in sessions if s.start_ms is not None]),
        "types": session_table(sessions),
        "errors": sum(s.error is not None for s in sessions),
        "server_cpu_s": round(server_cpu, 2), "server_cpu_split": cpu_split(cpu0, cpu1),
        "bench_cpu_s": round(timing["bench_cpu_s"], 2),
        "memo": memo.stats(), "frames_per_login": round(sum(bona) / max(1, len(bona)), 1),
        "frames_per_login_basis": login_basis,
    }
    if cfg.replay:
        result["equality"] = _equality(cfg, sessions, reads, db, spool, subjects)
    if cfg.per_frame_row:
        result["per_frame_row"] = _per_frame_row(cfg)
    _finish(result, cfg, sessions)
    result["elapsed_s"] = round(time.time() - started, 1)
    result["session_records"] = [s.to_dict() for s in sessions]
    result["frame_records"] = [(s.session_id, s.plan.kind, f.seq, f.index, f.t, round(f.latency_ms, 3),
                                round(f.lag_ms, 3), f.digest) for s in sessions for f in s.frames]
    return result


def _equality(cfg: ServeBenchConfig, sessions, reads, db: str, spool: Path, subjects) -> dict[str, Any]:
    from facelivenet.server.config import session_from_dict

    from .serve_replay import ReplayOptions, replay_sessions

    templates = stored_templates(db, [s.name for s in subjects])
    jobs = replay_jobs(sessions, reads, templates)
    settings = session_from_dict(reads[""]["session"])
    options = ReplayOptions(cfg.bundle, cfg.public_key, str(spool), settings)
    log.info("replaying %d sessions offline in %d process(es)", len(jobs), cfg.workers)
    eq = replay_sessions(jobs, options, cfg.workers)
    eq["total"] = len(jobs)
    eq["agree_total"] = sum(r["agree"] for r in eq["sessions"])
    eq["not_replayed"] = len(sessions) - len(jobs)
    eq["same_model"] = eq.get("model_fingerprints") == [reads[""].get("model_fingerprint")]
    by_type: dict[str, Counter] = {}
    for row in eq["sessions"]:  # the server's full reason codes (the admin read), per session type
        by_type.setdefault(row["kind"], Counter())[",".join(row["server"][1]) or "ACCEPT"] += 1
    eq["server_reasons_by_type"] = {k: dict(v) for k, v in by_type.items()}
    return eq


def _per_frame_row(cfg: ServeBenchConfig) -> dict[str, Any]:
    """``facelive-bench``'s per-frame row (benchmarks/pipeline.py) in this run: one process at one thread with
    the other cores idle (the row as ``facelive-bench`` prints it), then the same row in as many processes at
    once as the server had workers (the offline pipeline on the same cores as the server: ``all_cores``)."""
    from .latency import QUICK_RUNS, QUICK_WARMUP
    from .pipeline import pipeline_section, row_on_all_cores, runtime_frame

    bundle = Path(cfg.bundle) if cfg.bundle else None
    row = pipeline_section(runtime_frame(bundle, 1, cfg.data.parent), QUICK_RUNS * 4, QUICK_WARMUP * 2, 1)
    if row.get("measured"):
        row["all_cores"] = row_on_all_cores(bundle, cfg.data.parent, cfg.workers)
    return row


def _finish(result: dict[str, Any], cfg: ServeBenchConfig, sessions: Sequence[Any]) -> None:
    """Ratios, the sizing and the targets."""
    from .serve_report import LATENCY_TARGET_MS, OFFLINE_RATIO_TARGET, SATURATED, THROUGHPUT_TARGET_FPS, sizing

    fps = result["load"]["fps_sustained"]
    offered = cfg.concurrency * cfg.fps
    off = (result.get("equality") or {}).get("offline")
    per_cpu = result["load"]["frames"] / result["server_cpu_s"] if result["server_cpu_s"] > 0 else None
    result["server_fps_per_cpu_s"] = None if per_cpu is None else round(per_cpu, 1)
    # the server's rate is its capacity only when the load saturated it (the sessions' cameras then capture
    # frames faster than the replies come: many are dropped); else compare per CPU second
    sent, skipped = result["load"]["frames"], sum(s.skipped for s in sessions)
    dropped = skipped / (sent + skipped) if sent + skipped else 0.0
    saturated = dropped >= SATURATED
    ratio = {"throughput": round(fps / off["fps"], 3) if off and off["fps"] else None,
             "per_cpu_s": round(per_cpu / off["fps_per_cpu_s"], 3) if off and off["fps_per_cpu_s"] and per_cpu
             else None, "saturated": saturated,
             "frames_dropped": round(dropped, 3)}
    ratio["basis"] = "throughput" if saturated else "per_cpu_s"
    row_all = (result.get("per_frame_row") or {}).get("all_cores")
    ratio["per_cpu_s_vs_row"] = (round(per_cpu / row_all["fps_per_cpu_s"], 3)
                                 if row_all and row_all.get("fps_per_cpu_s") and per_cpu else None)
    result["server_vs_offline"] = ratio
    result["sizing"] = sizing(per_cpu, result["frames_per_login"],
                              f"{result['load']['frames']} frames over {result['server_cpu_s']} s of server CPU, "
                              f"{cfg.workers} worker(s), every worker process counted",
                              result["frames_per_login_basis"])
    eq = result.get("equality")
    chosen = ratio[ratio["basis"]]
    result["targets"] = {
        "decisions_identical": None if not eq else (eq["agree_total"] == eq["total"] and eq["total"] > 0
                                                    and eq["same_model"]),
        "p95_le_50ms_at_10x10fps": (result["latency_ms"]["p95"] is not None
                                    and result["latency_ms"]["p95"] <= LATENCY_TARGET_MS)
        if cfg.concurrency == 10 and cfg.fps == 10 else None,
        "ge_100fps_2_workers": fps >= THROUGHPUT_TARGET_FPS if cfg.workers == 2 and offered >= 100 else None,
        "ge_70pct_offline": None if chosen is None else chosen >= OFFLINE_RATIO_TARGET,
        "ge_70pct_per_frame_row_same_cores": (None if ratio["per_cpu_s_vs_row"] is None
                                              else ratio["per_cpu_s_vs_row"] >= OFFLINE_RATIO_TARGET),
        "no_errors": result["errors"] == 0,
    }


def write_results(result: dict[str, Any], out: Path, argv: Sequence[str]) -> dict[str, str]:
    """result.json (without the per-session and per-frame records), sessions.jsonl, frames.csv.gz (every answered
    frame: its latency and send lag), report.md and command.txt into ``out``."""
    from .serve_report import markdown

    out.mkdir(parents=True, exist_ok=True)
    records = result.pop("session_records", [])
    frames = result.pop("frame_records", [])
    files = {"result.json": out / "result.json", "sessions.jsonl": out / "sessions.jsonl",
             "frames.csv.gz": out / "frames.csv.gz", "report.md": out / "report.md", "command.txt": out / "command.txt"}
    files["sessions.jsonl"].write_text("".join(json.dumps(r) + "\n" for r in records))
    with gzip.open(files["frames.csv.gz"], "wt") as f:
        f.write("session_id,kind,seq,camera_index,t,latency_ms,send_lag_ms,jpeg_blake2b\n")
        f.writelines(",".join(map(str, row)) + "\n" for row in frames)
    files["report.md"].write_text(markdown(result) + "\n")
    files["command.txt"].write_text(" ".join(["facelive-bench", "serve", *map(shlex.quote, argv)]) + "\n")
    log_file = out / "server.log"
    if log_file.is_file():  # every request's access line: gzip it (a full run writes megabytes)
        with open(log_file, "rb") as src, gzip.open(out / "server.log.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        log_file.unlink()
        files["server.log.gz"] = out / "server.log.gz"
    result["files"] = {k: str(v) for k, v in files.items()}
    files["result.json"].write_text(json.dumps(result, indent=1) + "\n")
    result["session_records"] = records
    return result["files"]


def _progress(done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        log.info("%d/%d sessions", done, total)


def build_parser() -> argparse.ArgumentParser:
    from .attacks.scenarios import SESSION_MODELS, SESSION_TYPES

    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=HelpFormatter,
        description="The verification server (facelive serve) under load on loopback: the attack suite's sessions "
                    "from JAFFE frames through the real server and the Python client, paced at real time; per-frame "
                    "latency, frames/s, decisions checked against the offline runtime on the same frames, the "
                    "offline rate on the same cores, and the sizing. --fault-trial: kill -9 the server mid-session "
                    "and restart it.",
        epilog="examples:\n"
               "  facelive-bench serve --sessions-per-type 1 --concurrency 4 --out reports/serve-tiny\n"
               "  facelive-bench serve --sessions-per-type 100 --concurrency 10 --workers 1 --out DIR  # latency\n"
               "  facelive-bench serve --sessions-per-type 100 --concurrency 16 --workers 2 --out DIR  # throughput\n"
               "  facelive-bench serve --fault-trial --out DIR")
    add_data_option(p, "jaffe/ (or a JAFFE-shaped folder)")
    add_bundle_option(p)
    p.add_argument("--public-key", metavar="K", help="the bundle's signing key (as facelive serve takes it)")
    p.add_argument("--db", metavar="D", help="postgresql://... to run on PostgreSQL (default: a fresh SQLite file)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    p.add_argument("--server-args", metavar="FLAGS", default="", help="more facelive serve flags, one string "
                   "(e.g. \"--request-threads 2\"); the report's command line keeps them")
    p.add_argument("--sessions-per-type", type=int, default=DEFAULT_SESSIONS_PER_TYPE, metavar="M",
                   help=f"sessions of each type (default {DEFAULT_SESSIONS_PER_TYPE}; the issue's target: 100)")
    p.add_argument("--types", metavar="LIST", help=f"session types (default all: {','.join(SESSION_TYPES)})")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                   help=f"sessions at once (default {DEFAULT_CONCURRENCY})")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frames per second per session (default "
                                                                   f"{DEFAULT_FPS:g})")
    p.add_argument("--variants", type=int, default=DEFAULT_VARIANTS,
                   help=f"jitter variants per image (default {DEFAULT_VARIANTS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the session plans and actors (default 0)")
    p.add_argument("--session-model", choices=tuple(SESSION_MODELS), default="smooth")
    p.add_argument("--memo-mib", type=int, default=MEMO_BUDGET_BYTES // 2**20,
                   help=f"JPEG memo budget in MiB (default {MEMO_BUDGET_BYTES // 2**20})")
    p.add_argument("--frame-cache", type=Path, metavar="DIR",
                   help="keep the rendered JPEGs and their index here: a later run reads the frames it has seen "
                        "instead of rendering them (less load-generator CPU beside the server)")
    p.add_argument("--no-replay", dest="replay", action="store_false",
                   help="skip the offline replay (decision equality and the offline rate)")
    p.add_argument("--no-per-frame-row", dest="per_frame_row", action="store_false",
                   help="skip facelive-bench's per-frame row")
    p.add_argument("--connections", choices=CONNECTIONS, default="kept",
                   help="kept (default): each client thread keeps one connection for all its sessions, so a worker "
                        "keeps the connections it accepted first; per-session: a new connection per session, as "
                        "phones connect (the report shows how the server's CPU split across workers either way)")
    p.add_argument("--fault-trial", action="store_true", help="run the kill -9 trial instead of the load")
    p.add_argument("--out", type=Path, metavar="DIR", help="write result.json, report.md, sessions.jsonl, the server "
                                                           "log and command.txt here")
    add_json_flag(p)
    add_log_options(p)
    return p


def config_from_args(args: argparse.Namespace) -> ServeBenchConfig:
    from .attacks.cli import jaffe_and_types

    data, types = jaffe_and_types(args, ())
    return ServeBenchConfig(data=data, sessions_per_type=args.sessions_per_type, types=types,
                            concurrency=args.concurrency, fps=args.fps, workers=args.workers, db=args.db,
                            bundle=args.bundle, public_key=args.public_key, variants=args.variants, seed=args.seed,
                            session_model=args.session_model, out=args.out, replay=args.replay,
                            per_frame_row=args.per_frame_row, memo_mib=args.memo_mib, frame_cache=args.frame_cache,
                            server_args=tuple(shlex.split(args.server_args)), connections=args.connections)


def main(argv: Sequence[str] | None = None) -> int:
    """``facelive-bench serve ...``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, build_parser(), argv, lambda args: _run(args, argv))


def _run(args: argparse.Namespace, argv: Sequence[str]):
    from .serve_report import markdown

    cfg = config_from_args(args)
    work = Path(tempfile.mkdtemp(prefix="facelive-serve-"))
    try:
        if args.fault_trial:
            from .serve_fault import run_fault_trial, trial_text

            trial = run_fault_trial(cfg, work)
            if cfg.out is not None:
                from .serve_fault import write_trial

                write_trial(trial, cfg.out, argv)
            return EXIT_OK, trial, trial_text(trial)
        result = run_serve_bench(cfg, work)
        if cfg.out is not None:
            write_results(result, cfg.out, argv)
        result.pop("session_records", None)
        result.pop("frame_records", None)
        return EXIT_OK, result, markdown(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
