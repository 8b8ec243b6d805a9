"""Parity gates: an exported file against the torch model, on the same real aligned faces.

Per file: embedding cosine (mean, min) and expression top-1 agreement over the
held-out faces. The gates per precision are the runtime's table,
:data:`facelivenet.edge_runtime.constants.PARITY_GATES` (:data:`GATES` here);
the int8 ONNX and TFLite files also have a size gate (:func:`max_int8_bytes`).

Top-1 agreement is reported over every face AND over the *decisive* faces, those
whose torch top-2 expression logit margin is at least :data:`DECISIVE_MARGIN`;
the gate applies to the decisive faces (ARCHITECTURE.md, "Metrics": a
disagreement on a near tie is not what a user loses; what they lose is measured
by the task deltas, :mod:`.task_gates`). The near-tie disagreements are counted.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from facelivenet.edge_runtime.constants import PARITY_GATES, ParityGate

# Torch top-2 expression logit margin from which a face counts as decisive (p1 / p2 >= e^0.2 = 1.22).
DECISIVE_MARGIN = 0.2


# The size gate: int8 ONNX and TFLite files at most 1.6 MB (decimal) at the paper's 1.31 M parameters,
# scaled with the model's parameter count (1.22 bytes per parameter: an int8 byte per weight plus scales,
# int32 biases and the graph) and never below 1.6 MB: the rb_c2 model (own Reduction-B in Branch 2,
# 1,452,407 parameters) gets 1.77 MB.
MAX_INT8_BYTES = 1_600_000
PAPER_PARAMETERS = 1_310_000
SIZE_GATED = (("onnx", "int8"), ("tflite", "int8"))


def max_int8_bytes(parameters: int) -> int:
    """The size gate for int8 files of a model with ``parameters`` parameters (see :data:`MAX_INT8_BYTES`)."""
    return max(MAX_INT8_BYTES, round(MAX_INT8_BYTES * parameters / PAPER_PARAMETERS))


# The parity gates live in edge_runtime.constants (one table for the export, the benchmarks and the CI).
Gate = ParityGate
GATES: dict[str, ParityGate] = PARITY_GATES


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-12)


def measure(ref_emb: np.ndarray, ref_logits: np.ndarray, emb: np.ndarray, logits: np.ndarray) -> dict[str, float | int]:
    """The parity numbers of one file (all plain floats, JSON-ready)."""
    if emb.shape != ref_emb.shape or logits.shape != ref_logits.shape:
        raise ValueError(f"output shapes {emb.shape}, {logits.shape} differ from the torch model's "
                         f"{ref_emb.shape}, {ref_logits.shape}")
    cos = cosine_rows(ref_emb, emb)
    agree = np.argmax(ref_logits, axis=1) == np.argmax(logits, axis=1)
    decisive = top2_margin(ref_logits) >= DECISIVE_MARGIN
    return {
        "faces": int(len(cos)),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "cosine_p01": float(np.quantile(cos, 0.01)),
        "expression_top1_agreement": float(agree.mean()),
        "decisive_margin": DECISIVE_MARGIN,
        "decisive_faces": int(decisive.sum()),
        "expression_top1_agreement_decisive": float(agree[decisive].mean()) if decisive.any() else 1.0,
        "near_tie_disagreements": int((~agree & ~decisive).sum()),
        "expression_logits_max_abs_diff": float(np.abs(ref_logits - logits).max()),
        "expression_logits_rmse": float(np.sqrt(np.mean((np.asarray(ref_logits, np.float64) - logits) ** 2))),
        "embedding_norm_max_dev": float(np.abs(np.linalg.norm(emb, axis=1) - 1.0).max()),
    }


def top2_margin(logits: np.ndarray) -> np.ndarray:
    """Per face: the gap between the two largest expression logits."""
    top2 = np.sort(np.asarray(logits, np.float64), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def summary(ref_emb: np.ndarray, ref_logits: np.ndarray, emb: np.ndarray, logits: np.ndarray) -> dict[str, float | int]:
    """The gated numbers only (faces, cosine mean/min, top-1 agreement), e.g. per part of the parity set."""
    full = measure(ref_emb, ref_logits, emb, logits)
    return {k: full[k] for k in ("faces", "cosine_mean", "cosine_min", "expression_top1_agreement",
                                 "expression_top1_agreement_decisive")}


def check(precision: str, metrics: dict) -> list[str]:
    """The failed conditions (empty when the gate passes), each with the measured number."""
    gate = GATES[precision]
    fails = []
    if metrics["cosine_mean"] < gate.cosine_mean:
        fails.append(f"cosine mean {metrics['cosine_mean']:.6f} < {gate.cosine_mean}")
    if gate.cosine_min is not None and metrics["cosine_min"] < gate.cosine_min:
        fails.append(f"cosine min {metrics['cosine_min']:.6f} < {gate.cosine_min}")
    # the agreement on decisive faces when measured (older records: over every face)
    agree = metrics.get("expression_top1_agreement_decisive", metrics["expression_top1_agreement"])
    if gate.top1_agreement is not None and agree < gate.top1_agreement:
        margin = metrics.get("decisive_margin")
        where = f" on faces with top-2 margin >= {margin}" if "expression_top1_agreement_decisive" in metrics else ""
        fails.append(f"expression top-1 agreement{where} {agree:.4f} < {gate.top1_agreement}")
    return fails


def gate_dict(precision: str) -> dict:
    return {k: v for k, v in asdict(GATES[precision]).items() if v is not None}


def gated(precision: str | None, ref_emb: np.ndarray, ref_logits: np.ndarray, emb: np.ndarray,
          logits: np.ndarray) -> dict:
    """:func:`measure`, plus ``gate``, ``failures`` and ``passed`` when ``precision`` has a gate."""
    out: dict = measure(ref_emb, ref_logits, emb, logits)
    if precision in GATES:
        failures = check(precision, out)
        out.update(gate=gate_dict(precision), passed=not failures, failures=failures)
    return out
