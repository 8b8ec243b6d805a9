"""What the running process costs and where it runs: RSS, peak RSS, threads, CPU model (Linux /proc first)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

from facelivenet.edge_runtime.cpu_features import cpu_model  # noqa: F401 - the benchmarks' name for it


def _status_field(name: str) -> int | None:
    """An integer field of /proc/self/status (kB for memory fields); None where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb() -> float | None:
    """Current resident set size of this process in MiB (None where unknown)."""
    kb = _status_field("VmRSS")
    return None if kb is None else kb / 1024.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (VmHWM, else getrusage)."""
    kb = _status_field("VmHWM")
    if kb is not None:
        return kb / 1024.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0  # macOS: bytes; Linux: kB


def thread_count() -> int | None:
    """OS threads of this process right now (None where /proc is absent)."""
    return _status_field("Threads")


