"""The torch module every converter sees: one forward pass, two named outputs.

:class:`ExportModel` wraps a FaceLiveNet so that

- the outputs are ``embedding`` (L2-normalised) and ``expression_logits``
  (softmax is left to the runtime: ``expression_softmax_inside = False``);
- the L2 normalisation sits in its own submodule, ``l2norm``, so the int8
  quantisers can find it by name and keep it in float (ARCHITECTURE.md,
  "Toolchain notes");
- the input may be NHWC (``layout="NHWC"``), the natural layout of a phone's
  camera buffer; the transpose is part of the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

INPUT_NAME = "input"
OUTPUT_NAMES = ("embedding", "expression_logits")

# Module path (inside ExportModel) of the L2 normalisation, which int8 files always keep float.
FLOAT_TAIL = ("l2norm",)
# Static int8 files also keep the identity embedding's last two tensors in float: the
# pooled features and the bottleneck (its BatchNorm folds into the Gemm, which then
# carries the BatchNorm's scope); why and what it costs: export/static_int8.py.
IDENTITY_TAIL = ("net.identity_branch.pool", "net.bottleneck", "net.bottleneck_bn")
STATIC_FLOAT = IDENTITY_TAIL + FLOAT_TAIL


@dataclass(frozen=True)
class Int8Level:
    """One way to build an int8 file: which activations are int8 and which modules stay float.

    ``activations="int8"``: static int8 activations (int8 compute) except in
    ``float_modules``; ``"float"``: int8 weights only, every activation float32
    (float compute on the dequantised weights). ``fp16_sensitive``: the weights
    of the layers that cost the expression logits most (a per-layer scan on the
    calibration faces, :mod:`.sensitivity`) are stored in fp16 instead of int8.
    """

    name: str
    activations: str
    float_modules: tuple[str, ...]
    fp16_sensitive: bool = False


# The weight-only int8 file (the fallback beside the static one, :mod:`.static_int8`):
# what the export tries, in order, until the gates pass. The int8 weights are
# GPTQ-rounded (:mod:`.gptq`); the L2 normalisation is always float
# (ARCHITECTURE.md, "Toolchain notes"). Measured on the two default models so far
# (500 held-out LFW + FER2013 faces): float activations with GPTQ int8 weights:
# 98.6 % and 99.8 % top-1 agreement; plus the scan's fp16 layers (61 % of the
# per-layer logit MSE): 99.8 %. Static int8 activations cost ~0.09-0.12 expression-logit RMSE, spread
# over the whole shared stem (``python -m facelivenet.export.int8_scan``).
INT8_LEVELS: tuple[Int8Level, ...] = (
    Int8Level("int8 weights, float activations", "float", FLOAT_TAIL),
    Int8Level("int8 weights, float activations, expression-sensitive layers in fp16", "float", FLOAT_TAIL,
              fp16_sensitive=True),
)


class L2Normalize(nn.Module):
    """``F.normalize(x, dim=1)``, as the model's own forward computes it."""

    def __init__(self, eps: float = 1e-12):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1, eps=self.eps)


class ExportModel(nn.Module):
    """FaceLiveNet with named outputs, a separate normalisation tail and an optional NHWC input."""

    def __init__(self, net: nn.Module, layout: str = "NCHW", as_dict: bool = False):
        super().__init__()
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
        self.net = net.eval()
        self.l2norm = L2Normalize()
        self.layout = layout
        self.as_dict = as_dict
        self.eval()

    def forward(self, input: torch.Tensor):  # noqa: A002 - the name litert-torch gives the signature input
        x = input
        if self.layout == "NHWC":
            x = x.permute(0, 3, 1, 2)
        out = self.net.features(x)
        embedding = self.l2norm(out.prelogits)
        if self.as_dict:  # litert-torch names the signature outputs after the keys
            return {OUTPUT_NAMES[0]: embedding, OUTPUT_NAMES[1]: out.expression_logits}
        return embedding, out.expression_logits


def sample_input(input_size: int, layout: str = "NCHW", batch: int = 1) -> torch.Tensor:
    """A placeholder tensor for tracing (never used to measure anything)."""
    shape = (batch, 3, input_size, input_size) if layout == "NCHW" else (batch, input_size, input_size, 3)
    return torch.zeros(shape, dtype=torch.float32)


@torch.no_grad()
def torch_reference(net: nn.Module, batch_nchw, batch_size: int = 64):
    """The torch model's (embedding, expression_logits) on a float32 NCHW numpy batch."""
    import numpy as np

    net = net.eval()
    embs, logits = [], []
    for i in range(0, len(batch_nchw), batch_size):
        e, l = net(torch.from_numpy(np.ascontiguousarray(batch_nchw[i:i + batch_size])))
        embs.append(e.numpy())
        logits.append(l.numpy())
    return np.concatenate(embs), np.concatenate(logits)
