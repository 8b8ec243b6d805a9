"""PNG figures of a benchmark result: latency per row (median bar, p95 whisker) and peer ratio bars."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from facelivenet.training.evaluation.plots import _pyplot, _save

from .int8_forms import row_form

log = logging.getLogger(__name__)


def plot_latency(result: dict[str, Any], path: str | Path) -> Path:
    """One bar per row (format/form/threads) at the median, with a whisker up to p95."""
    plt = _pyplot()
    rows = result["rows"]
    labels = [f"{r['format']} {row_form(r)}\n{r['threads']} thr" for r in rows]
    med = [r["latency_ms"]["median"] for r in rows]
    p95 = [r["latency_ms"]["p95"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows)), 4.0))
    ax.bar(range(len(rows)), med, yerr=[[0] * len(rows), [max(0.0, b - a) for a, b in zip(med, p95)]],
           capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("latency per face, ms (bar: median, whisker: p95)")
    ax.set_title(f"FaceLiveNet latency, batch 1{' (quick)' if result.get('quick') else ''}")
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_peer_ratios(result: dict[str, Any], path: str | Path) -> Path | None:
    """Our int8 median / each peer's median (lines at the 1.0 and 0.5 targets); None without ratios."""
    peers = [p for p in result.get("peers", []) if p.get("ratio_vs_ours") is not None]
    if not peers:
        return None
    plt = _pyplot()
    labels = [f"{p['name']}\n{p['precision']} {p['threads']} thr" for p in peers]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(peers)), 4.0))
    ax.bar(range(len(peers)), [p["ratio_vs_ours"] for p in peers], color="#55a868")
    for level, text in ((1.0, "target vs MobileFaceNet int8: 1.0"), (0.5, "target vs two-model pipeline: 0.5")):
        ax.axhline(level, color="#c44e52", linestyle="--", linewidth=1)
        ax.text(len(peers) - 0.5, level, text, ha="right", va="bottom", fontsize=7, color="#c44e52")
    ax.set_xticks(range(len(peers)), labels, fontsize=7)
    ax.set_ylabel("our int8 latency / peer latency")
    ax.set_title("Our fused int8 model vs peers (lower is faster for us)")
    out = _save(fig, path)
    plt.close(fig)
    return out
