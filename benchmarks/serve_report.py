"""The load test's numbers: throughput, per-frame latency, decisions, the sizing on paper, and the report text."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import numpy as np

from .serve_load import LoadSession

LATENCY_TARGET_MS = 50.0  # p95 at 10 concurrent sessions of 10 fps (issue 26)
THROUGHPUT_TARGET_FPS = 100.0  # with 2 workers on a 2-core machine
OFFLINE_RATIO_TARGET = 0.70
LOGINS_PER_HOUR = (1_000, 100_000)
SATURATED = 0.10  # a run whose cameras dropped at least this fraction of their frames (replies too slow) saturated it
PEAK_FACTOR = 3.0  # the busiest minute against the hour's mean (an assumption, stated in the text)


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 / max of ``values`` (ms), None when empty."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(np.asarray(values, np.float64), [50, 95, 99])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2),
            "max": round(float(max(values)), 2)}


def cpu_split(before: dict[int, float], after: dict[int, float]) -> dict[str, Any]:
    """How the server's CPU seconds over the load fell across its processes (pid -> seconds, read before and after).

    With several workers the kernel hands each kept-alive connection to one worker for good, so the split
    can be skewed (``busiest_share`` well above 1 / workers). Processes with under 2 % of the total (the
    supervisor) are listed but left out of the share."""
    spent = sorted(((pid, after[pid] - before.get(pid, 0.0)) for pid in after), key=lambda kv: -kv[1])
    total = sum(s for _, s in spent)
    busy = [s for _, s in spent if total > 0 and s >= 0.02 * total]
    return {"by_process_s": [[pid, round(s, 2)] for pid, s in spent],
            "busiest_share": round(busy[0] / sum(busy), 3) if busy else None,
            "busy_processes": len(busy)}


def throughput(sessions: Sequence[LoadSession], start: float, end: float) -> dict[str, Any]:
    """Frames answered per second over the run, and over its middle 80 % (every slot busy: sustained)."""
    done = sorted(f.done_at for s in sessions for f in s.frames)
    wall = max(end - start, 1e-9)
    lo, hi = start + 0.1 * wall, start + 0.9 * wall
    middle = sum(lo <= d <= hi for d in done)
    return {"frames": len(done), "wall_s": round(wall, 2), "fps_overall": round(len(done) / wall, 1),
            "fps_sustained": round(middle / (0.8 * wall), 1),
            "sustained_window": "the middle 80 % of the load phase (first and last 10 % of its wall time left out)"}


def session_table(sessions: Sequence[LoadSession]) -> dict[str, dict[str, Any]]:
    """Per session type: sessions, decisions, coarse reasons, frames, refusals and errors."""
    table: dict[str, dict[str, Any]] = {}
    for s in sessions:
        row = table.setdefault(s.plan.kind, {"sessions": 0, "accept": 0, "reject": 0, "frames": 0, "skipped": 0,
                                              "reasons": Counter(), "refused": Counter(), "errors": 0})
        row["sessions"] += 1
        row["frames"] += len(s.frames)
        row["skipped"] += s.skipped
        if s.decision in ("accept", "reject"):
            row[s.decision] += 1
        if s.reason:
            row["reasons"][s.reason] += 1
        if s.refused:
            row["refused"][s.refused["code"]] += 1
        row["errors"] += s.error is not None
    for row in table.values():
        row["reasons"], row["refused"] = dict(row["reasons"]), dict(row["refused"])
        row["frames_per_session"] = round(row["frames"] / row["sessions"], 1)
    return table


def sizing(frames_per_core_s: float | None, frames_per_login: float, note: str,
           login_basis: str = "measured") -> dict[str, Any]:
    """Cores and database writes per second for 1 K and 100 K logins an hour, from the measured frames per core
    second and frames per login.

    Writes per login: the session row's insert, one update per frame (the session state; the decision's attempt
    goes in the same transaction as the last one) and the result's claim: ``frames + 2`` transactions."""
    rows = []
    for per_hour in LOGINS_PER_HOUR:
        frames_s = per_hour * frames_per_login / 3600.0
        writes_s = per_hour * (frames_per_login + 2) / 3600.0
        cores = frames_s / frames_per_core_s if frames_per_core_s else None
        rows.append({"logins_per_hour": per_hour, "frames_per_s": round(frames_s, 1),
                     "cores_mean": None if cores is None else round(cores, 2),
                     "cores_peak": None if cores is None else max(1, math.ceil(cores * PEAK_FACTOR)),
                     "db_writes_per_s_mean": round(writes_s, 1), "db_writes_per_s_peak": round(writes_s * PEAK_FACTOR, 1)})
    return {"frames_per_core_s": None if frames_per_core_s is None else round(frames_per_core_s, 1),
            "frames_per_login": round(frames_per_login, 1), "login_basis": login_basis, "peak_factor": PEAK_FACTOR,
            "basis": note, "rows": rows}


