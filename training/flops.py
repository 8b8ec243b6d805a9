"""Count FLOPs of one forward pass (multiply and add counted separately: FLOPs = 2 x MACs)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: torch.nn.Module, input_size: int, in_channels: int = 3) -> int:
    """FLOPs of one forward pass at batch 1, in eval mode, by torch's operator-level counter."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_channels, input_size, input_size))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
