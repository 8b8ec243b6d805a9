"""Static int8: int8 weights AND calibrated int8 activations, computed by integer kernels.

The weight-only int8 files (:mod:`.quantize_onnx`, GPTQ-rounded weights, float
activations) are small but no faster than fp32. A static file quantises the
activations too, so the runtime's integer kernels do the work:

- ONNX: onnxruntime ``quantize_static``, QDQ, per-channel symmetric int8
  weights on a **7-bit grid** (``reduce_range``), **uint8** asymmetric
  activations (U8S8) with min/max ranges over the calibration faces.
  onnxruntime fuses U8S8 QDQ into QLinearConv, QLinearAdd, QLinearMul,
  QLinearConcat and QGemm (integer VNNI kernels on x86, dot-product kernels on
  ARM). With S8 activations it fused only about half the convolutions on x86
  and inserted ~50 transposes: as slow as fp32 (measured 0.85x-0.98x); U8S8
  runs about 4x fp32 at the same parity. Why the 7-bit weights: x86 CPUs
  WITHOUT VNNI (AVX2, AVX-512 before Cascade Lake) multiply uint8 x int8 with
  ``vpmaddubsw``, which adds each pair of products in a saturating int16; with
  full 8-bit weights a pair reaches 2 x 255 x 127 = 64,770 > 32,767 and the
  shipped 8-bit file gave embedding cosine 0.85 (min 0.41) there. With weights
  in -64..64 a pair stays within 2 x 255 x 64 = 32,640, so the same file is
  exact on every kernel path, at the same speed
  (ARCHITECTURE.md, "CPU portability"). Activation ranges: onnxruntime's
  percentile calibration (99.999th percentile of each activation's histogram
  over the calibration faces). On the shipped model, 7-bit weights with min/max
  ranges lost 0.82 points of JAFFE Acc_g (two of 244 pairs, over the export's
  0.5-point gate; entropy ranges the same), with percentile ranges every gate
  passed (+0.82; LFW 0.0, TAR -0.33, FER2013 -0.25 points) at a higher cosine
  (mean 0.99924, min 0.9944 vs 0.99908 / 0.9939).
- TFLite: ai-edge-quantizer's static recipe (int8 weights per channel, int8
  activations), float32 input and outputs (QUANTIZE / DEQUANTIZE at the edges).

Both keep the L2 normalisation in float (ARCHITECTURE.md, "Toolchain notes"), and the identity
embedding's tail (:data:`.wrappers.IDENTITY_TAIL`: pooled features, bottleneck) with float activations
and int8 weights: on the mobilefacenet-taught model the 8-bit activations of these two tensors cost
most of the embedding error (cosine mean on the export's parity faces, U8S8 7-bit weights: 0.9917 with
them int8, 0.9978 with them float; one float 1 x C x 128 product). Both start from
the float model (GPTQ rounding targets float activations; min/max weight
grids are what the static quantisers use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.constants import INT8_VARIANTS

from .wrappers import IDENTITY_TAIL, STATIC_FLOAT

VARIANT = INT8_VARIANTS["static"]  # the manifest variant of a static int8 file


@dataclass(frozen=True)
class StaticInt8Config:
    """How a static int8 file is built (recorded in the manifest)."""

    onnx_activations: str = "U8"
    calibration: str = "percentile"  # ONNX activation ranges; TFLite's quantiser uses min/max
    onnx_reduce_range: bool = True  # 7-bit weights: exact on x86 without VNNI (see the module docstring)
    float_modules: tuple[str, ...] = field(default=STATIC_FLOAT)
    # float activations but int8 weights (per channel, as the weight-only file): the bottleneck's weights
    # would otherwise stay fp32 (+157 KB for a 408 x 128 bottleneck) and the file miss the size gate
    int8_weight_float_modules: tuple[str, ...] = field(default=IDENTITY_TAIL)

    def record(self, fmt: str, calibration_faces: int) -> dict[str, Any]:
        """The ``quantisation`` entry of a static file of format ``fmt``."""
        common = {"level": "static int8", "float_layers": list(self.float_modules),
                  "float_activations_int8_weights": list(self.int8_weight_float_modules),
                  "calibration_faces": calibration_faces, "weights": "int8 per-channel symmetric (min/max grid)",
                  "io": "float32"}
        if fmt == "onnx":
            pair = "U8S8" if self.onnx_activations == "U8" else "S8S8"
            weights = ("int8 per-channel symmetric on a 7-bit grid (reduce_range: -64..64)" if self.onnx_reduce_range
                       else common["weights"])
            return {**common, "method": f"onnxruntime quantize_static, QDQ, {pair}"
                    + (", reduce_range" if self.onnx_reduce_range else ""), "weights": weights,
                    "activations": f"{'uint8' if self.onnx_activations == 'U8' else 'int8'} asymmetric, "
                                   f"{self.calibration} ranges on the calibration faces", "format": "QDQ"}
        return {**common, "method": "ai-edge-quantizer static_wi8_ai8",
                "activations": "int8 asymmetric, min/max over all calibration faces"}


def onnx_static(fp32: Any, scopes: dict[str, list[str]], calib: np.ndarray,
                cfg: StaticInt8Config) -> tuple[Any, list[str]]:
    """(static int8 ModelProto, names of the nodes kept float) from the float graph ``fp32``."""
    from .quantize_onnx import quantize_int8, quantize_weights_int8

    proto, kept = quantize_int8(fp32, scopes, calib, list(cfg.float_modules), cfg.calibration, cfg.onnx_activations,
                                reduce_range=cfg.onnx_reduce_range)
    if cfg.int8_weight_float_modules:
        proto, _, _ = quantize_weights_int8(proto, scopes, [], only_modules=list(cfg.int8_weight_float_modules))
    return proto, kept


def tflite_static(fp32: Path, dst: Path, calib: np.ndarray, cfg: StaticInt8Config) -> list[str]:
    """Write the static int8 .tflite converted from the float file ``fp32``; the regexes kept float."""
    from .tflite_export import quantize_int8

    return quantize_int8(fp32, dst, calib, list(cfg.float_modules), "int8",
                         int8_weight_modules=list(cfg.int8_weight_float_modules))