def sizing_text(s: dict[str, Any], cpu: str) -> str:
    """The sizing paragraph."""
    if s["frames_per_core_s"] is None:
        return "Sizing: no server CPU time was measured."
    lines = [f"Sizing on paper ({cpu}; the server's own processes: a PostgreSQL server's CPU is not in it): the "
             f"server answered {s['frames_per_core_s']:g} frames per second of server "
             f"CPU time ({s['basis']}); a login took {s['frames_per_login']:g} frames (measured: "
             f"{s['login_basis']}). Database writes per login: the session insert, one state update per frame (the "
             f"decision's attempt in the same transaction as the last) and the result claim "
             f"= frames + 2. Peak = {s['peak_factor']:g} x the hour's mean (an assumption)."]
    for r in s["rows"]:
        lines.append(f"- {r['logins_per_hour']:,} logins/hour: {r['frames_per_s']:g} frames/s -> "
                     f"{r['cores_mean']:g} cores at the mean, {r['cores_peak']} at the peak; "
                     f"{r['db_writes_per_s_mean']:g} DB writes/s mean, {r['db_writes_per_s_peak']:g} at the peak")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    """The report as text (also ``report.md``)."""
    load, lat, cpu = result["load"], result["latency_ms"], result["cpu"]["family"]
    lines = [f"# facelive-bench serve ({result['server']['workers']} worker(s), {result['server']['store']})", "",
             f"CPU: {result['cpu']['model']} ({cpu}); {result['cpu']['cores']} cores; load average at start "
             f"{result['cpu']['loadavg_start']}", "", f"Server settings: {result['lockout_note']}", "",
             f"Load: {result['sessions']} sessions, {result['concurrency']} at a time at {result['fps']:g} fps "
             f"(at most {result['concurrency'] * result['fps']:g} frames/s; the cameras captured "
             f"{load.get('fps_captured')} frames/s, sent or dropped): {load['frames']} frames in "
             f"{load['wall_s']} s: {load['fps_sustained']} frames/s sustained ({load['fps_overall']} overall) "
             f"[{cpu}]",
             f"Per-frame latency (client side, ms): p50 {lat['p50']}, p95 {lat['p95']}, p99 {lat['p99']}, "
             f"max {lat['max']} [{cpu}]; session start p50 {result['start_latency_ms']['p50']} ms",
             f"CPU seconds: server {result['server_cpu_s']}, load generator {result['bench_cpu_s']} "
             f"(render + encode {result['memo']['render_encode_cpu_s']}, {result['memo']['rendered']} frames "
             f"rendered, {result['memo']['read_from_cache_folder']} read from the frame cache, memo hit rate "
             f"{result['memo']['hit_rate']})"]
    split = result.get("server_cpu_split")
    if split and split["busy_processes"] > 1:
        lines.append(f"Server CPU across its {split['busy_processes']} busy processes: the busiest did "
                     f"{split['busiest_share']:.0%} ({', '.join(f'{s} s' for _, s in split['by_process_s'])}); "
                     f"connections: {result['config'].get('connections', 'kept')}")
    lines.append("")
    lines += ["| type | sessions | accept | reject | frames/session | dropped | coarse reasons | refused | errors | "
              "decisions agreeing |", "|---|---|---|---|---|---|---|---|---|---|"]
    agree = result.get("equality", {}).get("agree", {})
    for kind, row in result["types"].items():
        a = agree.get(kind)
        lines.append(f"| {kind} | {row['sessions']} | {row['accept']} | {row['reject']} | {row['frames_per_session']} "
                     f"| {row['skipped']} "
                     f"| {_counts(row['reasons'])} | {_counts(row['refused'])} | {row['errors']} | "
                     f"{'-' if a is None else '%d/%d' % (a['agree'], a['total'])} |")
    eq = result.get("equality")
    if eq:
        lines += ["", f"Decisions equal to the offline runtime on the same frames: {eq['agree_total']}/{eq['total']} "
                      f"(thresholds equal: {eq.get('thresholds_equal')})",
                  "Server reason codes (admin read): " + "; ".join(
                      f"{kind} {_counts(codes)}" for kind, codes in eq.get("server_reasons_by_type", {}).items())]
        off = eq.get("offline")
        if off:
            r = result["server_vs_offline"]
            lines.append(f"Offline rate on the same frames ({off['processes']} process(es) at once, 1 thread each): "
                         f"{off['fps']} frames/s [{cpu}]; server / offline: {r['throughput']} by frames/s "
                         f"({'saturated' if r['saturated'] else 'NOT saturated: the offered load was the limit'}; "
                         f"{r['frames_dropped']:.1%} of the captured frames dropped), "
                         f"{r['per_cpu_s']} per CPU second (server {result['server_fps_per_cpu_s']} frames per "
                         f"server CPU s); the target is judged {r['basis']}")
    row = result.get("per_frame_row")
    if row and row.get("measured"):
        lines.append(f"facelive-bench per-frame row (one 640x480 JAFFE frame, 1 thread, 1 process): median "
                     f"{row['frame_latency_ms']['median']} ms = {row['fps']} frames/s [{cpu}]")
        together, r = row.get("all_cores"), result.get("server_vs_offline") or {}
        if together:
            lines.append(f"The same row on the same cores ({together['processes']} process(es) at once, "
                         f"{together['seconds']:g} s): {together['fps']} frames/s ({', '.join(map(str, together['fps_per_process']))}), "
                         f"{together['fps_per_cpu_s']} frames per CPU s; server / row: {r.get('per_cpu_s_vs_row')} per "
                         "CPU second (the row feeds one decoded frame over and over: no JPEG decode, one face "
                         f"position) [{cpu}]")
    lines += ["", sizing_text(result["sizing"], cpu), "", "Targets: " + ", ".join(
        f"{k} {'met' if v else 'missed'}" for k, v in result["targets"].items() if v is not None)]
    return "\n".join(lines)


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"
