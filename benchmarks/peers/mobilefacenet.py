"""MobileFaceNet (Chen, Liu, Gao, Han 2018, "MobileFaceNets: Efficient CNNs for
Accurate Real-Time Face Verification on Mobile Devices"), written from the
paper's Table 1.

Input 112 x 112 x 3; output a 128-d feature. The network, row by row:

============  =========  ===  ====  ===  ===
operator      output     t    c     n    s
============  =========  ===  ====  ===  ===
conv3x3       56x56x64   -    64    1    2
dw conv3x3    56x56x64   -    64    1    1
bottleneck    28x28x64   2    64    5    2
bottleneck    14x14x128  4    128   1    2
bottleneck    14x14x128  2    128   6    1
bottleneck    7x7x128    4    128   1    2
bottleneck    7x7x128    2    128   2    1
conv1x1       7x7x512    -    512   1    1
linear GDConv 1x1x512    -    512   1    -
linear conv1  1x1x128    -    128   1    -
============  =========  ===  ====  ===  ===

A bottleneck is MobileNetV2's inverted residual (1x1 expansion by t, 3x3
depthwise with stride s, linear 1x1 projection; a shortcut when the stride is
1 and the channels match); the first of n repeats carries the stride. The
paper uses PReLU as the non-linearity and batch normalisation after every
convolution; the global depthwise convolution (GDConv, a 7x7 depthwise
convolution without padding) replaces global average pooling. The paper
states 0.99 M parameters and 221 M multiply-adds.

:class:`MobileFaceNet` with ``num_classes`` set replaces the 128-d linear
layer by a linear classifier: the two-model pipeline's expression network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MODEL = "MobileFaceNet"
INPUT_SIZE = 112
EMBEDDING_DIM = 128
PAPER_PARAMS = 0.99e6
PAPER_MACS = 221e6

# (t, c, n, s) of the bottleneck rows of Table 1.
BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "prelu",
            padding: int | None = None) -> nn.Sequential:
    """Convolution (no bias) + batch norm (+ ``act``: "prelu", "relu" or None for linear)."""
    pad = kernel // 2 if padding is None else padding
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act == "prelu":
        layers.append(nn.PReLU(cout))
    elif act == "relu":
        layers.append(nn.ReLU(inplace=True))
    elif act is not None:
        raise ValueError(f"activation must be 'prelu', 'relu' or None, got {act!r}")
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand (x t), 3x3 depthwise (stride s), linear 1x1 project."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, act: str = "prelu"):
        super().__init__()
        hidden = cin * expansion
        self.body = nn.Sequential(
            conv_bn(cin, hidden, 1, act=act),
            conv_bn(hidden, hidden, 3, stride, groups=hidden, act=act),
            conv_bn(hidden, cout, 1, act=None),
        )
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.shortcut else y


class MobileFaceNet(nn.Module):
    """MobileFaceNet; ``forward`` returns the L2-normalised 128-d embedding, or logits with ``num_classes``.

    ``activation="relu"`` swaps the paper's PReLU for ReLU (which runtimes fuse into the convolution): a
    what-if variant, not the paper's network.
    """

    def __init__(self, embedding_dim: int = EMBEDDING_DIM, num_classes: int | None = None, activation: str = "prelu"):
        super().__init__()
        act = activation
        layers: list[nn.Module] = [conv_bn(3, 64, 3, 2, act=act), conv_bn(64, 64, 3, 1, groups=64, act=act)]
        cin = 64
        for t, c, n, s in BOTTLENECKS:
            for i in range(n):
                layers.append(Bottleneck(cin, c, t, s if i == 0 else 1, act))
                cin = c
        layers.append(conv_bn(cin, 512, 1, act=act))
        layers.append(conv_bn(512, 512, 7, groups=512, act=None, padding=0))  # linear GDConv
        self.features = nn.Sequential(*layers)
        self.num_classes = num_classes
        if num_classes is None:
            self.head = nn.Sequential(nn.Conv2d(512, embedding_dim, 1, bias=False), nn.BatchNorm2d(embedding_dim))
        else:
            self.head = nn.Conv2d(512, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.flatten(self.head(self.features(x)), 1)
        return y if self.num_classes is not None else F.normalize(y, dim=1)
