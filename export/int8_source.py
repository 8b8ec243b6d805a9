"""The torch models every int8 file is converted from, and what the manifest says about their weights.

All int8 levels (:data:`.wrappers.INT8_LEVELS`) start from the GPTQ-rounded
model (:mod:`.gptq`). The fp16 level also restores the original weights of
the layers the sensitivity scan (:mod:`.sensitivity`) finds most costly for
the expression logits; the converters then store those as fp16. Both models
are built once, lazily (the scan only when an earlier level missed).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

import numpy as np

from . import sensitivity
from .gptq import gptq_round

log = logging.getLogger(__name__)

WEIGHTS = "int8 per-channel symmetric (scale = max|w| / 127), GPTQ-rounded"


class Int8Sources:
    """``source(level)`` -> (model, weight record, fp16 module paths) for one export."""

    def __init__(self, net: Any, calib_nchw: np.ndarray, step: Callable[[str], Any], note: Callable[[str], None]):
        self.net = net
        self.calib = calib_nchw
        self._step = step  # a progress step context for the GPTQ pass
        self._note = note
        self._rounded: tuple[Any, dict[str, Any]] | None = None
        self._fp16: tuple[Any, dict[str, Any], list[str]] | None = None
        self._fp16_layers: set[str] = set()

    def rounded(self) -> tuple[Any, dict[str, Any]]:
        """The model with GPTQ-rounded int8-grid weights, and its record."""
        if self._rounded is None:
            with self._step(f"int8 weights: GPTQ rounding on {len(self.calib)} calibration faces"):
                self._rounded = gptq_round(self.net, self.calib)
        return self._rounded

    def source(self, level: Any) -> tuple[Any, dict[str, Any], list[str]]:
        """(torch model to convert, weight record, module paths whose weights stay fp16) for an int8 level.

        With ``level.fp16_sensitive`` the layers the scan picks keep their original weights;
        one-shot GPTQ rounded every other layer independently of them.
        """
        rounded, record = self.rounded()
        if not level.fp16_sensitive:
            return rounded, record, []
        if self._fp16 is None:
            self._note("int8 weights: per-layer sensitivity scan on the calibration faces")
            chosen, scan = sensitivity.scan(self.net, rounded, self.calib)
            model = copy.deepcopy(rounded)
            originals = dict(sensitivity.quantised_layers(self.net))
            for name, module in sensitivity.quantised_layers(model):
                if name in chosen:
                    module.weight.data.copy_(originals[name].weight.data)
            paths = sensitivity.export_paths(model, chosen)
            self._fp16_layers = set(chosen)
            self._fp16 = (model, {**record, "kept_float": paths, "sensitivity_scan": scan}, paths)
        return self._fp16

    def fp16_weights(self, model: Any) -> list[np.ndarray]:
        """The weights (torch layout) of the layers of ``model`` kept in fp16."""
        return [m.weight.detach().numpy() for n, m in sensitivity.quantised_layers(model) if n in self._fp16_layers]

    def record(self, level: Any, method: str, activations: str, calibration_faces: int) -> dict[str, Any]:
        """The ``quantisation`` entry of an int8 file built at ``level``."""
        _, weights, fp16 = self.source(level)
        return {"method": method, "level": level.name,
                "weights": WEIGHTS + (f"; fp16: {', '.join(fp16)}" if fp16 else ""),
                "activations": activations, "weight_rounding": weights, "calibration_faces": calibration_faces}
