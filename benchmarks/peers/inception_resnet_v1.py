"""FaceNet's Inception-ResNet-v1, written from the papers.

Network: Szegedy, Ioffe, Vanhoucke, Alemi 2016 ("Inception-v4, Inception-ResNet
and the Impact of Residual Connections on Learning"), Inception-ResNet-v1:
the stem of its Figure 14, 5 x Inception-ResNet-A (Figure 10), Reduction-A
(Figure 7, with k, l, m, n = 192, 192, 256, 384 from its Table 1), 10 x
Inception-ResNet-B (Figure 11), Reduction-B (Figure 12), 5 x
Inception-ResNet-C (Figure 13), average pooling. "V" convolutions are valid
(no padding), the others keep the size. Residuals are scaled before the
addition (section 3.3; 0.17, 0.10, 0.20 for A, B, C, as the public FaceNet
training code does). Like the public FaceNet models, a sixth, linear
Inception-ResNet-C block (no final ReLU, unscaled) closes the body: with it
the network has the ~23 M parameters quoted for FaceNet's Inception-ResNet-v1
(22.8 M; 21.2 M without it).

Embedding: Schroff, Kalenichenko, Philbin 2015 ("FaceNet"): a linear layer to
128 dimensions and L2 normalisation, on 160 x 160 aligned faces (the input
size of the widely used FaceNet models; the network is fully convolutional up
to its global pooling). About 23 M parameters at 128 dimensions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MODEL = "InceptionResNetV1"
INPUT_SIZE = 160
EMBEDDING_DIM = 128
PAPER_PARAMS = 23e6  # FaceNet Inception-ResNet-v1 with a 128-d bottleneck: ~23 M


def conv(cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, valid: bool = False) -> nn.Sequential:
    """Convolution (no bias) + batch norm + ReLU; ``valid``: no padding."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    pad = (0, 0) if valid else (k[0] // 2, k[1] // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _ScaledResidual(nn.Module):
    """relu(x + scale * linear_1x1(concat(branches(x)))); without the ReLU when ``linear``."""

    def __init__(self, channels: int, branches: list[nn.Module], mixed: int, scale: float, linear: bool = False):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.up = nn.Conv2d(mixed, channels, 1, bias=True)
        self.scale = scale
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.scale * self.up(torch.cat([b(x) for b in self.branches], 1))
        return y if self.linear else F.relu(y)


def block_a(c: int = 256) -> _ScaledResidual:
    """Inception-ResNet-A (35x35 grid in the paper): 1x1 32 | 1x1 32, 3x3 32 | 1x1 32, 3x3 32, 3x3 32."""
    return _ScaledResidual(c, [conv(c, 32, 1), nn.Sequential(conv(c, 32, 1), conv(32, 32, 3)),
                               nn.Sequential(conv(c, 32, 1), conv(32, 32, 3), conv(32, 32, 3))], 96, 0.17)


def block_b(c: int = 896) -> _ScaledResidual:
    """Inception-ResNet-B (17x17): 1x1 128 | 1x1 128, 1x7 128, 7x1 128."""
    return _ScaledResidual(c, [conv(c, 128, 1), nn.Sequential(conv(c, 128, 1), conv(128, 128, (1, 7)),
                                                              conv(128, 128, (7, 1)))], 256, 0.10)


def block_c(c: int = 1792, scale: float = 0.20, linear: bool = False) -> _ScaledResidual:
    """Inception-ResNet-C (8x8): 1x1 192 | 1x1 192, 1x3 192, 3x1 192."""
    return _ScaledResidual(c, [conv(c, 192, 1), nn.Sequential(conv(c, 192, 1), conv(192, 192, (1, 3)),
                                                              conv(192, 192, (3, 1)))], 384, scale, linear)


class _Concat(nn.Module):
    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


def reduction_a(c: int = 256, k: int = 192, l: int = 192, m: int = 256, n: int = 384) -> _Concat:
    """3x3 max pool /2 V | 3x3 n /2 V | 1x1 k, 3x3 l, 3x3 m /2 V."""
    return _Concat(nn.MaxPool2d(3, 2), conv(c, n, 3, 2, valid=True),
                   nn.Sequential(conv(c, k, 1), conv(k, l, 3), conv(l, m, 3, 2, valid=True)))


def reduction_b(c: int = 896) -> _Concat:
    """3x3 max pool /2 V | 1x1 256, 3x3 384 /2 V | 1x1 256, 3x3 256 /2 V | 1x1 256, 3x3 256, 3x3 256 /2 V."""
    return _Concat(nn.MaxPool2d(3, 2),
                   nn.Sequential(conv(c, 256, 1), conv(256, 384, 3, 2, valid=True)),
                   nn.Sequential(conv(c, 256, 1), conv(256, 256, 3, 2, valid=True)),
                   nn.Sequential(conv(c, 256, 1), conv(256, 256, 3), conv(256, 256, 3, 2, valid=True)))


class InceptionResNetV1(nn.Module):
    """Inception-ResNet-v1 + FaceNet's 128-d L2-normalised embedding."""

    def __init__(self, embedding_dim: int = EMBEDDING_DIM, dropout: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(  # Figure 14
            conv(3, 32, 3, 2, valid=True), conv(32, 32, 3, valid=True), conv(32, 64, 3),
            nn.MaxPool2d(3, 2), conv(64, 80, 1, valid=True), conv(80, 192, 3, valid=True),
            conv(192, 256, 3, 2, valid=True),
        )
        self.body = nn.Sequential(
            *[block_a() for _ in range(5)], reduction_a(),
            *[block_b() for _ in range(10)], reduction_b(),
            *[block_c() for _ in range(5)], block_c(scale=1.0, linear=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.bottleneck = nn.Linear(1792, embedding_dim, bias=False)
        self.bottleneck_bn = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(self.body(self.stem(x)), 1), 1)
        return F.normalize(self.bottleneck_bn(self.bottleneck(self.dropout(x))), dim=1)
