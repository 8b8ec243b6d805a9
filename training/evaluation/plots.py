"""PNG figures for evaluation reports: ROC curves and row-normalised confusion matrices.

matplotlib is imported inside the functions (Agg backend), so importing this
module costs nothing and needs no display.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from facelivenet.edge_runtime.metrics import normalize_rows

log = logging.getLogger(__name__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    log.info("wrote %s", out)
    return out


def plot_roc(
    fpr: Sequence[float] | np.ndarray,
    tpr: Sequence[float] | np.ndarray,
    path: str | Path,
    title: str = "ROC",
    log_fpr: bool = False,
) -> Path:
    """ROC curve (TAR vs FAR) to a PNG; ``log_fpr`` puts FAR on a log axis (zero-FAR points dropped)."""
    plt = _pyplot()
    x, y = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"fpr and tpr must be equal, non-empty arrays; got {x.shape} and {y.shape}")
    fig, ax = plt.subplots(figsize=(5, 5))
    try:
        if log_fpr:
            keep = x > 0
            ax.semilogx(x[keep], y[keep], lw=2)
        else:
            ax.plot(x, y, lw=2)
            ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey")
            ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false accept rate (FAR)")
        ax.set_ylabel("true accept rate (TAR)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_confusion(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str = "Confusion matrix",
) -> Path:
    """Confusion matrix normalised per row (true class), percentages in the cells, to a PNG."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=np.float64)
    n = len(labels)
    if counts.shape != (n, n):
        raise ValueError(f"matrix must be {n}x{n} for {n} labels; got {counts.shape}")
    rates = normalize_rows(counts) * 100.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * n, 0.8 + 0.9 * n))
    try:
        ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=100.0)
        for i in range(n):
            for j in range(n):
                colour = "white" if rates[i, j] > 50.0 else "black"
                ax.text(j, i, f"{rates[i, j]:.1f}", ha="center", va="center", color=colour, fontsize=9)
        ax.set_xticks(range(n), labels=list(labels), rotation=45, ha="right")
        ax.set_yticks(range(n), labels=list(labels))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} (% per true class)")
        return _save(fig, path)
    finally:
        plt.close(fig)
