"""Error rates in ISO/IEC 30107-3 terms, reason histograms, the DET curve, and the report folder.

- APCER (per attack type) = attack sessions accepted / attack sessions of that type;
- BPCER = bona fide sessions rejected / bona fide sessions;
- 95 % intervals are Wilson score intervals (an APCER of 0 over 100 sessions
  still allows up to 3.7 %).
- DET: APCER of each attack type against BPCER as the identity aggregate
  threshold sweeps over every session's aggregate score, floor and continuity
  at their calibrated values (decisions derived from the open-identity runs,
  :func:`simulate.derived_decision`); the operating point is the per-subject
  calibrated thresholds.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelivenet.edge_runtime.reasons import Decision
from facelivenet.training.evaluation.plots import _pyplot, _save

from .scenarios import ATTACK_TYPES, BONA_FIDE
from .simulate import SessionRecord, reason_code

log = logging.getLogger(__name__)

BPCER_TARGETS = {"model": 0.20, "dlib": 0.05}  # the shipped embedding / the dlib diagnostic (issue 15)
TARGETS = {"bpcer": 0.05, "apcer": {"photo": 0.0, "expression_photo": 0.0, "swap": 0.0, "two_faces": 0.0,
                                    "track_jump": 0.0, "impostor": 0.01}}  # replay: replay_target()
REPLAY_TARGET = 0.01  # with positions or timing (issue 25); orders alone bound a blind replay by 1 / orders


def replay_target(orders: int, challenges: int | None = None) -> float:
    """The replay APCER target: 1 / orders when only the order is random, else REPLAY_TARGET."""
    return 1.0 / orders if challenges is None or challenges <= orders else REPLAY_TARGET
LABELS = {BONA_FIDE: "bona fide", "photo": "photo", "expression_photo": "expression photo", "replay": "replay",
          "swap": "swap", "impostor": "impostor", "two_faces": "two faces", "track_jump": "track jump"}


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _by_kind(records: Sequence[SessionRecord]) -> dict[str, list[SessionRecord]]:
    out: dict[str, list[SessionRecord]] = {}
    for r in records:
        out.setdefault(r.kind, []).append(r)
    return out


def error_rates(records: Sequence[SessionRecord]) -> dict[str, Any]:
    """BPCER, APCER per type, their intervals and counts, reason histograms, at the calibrated thresholds."""
    groups = _by_kind(records)
    out: dict[str, Any] = {"counts": {}, "ci95": {"apcer": {}}, "apcer": {}, "reasons": {}}
    for kind, rs in groups.items():
        bad = sum(not r.accepted for r in rs) if kind == BONA_FIDE else sum(r.accepted for r in rs)
        rate, ci = bad / len(rs), [round(v, 4) for v in wilson_interval(bad, len(rs))]
        out["counts"][kind] = {"sessions": len(rs), "errors": bad}
        out["reasons"][kind] = dict(Counter(reason_code(r) for r in rs).most_common())
        if kind == BONA_FIDE:
            out["bpcer"], out["ci95"]["bpcer"] = rate, ci
        else:
            out["apcer"][kind], out["ci95"]["apcer"][kind] = rate, ci
    out["apcer"] = {k: out["apcer"][k] for k in ATTACK_TYPES if k in out["apcer"]}
    return out


def open_identity_rates(records: Sequence[SessionRecord]) -> dict[str, Any]:
    """The rates with the identity check off: what the challenge, tracking and face count stop by themselves."""
    groups = _by_kind(records)
    out = {"apcer": {k: float(np.mean([r.open_decision == Decision.ACCEPT for r in groups[k]]))
                     for k in ATTACK_TYPES if k in groups}}
    if BONA_FIDE in groups:
        out["bpcer"] = float(np.mean([r.open_decision != Decision.ACCEPT for r in groups[BONA_FIDE]]))
    return out


def replay_detail(records: Sequence[SessionRecord]) -> dict[str, Any]:
    """Replays whose recorded order matched the drawn challenge vs the others."""
    rs = [r for r in records if r.kind == "replay"]
    matched = [r for r in rs if r.detail.get("order_matches")]
    other = [r for r in rs if not r.detail.get("order_matches")]
    places = [r for r in rs if r.detail.get("places_match")]
    return {"order_matched": len(matched), "accepted_when_matched": sum(r.accepted for r in matched),
            "order_differed": len(other), "accepted_when_differed": sum(r.accepted for r in other),
            "places_matched": len(places), "accepted_when_places_matched": sum(r.accepted for r in places)}


def _aggregate(r: SessionRecord) -> float | None:
    return r.open_identity.get("aggregate") if r.open_identity else None


def det_curve(records: Sequence[SessionRecord]) -> dict[str, Any]:
    """BPCER and APCER per type at every aggregate threshold that changes a decision."""
    groups = _by_kind(records)
    cuts = sorted({_aggregate(r) for r in records if _aggregate(r) is not None})
    thresholds = [-1.0] + [float(c) for c in cuts] + [float(np.nextafter(cuts[-1], np.inf))] if cuts else [-1.0]

    def accept_rate(rs: list[SessionRecord]) -> list[float]:
        return [float(np.mean([r.accepted_at(t) for r in rs])) for t in thresholds]

    out: dict[str, Any] = {"thresholds": thresholds, "apcer": {}}
    if BONA_FIDE in groups:
        out["bpcer"] = [1.0 - a for a in accept_rate(groups[BONA_FIDE])]
    for kind in ATTACK_TYPES:
        if kind in groups:
            out["apcer"][kind] = accept_rate(groups[kind])
    return out


def meets_targets(rates: dict[str, Any], orders: int, bpcer_target: float = TARGETS["bpcer"],
                  challenges: int | None = None) -> dict[str, bool]:
    """Each measured rate against its target (replay: :func:`replay_target`)."""
    targets = dict(TARGETS["apcer"], replay=replay_target(orders, challenges))
    out = {k: v <= targets[k] + 1e-12 for k, v in rates["apcer"].items()}
    if "bpcer" in rates:
        out["bpcer"] = rates["bpcer"] <= bpcer_target
    return out


def table(summary: dict[str, Any]) -> str:
    """The human-readable table of a summary."""
    orders = summary["challenge_orders"]
    thr = summary["thresholds"]
    rng = {k: f"{v['min']:.4f}-{v['max']:.4f}" for k, v in thr["ranges"].items()}
    lines = [
        f"attack suite{' (QUICK: fewer sessions than the full run)' if summary['quick'] else ''}: "
        f"{summary['sessions_per_type']} sessions per type, challenge {','.join(summary['challenge']['expressions'])} "
        f"x{summary['challenge']['steps']} ({orders} distinct orders, {summary['challenge_orders_seen']} seen"
        + (f"; {summary['distinct_challenges']:,} distinct order x position x timing challenges"
           if summary.get("distinct_challenges", orders) > orders else "") + ")",
        f"identity: {summary['identity']['description']}",
        f"session model: {summary['session_model']['name']} ({summary['session_model']['description']})",
        f"thresholds, leave-one-subject-out on still pairs of the other subjects: aggregate {rng['aggregate']} "
        f"at FAR {thr['rates']['far']:g}; floor {rng['floor']} at FAR {thr['rates']['floor_far']:g}; "
        f"continuity {rng['continuity']} at FAR {thr['rates']['continuity_far']:g}; expression margin "
        f"{rng['margin']} log-odds at rest rate {thr['rates']['rest_rate']:g}",
        "",
        f"{'type':<18}{'metric':<7}{'rate':>8}  {'95% CI':<16}{'target':>8}  {'met':<4} "
        f"{'no identity':>11}  reasons",
    ]
    rows = [(BONA_FIDE, "BPCER", summary["bpcer"], summary["ci95"]["bpcer"], summary["bpcer_target"],
             summary["meets_target"].get("bpcer"), summary["without_identity"].get("bpcer"))]
    for kind, rate in summary["apcer"].items():
        target = replay_target(orders, summary.get("distinct_challenges")) if kind == "replay" else TARGETS["apcer"][kind]
        rows.append((kind, "APCER", rate, summary["ci95"]["apcer"][kind], target, summary["meets_target"][kind],
                     summary["without_identity"]["apcer"].get(kind)))
    for kind, metric, rate, ci, target, met, open_rate in rows:
        hist = ", ".join(f"{k} {v}" for k, v in summary["reasons"][kind].items())
        lines.append(f"{LABELS[kind]:<18}{metric:<7}{rate:>8.3f}  [{ci[0]:.3f}, {ci[1]:.3f}]  {target:>8.3f}  "
                     f"{'yes' if met else 'NO':<4} {open_rate:>11.3f}  {hist}")
    rep = summary["replay_detail"]
    lines += ["", f"replay: {rep['accepted_when_matched']}/{rep['order_matched']} accepted when the recorded order "
              f"matched the drawn challenge, {rep['accepted_when_differed']}/{rep['order_differed']} otherwise"
              + (f"; {rep['accepted_when_places_matched']}/{rep['places_matched']} when its places matched the "
                 f"session's targets" if "places_matched" in rep else ""),
              "'no identity': the rate with the identity check off (what liveness alone stops)",
              f"report: {summary['report']}"]
    return "\n".join(lines)


def plot_det(det: dict[str, Any], operating: dict[str, Any], path: Path) -> Path:
    """APCER (x, per attack type) against BPCER (y) over the identity aggregate thresholds, to a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    try:
        bpcer = np.asarray(det["bpcer"]) * 100
        for kind, apcer in det["apcer"].items():
            line, = ax.plot(np.asarray(apcer) * 100, bpcer, lw=1.8, label=LABELS[kind])
            ax.plot(operating["apcer"][kind] * 100, operating["bpcer"] * 100, "o", color=line.get_color())
        worst = max((max(a) for a in det["apcer"].values()), default=0.0) * 100
        ax.set_xlim(-0.5, max(10.0, 1.1 * worst))  # the interesting part: low APCER
        ax.set_ylim(-2, 102)
        ax.set_xlabel("APCER (%)")
        ax.set_ylabel("BPCER (%)")
        ax.grid(True, alpha=0.3)
        ax.set_title("Attack suite DET over identity aggregate thresholds\n(dots: the calibrated operating point)")
        ax.legend(loc="upper right", fontsize=8)
        return _save(fig, path)
    finally:
        plt.close(fig)


def write_report(out_dir: Path, summary: dict[str, Any], config: dict[str, Any], records: Sequence[SessionRecord],
                 det: dict[str, Any]) -> None:
    """summary.json, config.json, sessions.jsonl, det.json, det.png and table.txt into ``out_dir``.

    ``summary`` gains a ``files`` entry naming them.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / name for name in ("summary.json", "config.json", "sessions.jsonl", "det.json",
                                               "det.png", "table.txt")}
    files["config.json"].write_text(json.dumps(config, indent=2) + "\n")
    files["det.json"].write_text(json.dumps(det) + "\n")
    with files["sessions.jsonl"].open("w") as fh:
        for r in records:
            fh.write(json.dumps(r.to_dict()) + "\n")
    plot_det(det, summary, files["det.png"])
    summary["files"] = {name: str(path) for name, path in files.items()}
    files["summary.json"].write_text(json.dumps(summary, indent=2) + "\n")
    files["table.txt"].write_text(table(summary) + "\n")
    log.info("report written to %s", out_dir)
