"""Operating points of the session rules: the suite at several calibration rates, one table and one plot.

Each rate is a false-accept rate the rules are calibrated at (leave-one-subject-out on the
other subjects' stills): ``target_far`` for the identity aggregate, ``continuity_far`` for
the frame-to-frame continuity. Lower rates stop more swaps and impostors and reject more
genuine users; where that trade-off lands depends on the embedding. The points share one
enrollment and one cache of detections and forward passes (:func:`suite.prepare_suite`),
so each costs only the sessions that differ. Every point's own report folder is kept.

A rate finer than one impostor pair cannot be resolved: with about 220 impostor still pairs
per held-out subject, every aggregate rate below about 0.0045 gives the same threshold (just
above the other subjects' highest impostor score). The table shows each point's threshold
ranges, so such points are seen to be one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from facelivenet.edge_runtime.face_pipeline import FacePipeline

from .suite import SuiteConfig, prepare_suite, run_suite

log = logging.getLogger(__name__)

# The attack types of the table, in column order (those a run has).
FRONTIER_TYPES = ("swap", "impostor", "replay", "photo", "expression_photo", "two_faces", "track_jump")


def point_name(target_far: float, continuity_far: float) -> str:
    """The report sub-folder of one operating point."""
    return f"far{target_far:g}_cont{continuity_far:g}"


def frontier_points(cfg: SuiteConfig, target_fars: Sequence[float],
                    continuity_fars: Sequence[float]) -> list[SuiteConfig]:
    """One suite config per (target FAR, continuity FAR); ValueError names a bad rate before anything runs."""
    if not target_fars or not continuity_fars:
        raise ValueError("a frontier needs at least one target FAR and one continuity FAR")
    return [dataclasses.replace(cfg, target_far=f, continuity_far=c) for f in target_fars for c in continuity_fars]


def run_frontier(points: Sequence[SuiteConfig], pipeline: FacePipeline, out_dir: Path,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The suite at every point of :func:`frontier_points`; frontier.json, frontier.md, frontier.png in ``out_dir``."""
    cfg = points[0]
    prepared = prepare_suite(cfg, pipeline)
    rows = []
    for i, point in enumerate(points, 1):
        log.info("operating point %d/%d: aggregate FAR %g, continuity FAR %g", i, len(points), point.target_far,
                 point.continuity_far)
        summary = run_suite(point, pipeline, out_dir / point_name(point.target_far, point.continuity_far), progress,
                            prepared)
        rows.append({"target_far": point.target_far, "continuity_far": point.continuity_far,
                     "bpcer": summary["bpcer"], "apcer": summary["apcer"], "bpcer_target": summary["bpcer_target"],
                     "meets_target": summary["meets_target"], "report": summary["report"],
                     "threshold_ranges": {k: summary["thresholds"]["ranges"][k] for k in ("aggregate", "continuity")}})
    out = {"sessions_per_type": cfg.sessions_per_type, "seed": cfg.seed, "identity": cfg.identity,
           "session_model": cfg.session_model, "floor_far": cfg.floor_far, "rest_rate": cfg.rest_rate,
           "points": rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"frontier.json": out_dir / "frontier.json", "frontier.md": out_dir / "frontier.md",
             "frontier.png": out_dir / "frontier.png"}
    files["frontier.md"].write_text(frontier_table(out) + "\n")
    plot_frontier(out, files["frontier.png"])
    out["files"] = {k: str(v) for k, v in files.items()}
    files["frontier.json"].write_text(json.dumps(out, indent=2) + "\n")
    return out


def frontier_table(frontier: dict[str, Any]) -> str:
    """A Markdown table: one row per operating point, BPCER and every attack's APCER."""
    types = [t for t in FRONTIER_TYPES if t in frontier["points"][0]["apcer"]]
    head = ["aggregate FAR", "continuity FAR", "aggregate thresholds", "continuity thresholds", "BPCER", *types,
            "every target"]
    lines = [f"operating points: {frontier['sessions_per_type']} sessions per type, seed {frontier['seed']}, "
             f"identity {frontier['identity']}, session model {frontier['session_model']}; floor FAR "
             f"{frontier['floor_far']:g}, rest rate {frontier['rest_rate']:g}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in frontier["points"]:
        ranges = [f"{r['threshold_ranges'][k]['min']:.4f}-{r['threshold_ranges'][k]['max']:.4f}"
                  for k in ("aggregate", "continuity")]
        cells = [f"{r['target_far']:g}", f"{r['continuity_far']:g}", *ranges, f"{r['bpcer']:.3f}",
                 *(f"{r['apcer'][t]:.3f}" for t in types), "yes" if all(r["meets_target"].values()) else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_frontier(frontier: dict[str, Any], path: Path) -> None:
    """BPCER against the worse of swap and impostor APCER, one labelled point per operating point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    at: dict[tuple[float, float], list[str]] = {}  # points that land on one spot share one label
    for r in frontier["points"]:
        worst = max(r["apcer"].get("swap", 0.0), r["apcer"].get("impostor", 0.0))
        at.setdefault((worst, r["bpcer"]), []).append(f"{r['target_far']:g} / {r['continuity_far']:g}")
    for (worst, bpcer), labels in at.items():
        ax.scatter(worst, bpcer, color="tab:blue")
        ax.annotate("\n".join(labels), (worst, bpcer), fontsize=6, xytext=(4, 2), textcoords="offset points",
                    va="center")
    target = frontier["points"][0]["bpcer_target"]
    ax.axhline(target, color="tab:red", linestyle="--", linewidth=1, label=f"BPCER target {target:g}")
    ax.axvline(0.01, color="tab:orange", linestyle=":", linewidth=1, label="impostor target 0.01 (swap: 0)")
    ax.set_xlabel("max(swap APCER, impostor APCER)")
    ax.set_ylabel("BPCER")
    ax.set_title(f"session rules' operating points (aggregate FAR / continuity FAR)\n"
                 f"identity: {frontier['identity']}, seed {frontier['seed']}, "
                 f"{frontier['sessions_per_type']} sessions per type", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
