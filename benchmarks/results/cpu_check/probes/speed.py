"""The speed column of docs/runtime/cpus.md: the candidate ONNX files and the shipped TFLite files side by side (see build_candidates.py)."""
import json, sys
from pathlib import Path
from facelivenet.export.speed import Timed, SpeedConfig, side_by_side
C = Path("/work/cpuprobe/cand"); B = Path("edge_runtime/default_bundle")
files = [Timed("onnx fp32", "onnx", C / "fp32.onnx", "NCHW", "fp32"),
         Timed("onnx u8s8 (shipped recipe)", "onnx", C / "u8s8.onnx", "NCHW", "int8", "static"),
         Timed("onnx u8s8 reduce_range", "onnx", C / "u8s8_rr.onnx", "NCHW", "int8", "static"),
         Timed("onnx s8s8", "onnx", C / "s8s8.onnx", "NCHW", "int8", "static"),
         Timed("tflite fp32", "tflite", B / "model_fp32.tflite", "NCHW", "fp32"),
         Timed("tflite int8 static (shipped)", "tflite", B / "model_int8_static.tflite", "NCHW", "int8", "static")]
out = side_by_side(files, 112, SpeedConfig(threads=(1,), rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 200))
for r in out["rows"]:
    print({k: r.get(k) for k in ("label", "threads", "median_ms", "p95_ms", "vs_fp32")})
json.dump(out, open("/work/cpuprobe/speed.json", "w"), indent=1)
