"""Torch-free runtime: the base layer every other part of facelivenet builds on.

It owns what is shared: expression labels, face detection and alignment,
preprocessing and the bundle manifest schema. Nothing here may import torch.
"""

from .labels import EXPRESSION_LABELS, NUM_EXPRESSIONS

__all__ = ["EXPRESSION_LABELS", "NUM_EXPRESSIONS"]
