"""Benchmark errors: one line naming the problem and the fix."""

from __future__ import annotations

from facelivenet.edge_runtime.errors import FaceLiveError


class BenchError(FaceLiveError):
    """Bad benchmark input (bundle, data folder, thread list...) or a failed measurement."""
