"""Export: turn a training checkpoint into a model bundle for phones and Raspberry Pi.

``facelive-export`` (:mod:`.cli`) writes a bundle folder: ONNX, TFLite and CoreML
files in fp32 / fp16 / int8, and ``manifest.json`` (the schema of
:mod:`facelivenet.edge_runtime.manifest`). Every file is checked against the
torch model on real aligned faces before the bundle is published (:mod:`.parity`).

One module, one job:

- :mod:`.errors`       error types and the "converter not installed" check
- :mod:`.source`       the checkpoint: model, config, sha256, provenance, thresholds
- :mod:`.wrappers`     the torch module that is converted (named outputs, NHWC option)
- :mod:`.calibration`  real faces from ``--calib``: detect, align, split, hash
- :mod:`.metadata`     the key manifest fields embedded in each model file
- :mod:`.onnx_export`, :mod:`.quantize_onnx`, :mod:`.tflite_export`,
  :mod:`.coreml_export`   one converter each
- :mod:`.gptq`         int8 weights: GPTQ rounding to the per-channel int8 grid
- :mod:`.sensitivity`  which layers' int8 weights cost the expression logits most
- :mod:`.int8_source`  the torch models the int8 files are converted from
- :mod:`.selfcheck`    ``self_check.npz``: synthetic inputs + torch outputs for runtimes
- :mod:`.runners`      run an exported file (the edge runtime's backends)
- :mod:`.parity`       the gates: embedding cosine, expression agreement
- :mod:`.bundle`       the manifest and the atomic folder (temp, then rename)
- :mod:`.pipeline`     the whole export, step by step
- :mod:`.progress`     progress lines and the summary table

Torch and the converters are imported lazily: ``import facelivenet.export``
needs neither.
"""

from .errors import ConverterMissingError, ExportError

__all__ = ["ConverterMissingError", "ExportError"]
