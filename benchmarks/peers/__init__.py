"""Peer networks from their papers, for latency comparisons (random weights: latency does not need trained ones).

:data:`PEERS` lists what ``facelive-bench`` compares our fused model with; each
peer is one or more networks run one after the other on the same face crop.

- ``mobilefacenet``: MobileFaceNet (Chen et al. 2018), 112 px, 128-d, ~0.99 M parameters.
- ``mobilefacenet_relu``: the same with ReLU in place of the paper's PReLU, a
  what-if row: onnxruntime fuses ReLU into the convolution but runs PReLU as
  a separate pass (about 40 % of MobileFaceNet's fp32 time on this CPU).
- ``facenet_irv1``: FaceNet's Inception-ResNet-v1 (Szegedy et al. 2016,
  Schroff et al. 2015), 160 px, 128-d, ~23 M parameters.
- ``two_model_pipeline``: what a system without FaceLiveNet's fusion runs per
  frame for identity + expression liveness: a verification network AND a
  separate expression network on the same crop, one after the other. Our
  choice: MobileFaceNet (verification) + a MobileFaceNet-sized 7-way
  expression CNN (the same architecture with a 7-way linear classifier in
  place of the 128-d embedding layer; 0.94 M parameters). That is the cheapest
  credible pair (a mobile verification network and an expression network of
  the same size), so the ratio against it is a conservative one.

dlib's ResNet face recogniser (a trained network) is measured separately in
:mod:`.dlib_resnet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class PeerNet:
    """One network: how to build it, its input and output, and the parameter count its paper states."""

    name: str
    module: str  # the module of this package that defines it (its source is part of the cache key)
    input_size: int
    output: str  # "embedding" or "expression_logits"
    paper_params: float
    reference: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def build(self) -> Any:
        """A fresh torch module in eval mode (random weights from the current torch seed)."""
        import importlib

        mod = importlib.import_module(f"{__name__}.{self.module}")
        factory: Callable[..., Any] = getattr(mod, mod.MODEL)
        return factory(**dict(self.kwargs)).eval()


@dataclass(frozen=True)
class Peer:
    """A peer system: its networks run one after the other on the same face crop."""

    name: str
    nets: tuple[PeerNet, ...]
    note: str


MOBILEFACENET = PeerNet("mobilefacenet", "mobilefacenet", 112, "embedding", 0.99e6,
                        "Chen et al. 2018, MobileFaceNets, Table 1 (0.99 M parameters, 221 M MAdds)")
MOBILEFACENET_RELU = PeerNet("mobilefacenet_relu", "mobilefacenet", 112, "embedding", 0.99e6,
                             "MobileFaceNet (Chen et al. 2018) with ReLU in place of PReLU (what-if variant)",
                             (("activation", "relu"),))
EXPRESSION_CNN = PeerNet("expression_cnn", "mobilefacenet", 112, "expression_logits", 0.99e6,
                         "MobileFaceNet body (Chen et al. 2018) with a 7-way linear classifier",
                         (("num_classes", 7),))
FACENET_IRV1 = PeerNet("facenet_irv1", "inception_resnet_v1", 160, "embedding", 23e6,
                       "Szegedy et al. 2016 (Inception-ResNet-v1) + Schroff et al. 2015 (FaceNet), ~23 M parameters")

PEERS: tuple[Peer, ...] = (
    Peer("mobilefacenet", (MOBILEFACENET,), "verification only, 112 px"),
    Peer("mobilefacenet_relu", (MOBILEFACENET_RELU,), "verification only, 112 px; ReLU instead of the paper's "
         "PReLU (what-if: not the paper's network, not a target)"),
    Peer("facenet_irv1", (FACENET_IRV1,), "verification only, 160 px"),
    Peer("two_model_pipeline", (MOBILEFACENET, EXPRESSION_CNN),
         "MobileFaceNet verification + a separate MobileFaceNet-sized 7-way expression CNN, run one after the "
         "other on the same 112 px crop (what a system without fused branches runs per frame)"),
)
