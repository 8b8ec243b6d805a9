"""The report folder: ``result.json``, ``report.md``, ``config.json`` and the PNG plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .errors import BenchError
from .plots import plot_latency, plot_peer_ratios
from .report import markdown

log = logging.getLogger(__name__)


def write_report(result: dict[str, Any], out: Path) -> dict[str, str]:
    """Write the report files into ``out`` (created); returns name -> path of what was written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create the report folder {out}: {exc}") from exc
    written = {
        "result": out / "result.json",
        "markdown": out / "report.md",
        "config": out / "config.json",
    }
    written["result"].write_text(json.dumps(result, indent=2) + "\n")
    written["markdown"].write_text(markdown(result) + "\n")
    written["config"].write_text(json.dumps(result["config"], indent=2) + "\n")
    try:
        written["latency_png"] = plot_latency(result, out / "latency.png")
        peers_png = plot_peer_ratios(result, out / "peer_ratios.png")
    except ImportError as exc:  # an edge-only board: the tables are the report
        log.warning("no PNG plots (%s): pip install matplotlib to draw them", exc)
    else:
        if peers_png is not None:
            written["peer_ratios_png"] = peers_png
    log.info("report written to %s", out)
    return {k: str(v) for k, v in written.items()}
