"""Build static int8 files (int8 activations and weights) of the shipped default model, on x86.

``python static_int8.py OUT.onnx [OUT.tflite]``  (the full install: torch, onnx, ai-edge-quantizer)

The shipped int8 files keep activations in float (int8 weights only: static
int8 misses the export's agreement gate, see ``python -m
facelivenet.export.int8_scan``). ARM's integer kernels are where int8 results
drift, so the ARM64 check also runs this fully static file: the export's own
fp32 graph and onnxruntime QDQ settings (:func:`facelivenet.export.quantize_onnx.quantize_int8`,
S8S8 per-channel, min/max, the L2-normalisation tail in float), calibrated on
the export's own calibration faces (disjoint from the parity faces). With a
second path, also a fully static int8 TFLite file: the bundle's fp32 TFLite file
through the export's ai-edge-quantizer static recipe
(:func:`facelivenet.export.tflite_export.quantize_int8`, float input and outputs,
the same tail in float), on the same faces.
"""

from __future__ import annotations

import sys
from pathlib import Path

from facelivenet.export import onnx_export
from facelivenet.export.onnx_export import export_fp32, simplify
from facelivenet.export.pipeline import ExportOptions, check_face_inputs, gather_faces
from facelivenet.export.progress import Progress
from facelivenet.export.quantize_onnx import quantize_int8
from facelivenet.export.source import load_source
from facelivenet.export.wrappers import FLOAT_TAIL, ExportModel


def main(argv: list[str] | None = None) -> int:
    paths = [Path(a) for a in (argv or sys.argv[1:])]
    out = paths[0]
    source = load_source(None)  # the shipped default model
    opts = ExportOptions(out=out.parent)
    calib_dir = check_face_inputs(opts)
    calib, _ = gather_faces(opts, source, calib_dir, Progress(1, enabled=False))
    pre = source.preprocess
    proto, scopes = export_fp32(ExportModel(source.model, pre.layout), pre.input_size)
    proto, _ = simplify(proto)
    int8, kept_float = quantize_int8(proto, scopes, calib.tensor(pre, pre.layout), list(FLOAT_TAIL))
    onnx_export.save(int8, out)
    print(f"static_int8.py: {out} ({len(calib)} calibration faces, {len(kept_float)} nodes kept float)",
          file=sys.stderr)
    if len(paths) > 1:
        from facelivenet.edge_runtime.bundle import resolve_bundle_dir
        from facelivenet.export import tflite_export

        fp32 = resolve_bundle_dir(None) / "model_fp32.tflite"
        kept = tflite_export.quantize_int8(fp32, paths[1], calib.tensor(pre, pre.layout), list(FLOAT_TAIL), "int8")
        print(f"static_int8.py: {paths[1]} ({len(kept)} regexes kept float)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
