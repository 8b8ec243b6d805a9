"""FaceLiveNet: a shared Inception-ResNet stem, an identity branch and an expression branch.

One forward pass on one aligned face returns the L2-normalised identity
embedding (Branch 1) and the expression logits (Branch 2). Branch 2 repeats the
block structure of Branch 1's tail, so it can be initialised from it (the
paper's Algorithm 1, Stage 2).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, relu: bool = True):
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        padding = (k[0] // 2, k[1] // 2)
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, padding, bias=False), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Residual(nn.Module):
    """Parallel branches, concatenated, projected by a linear 1x1 and added, scaled, to the input."""

    def __init__(self, channels: int, branches: list[nn.Module], concat_channels: int, scale: float):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.project = nn.Conv2d(concat_channels, channels, 1, bias=True)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([b(x) for b in self.branches], dim=1)
        return F.relu(x + self.scale * self.project(mixed))


class BlockA(_Residual):
    """Inception-ResNet-A: 1x1 | 1x1-3x3 | 1x1-3x3-3x3."""

    def __init__(self, channels: int, width: int, scale: float = 0.17):
        super().__init__(
            channels,
            [
                ConvBNReLU(channels, width, 1),
                nn.Sequential(ConvBNReLU(channels, width, 1), ConvBNReLU(width, width, 3)),
                nn.Sequential(ConvBNReLU(channels, width, 1), ConvBNReLU(width, width, 3), ConvBNReLU(width, width, 3)),
            ],
            3 * width,
            scale,
        )


class BlockB(_Residual):
    """Inception-ResNet-B: 1x1 | 1x1-1x7-7x1 (factorised 7x7)."""

    def __init__(self, channels: int, width: int, scale: float = 0.10):
        super().__init__(
            channels,
            [
                ConvBNReLU(channels, width, 1),
                nn.Sequential(ConvBNReLU(channels, width, 1), ConvBNReLU(width, width, (1, 7)), ConvBNReLU(width, width, (7, 1))),
            ],
            2 * width,
            scale,
        )


class BlockC(_Residual):
    """Inception-ResNet-C: 1x1 | 1x1-1x3-3x1 (factorised 3x3)."""

    def __init__(self, channels: int, width: int, scale: float = 0.20):
        super().__init__(
            channels,
            [
                ConvBNReLU(channels, width, 1),
                nn.Sequential(ConvBNReLU(channels, width, 1), ConvBNReLU(width, width, (1, 3)), ConvBNReLU(width, width, (3, 1))),
            ],
            2 * width,
            scale,
        )


class ReductionA(nn.Module):
    """Halves resolution: maxpool | 3x3/2 | 1x1-3x3-3x3/2, concatenated."""

    def __init__(self, cin: int, k: int, m: int, n: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, n, 3, stride=2)
        self.tower = nn.Sequential(ConvBNReLU(cin, k, 1), ConvBNReLU(k, m, 3), ConvBNReLU(m, n, 3, stride=2))
        self.out_channels = cin + 2 * n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.max_pool2d(x, 3, 2, 1), self.conv(x), self.tower(x)], dim=1)


class ReductionB(nn.Module):
    """Halves resolution: maxpool | 1x1-3x3/2 (x2) | 1x1-3x3-3x3/2, concatenated."""

    def __init__(self, cin: int, width: int):
        super().__init__()
        self.tower1 = nn.Sequential(ConvBNReLU(cin, width, 1), ConvBNReLU(width, width, 3, stride=2))
        self.tower2 = nn.Sequential(ConvBNReLU(cin, width, 1), ConvBNReLU(width, width, 3, stride=2))
        self.tower3 = nn.Sequential(ConvBNReLU(cin, width, 1), ConvBNReLU(width, width, 3), ConvBNReLU(width, width, 3, stride=2))
        self.out_channels = cin + 3 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.max_pool2d(x, 3, 2, 1), self.tower1(x), self.tower2(x), self.tower3(x)], dim=1)


class GlobalPool(nn.Module):
    """Global average pooling to a flat feature vector.

    A module of its own so that the int8 exporters can find the identity
    branch's pooled features by name and keep them in float
    (``export.static_int8``: their 8-bit rounding costs the embedding most).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class Branch(nn.Module):
    """A branch tail: optional Reduction-B, Inception-ResNet-C blocks, global pooling."""

    def __init__(self, reduction: ReductionB | None, cin: int, num_c_blocks: int, width: int):
        super().__init__()
        self.reduction = reduction
        channels = reduction.out_channels if reduction is not None else cin
        self.blocks = nn.Sequential(*[BlockC(channels, width) for _ in range(num_c_blocks)])
        self.out_channels = channels
        self.pool = GlobalPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reduction is not None:
            x = self.reduction(x)
        return self.pool(self.blocks(x))


@dataclass
class Outputs:
    """Everything a training step may need from one forward pass."""

    prelogits: torch.Tensor | None  # identity features before L2 normalisation
    embedding: torch.Tensor | None
    expression_logits: torch.Tensor | None


