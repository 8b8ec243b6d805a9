"""Peer rows: parameters, FLOPs and onnxruntime latency of each peer, fp32 and int8, at each thread count.

The peers run through onnxruntime with the same session options and threads
as our files (:func:`facelivenet.benchmarks.jobs.onnx_chain_session`). int8
needs real calibration faces (``--data``); without them only fp32 is timed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from . import PEERS, Peer, PeerNet
from .onnx_files import fp32_file, int8_file

log = logging.getLogger(__name__)

JobRunner = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Calibration:
    """Real aligned faces at one input size: the calibration FaceSet and its NCHW float32 tensor."""

    faces: Any
    tensor: Any


def net_facts(net: PeerNet) -> dict[str, Any]:
    """Parameters and FLOPs per forward pass (training.flops: 2 x MACs) of one network."""
    from facelivenet.training.flops import count_flops
    from facelivenet.training.model import count_parameters

    model = net.build()
    return {"params": count_parameters(model), "flops": count_flops(model, net.input_size)}


def peer_files(peer: Peer, precision: str, cache: Path, seed: int,
               calib: dict[int, Calibration]) -> list[Path]:
    """The ONNX files of a peer's networks at ``precision`` (exported/quantised once, cached)."""
    files = []
    for net in peer.nets:
        fp32 = fp32_file(net, cache, seed)
        if precision == "fp32":
            files.append(fp32)
        else:
            c = calib[net.input_size]
            files.append(int8_file(net, fp32, c.faces, c.tensor))
    return files


def peer_rows(threads: Sequence[int], runs: int, warmup: int, cache: Path, seed: int,
              calib: dict[int, Calibration] | None, input_for: Callable[[int], str], run: JobRunner,
              reference: dict[str, Any] | None = None, precisions: Sequence[str] | None = None,
              peers: Sequence[Peer] = PEERS) -> list[dict[str, Any]]:
    """One row per peer x precision x thread count (default fp32 and, with calibration faces, int8).

    ``reference`` (our int8 file: format, path, input) is timed in alternation with each peer.
    """
    if precisions is None:
        precisions = ("fp32", "int8") if calib else ("fp32",)
    if "int8" in precisions and not calib:
        raise ValueError("int8 peers need calibration faces")
    rows = []
    for peer in peers:
        facts = [net_facts(net) for net in peer.nets]
        base = {"name": peer.name, "params": sum(f["params"] for f in facts), "flops": sum(f["flops"] for f in facts),
                "paper_params": sum(n.paper_params for n in peer.nets), "input_size": peer.nets[0].input_size,
                "networks": [{"name": n.name, "reference": n.reference, **f} for n, f in zip(peer.nets, facts)],
                "note": peer.note, "format": "onnx"}
        for precision in precisions:
            files = peer_files(peer, precision, cache, seed, calib or {})
            for t in threads:
                result = run({"kind": "onnx_chain", "paths": [str(p) for p in files], "threads": t, "runs": runs,
                              "warmup": warmup, "inputs": [input_for(n.input_size) for n in peer.nets],
                              "reference": reference})
                rows.append({**base, "precision": precision, "threads": t,
                             "size_bytes": sum(p.stat().st_size for p in files), **result})
                log.info("peer %s %s x%d: median %.2f ms", peer.name, precision, t, result["latency_ms"]["median"])
    return rows
