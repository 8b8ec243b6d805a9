"""Which layers' int8 weights cost the expression logits most, and which of them to keep in fp16.

Per quantised layer, its GPTQ-rounded weight alone replaces the float weight
and the expression logits are compared with the float model's on calibration
faces (never the parity faces): the mean squared logit error that layer alone
adds. One-shot GPTQ (:mod:`.gptq`) rounds every layer from the float model's
input statistics, so keeping a layer in float leaves the others' rounding
unchanged; on the first default model the per-block errors added up to the
all-layers error within about 10 %.

Expression top-1 agreement is what int8 weights cost this model (the identity
embedding keeps cosine > 0.9999): the scan looks at the expression logits only.
Layers not on the expression path (Branch 1, the embedding head) add nothing.

The network is run from the trunk stage that holds the layer, on cached float
activations: the scan costs about one forward pass per stem layer and much less
for the rest. It needs FaceLiveNet's stage structure; another model is scanned
with full forward passes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

SCAN_FACES = 128
BATCH = 64
# Share of the quantised weights that may stay in fp16 (+1 byte each over int8): on the
# default model 8 % is ~0.1 MB, which keeps both int8 files under the 1.6 MB limit.
FP16_WEIGHT_FRACTION = 0.08
TRUNK_STAGES = ("stem", "blocks_a", "reduction_a", "blocks_b", "reduction_b")


def quantised_layers(net: Any) -> list[tuple[str, Any]]:
    """(name, module) of every Conv2d / Linear, in definition order."""
    from torch import nn

    return [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _staged(net: Any) -> list[tuple[str, Any]] | None:
    """FaceLiveNet's trunk stages in order, or None for another architecture."""
    if not all(hasattr(net, s) for s in TRUNK_STAGES) or not hasattr(net, "features_from_trunk_expression"):
        return None
    return [(s, getattr(net, s)) for s in TRUNK_STAGES if getattr(net, s) is not None]


def expression_errors(net: Any, rounded: Any, calib_nchw: np.ndarray, faces: int = SCAN_FACES) -> dict[str, float]:
    """Layer name -> mean squared expression-logit error when only that layer has its rounded weight."""
    import torch

    pick = np.unique(np.linspace(0, len(calib_nchw) - 1, min(faces, len(calib_nchw))).round().astype(int))
    x = torch.from_numpy(np.ascontiguousarray(calib_nchw[pick], dtype=np.float32))
    stages = _staged(net)
    rounded_weights = dict(quantised_layers(rounded))
    errors: dict[str, float] = {}
    with torch.no_grad():
        if stages is None:
            def run_from(_: int) -> Any:
                return torch.cat([net(x[i:i + BATCH])[1] for i in range(0, len(x), BATCH)])
            start_of = dict.fromkeys((n for n, _ in quantised_layers(net)), 0)
        else:
            acts = [x]
            for _, stage in stages:
                acts.append(torch.cat([stage(acts[-1][i:i + BATCH]) for i in range(0, len(x), BATCH)]))

            def run_from(k: int) -> Any:
                out = []
                for i in range(0, len(x), BATCH):
                    t = acts[k][i:i + BATCH]
                    for _, stage in stages[k:]:
                        t = stage(t)
                    out.append(net.features_from_trunk_expression(t))
                return torch.cat(out)

            index = {s: k for k, (s, _) in enumerate(stages)}
            expression_path = ("expression_branch", "expression_head")
            start_of = {}
            for name, _ in quantised_layers(net):
                top = name.split(".")[0]
                if top in index:
                    start_of[name] = index[top]
                elif top in expression_path:
                    start_of[name] = len(stages)
        reference = run_from(0)
        for name, module in quantised_layers(net):
            if name not in start_of:
                errors[name] = 0.0  # not on the expression path
                continue
            original = module.weight.detach().clone()
            module.weight.copy_(rounded_weights[name].weight)
            try:
                errors[name] = float(((run_from(start_of[name]) - reference) ** 2).mean())
            finally:
                module.weight.copy_(original)
    return errors


def pick_fp16_layers(errors: dict[str, float], sizes: dict[str, int], budget: int) -> list[str]:
    """Greedy knapsack: the layers with the most logit error per weight, within ``budget`` weights."""
    chosen, used = [], 0
    for name in sorted(errors, key=lambda n: errors[n] / max(sizes[n], 1), reverse=True):
        if errors[name] <= 0:
            break
        if used + sizes[name] <= budget:
            chosen.append(name)
            used += sizes[name]
    return chosen


def scan(net: Any, rounded: Any, calib_nchw: np.ndarray,
         fraction: float = FP16_WEIGHT_FRACTION) -> tuple[list[str], dict[str, Any]]:
    """(layers to keep in fp16, the manifest record of the scan)."""
    start = time.perf_counter()
    errors = expression_errors(net, rounded, calib_nchw)
    sizes = {n: int(m.weight.numel()) for n, m in quantised_layers(net)}
    budget = int(fraction * sum(sizes.values()))
    chosen = pick_fp16_layers(errors, sizes, budget)
    total = sum(errors.values())
    kept = sum(errors[n] for n in chosen)
    top = sorted(errors, key=errors.get, reverse=True)[:12]
    log.info("sensitivity scan: %d layers in %.1f s; fp16: %s", len(errors), time.perf_counter() - start, chosen)
    return chosen, {
        "method": ("per layer: only that layer's int8 (GPTQ) weights, expression-logit MSE vs the float model "
                   f"on {min(SCAN_FACES, len(calib_nchw))} calibration faces"),
        "fp16_budget_weights": budget,
        "fp16_layers": chosen,
        "fp16_weights": sum(sizes[n] for n in chosen),
        "logit_mse_all_layers_sum": total,
        "logit_mse_share_removed": (kept / total) if total > 0 else 0.0,
        "top_layers_logit_mse": {n: errors[n] for n in top},
    }


def export_path(net: Any, name: str) -> str:
    """The module path (inside ExportModel) that names the converted op of layer ``name``.

    A convolution followed by its BatchNorm in one Sequential (ConvBNReLU) is folded into
    one op that the converters attribute to the Sequential: its path is used instead.
    """
    from torch import nn

    parts = name.split(".")
    if parts[-1] == "0" and len(parts) > 1:
        parent = net.get_submodule(".".join(parts[:-1]))
        if isinstance(parent, nn.Sequential) and len(parent) > 1 and isinstance(
                parent[1], (nn.BatchNorm1d, nn.BatchNorm2d)):
            name = ".".join(parts[:-1])
    return f"net.{name}"


def export_paths(net: Any, names: Sequence[str]) -> list[str]:
    """:func:`export_path` of each layer."""
    return [export_path(net, n) for n in names]