class FaceLiveNet(nn.Module):
    """The fused network. ``forward`` returns ``(embedding, expression_logits)`` (export contract)."""

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        s = cfg.stem_channels
        self.stem = nn.Sequential(
            ConvBNReLU(cfg.in_channels, s[0], 3, stride=2),
            ConvBNReLU(s[0], s[1], 3),
            nn.MaxPool2d(3, 2, 1),
            ConvBNReLU(s[1], s[2], 1),
            ConvBNReLU(s[2], s[3], 3),
            ConvBNReLU(s[3], cfg.a_channels, 3, stride=2),
        )
        self.blocks_a = nn.Sequential(*[BlockA(cfg.a_channels, cfg.a_width) for _ in range(cfg.num_a_blocks)])
        self.reduction_a = ReductionA(cfg.a_channels, *cfg.reduction_a)
        b_channels = self.reduction_a.out_channels
        self.blocks_b = nn.Sequential(*[BlockB(b_channels, cfg.b_width) for _ in range(cfg.num_b_blocks)])

        shared_reduction = cfg.expression_branch_split == "block_c"
        self.reduction_b = ReductionB(b_channels, cfg.reduction_b_width) if shared_reduction else None
        trunk_channels = self.reduction_b.out_channels if shared_reduction else b_channels

        def make_branch(num_blocks: int) -> Branch:
            reduction = None if shared_reduction else ReductionB(b_channels, cfg.reduction_b_width)
            return Branch(reduction, trunk_channels, num_blocks, cfg.c_width)

        self.identity_branch = make_branch(cfg.identity_c_blocks)
        self.expression_branch = make_branch(cfg.expression_c_blocks)
        feat = self.identity_branch.out_channels
        self.dropout = nn.Dropout(cfg.dropout)
        self.bottleneck = nn.Linear(feat, cfg.embedding_dim, bias=False)
        self.bottleneck_bn = nn.BatchNorm1d(cfg.embedding_dim)
        self.expression_head = nn.Linear(feat, cfg.num_expressions)
        self._init_weights()

    def _init_weights(self) -> None:
        """Xavier (Glorot) initialisation, as in the paper; BN starts at identity."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The shared stem (everything before the two branches)."""
        x = self.blocks_b(self.reduction_a(self.blocks_a(self.stem(x))))
        return self.reduction_b(x) if self.reduction_b is not None else x

    def features(self, x: torch.Tensor, identity: bool = True, expression: bool = True) -> Outputs:
        """One pass through the trunk and the requested branches."""
        t = self.trunk(x)
        prelogits = embedding = logits = None
        if identity:
            prelogits = self.prelogits_from_trunk(t)
            embedding = F.normalize(prelogits, dim=1)
        if expression:
            logits = self.features_from_trunk_expression(t)
        return Outputs(prelogits, embedding, logits)

    def prelogits_from_trunk(self, trunk: torch.Tensor, dropout: bool = True) -> torch.Tensor:
        """Branch 1 on a trunk output: the embedding before normalisation (``dropout=False``: never dropped)."""
        x = self.identity_branch(trunk)
        return self.bottleneck_bn(self.bottleneck(self.dropout(x) if dropout else x))

    def features_from_trunk_expression(self, trunk: torch.Tensor) -> torch.Tensor:
        """Branch 2 on a trunk output: the expression logits."""
        return self.expression_head(self.dropout(self.expression_branch(trunk)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.features(x)
        return out.embedding, out.expression_logits

    def identity_modules(self) -> list[nn.Module]:
        """Stem + Branch 1: what Stage 1 trains and Stage 2 freezes."""
        mods: list[nn.Module] = [self.stem, self.blocks_a, self.reduction_a, self.blocks_b]
        if self.reduction_b is not None:
            mods.append(self.reduction_b)
        return mods + self.identity_branch_modules()

    def identity_branch_modules(self) -> list[nn.Module]:
        """Branch 1 after the split: its blocks and the embedding bottleneck."""
        return [self.identity_branch, self.bottleneck, self.bottleneck_bn]

    def shared_modules(self, start: str) -> list[nn.Module]:
        """The shared stem from ``start`` on ("blocks_b": the B blocks, and Reduction-B where it is shared)."""
        if start != "blocks_b":
            raise ValueError(f"unknown shared-stem start {start!r}; known: blocks_b")
        return [self.blocks_b] + ([self.reduction_b] if self.reduction_b is not None else [])

    def expression_modules(self) -> list[nn.Module]:
        """Branch 2: what Stage 2 trains."""
        return [self.expression_branch, self.expression_head]

    def init_expression_branch_from_identity(self) -> int:
        """Copy Branch 1's tail weights into Branch 2 where the structure matches; returns tensors copied.

        With fewer C blocks in Branch 2 the first ones are copied; the expression
        head (7 outputs) has no counterpart and keeps its initialisation.
        """
        src = self.identity_branch.state_dict()
        dst = self.expression_branch.state_dict()
        copied = {k: v.clone() for k, v in src.items() if k in dst and dst[k].shape == v.shape}
        self.expression_branch.load_state_dict(copied, strict=False)
        return len(copied)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of the inference network."""
    return sum(p.numel() for p in model.parameters())


def build_model(cfg: ModelConfig | None = None) -> FaceLiveNet:
    """Construct a FaceLiveNet from a config (default: the 1.31 M-parameter configuration)."""
    return FaceLiveNet(copy.deepcopy(cfg) if cfg is not None else ModelConfig())
