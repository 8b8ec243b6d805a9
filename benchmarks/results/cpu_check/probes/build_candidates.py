"""Probe behind the AVX2 and speed columns of docs/runtime/cpus.md (kept as run; paths are this machine's):
    python build_candidates.py /tmp/cand          # fp32, u8s8 (8-bit), u8s8_rr (7-bit), s8s8 ONNX of the shipped checkpoint
    python .ci/arm64/outputs.py native.npz --data ../shared/data --faces 40        # the 40 crops, once
    [qemu-x86_64 -cpu Haswell-v4] python .ci/arm64/outputs.py OUT.npz --data ../shared/data --faces 40 --crops native.npz --only-extra --extra u8s8=/tmp/cand/u8s8.onnx ...
    python compare_outputs.py OUT.npz             # cosine mean / min, top-1 vs torch
    OMP_NUM_THREADS=1 python speed.py 200         # the ms column (one process, interleaved rounds)
"""
import sys, time, logging
from pathlib import Path
import numpy as np
from facelivenet.export.pipeline import ExportOptions, gather_faces
from facelivenet.export.progress import Progress
from facelivenet.export.source import load_source
from facelivenet.export import onnx_export
from facelivenet.export.wrappers import ExportModel, FLOAT_TAIL
from facelivenet.export.quantize_onnx import quantize_int8
logging.basicConfig(level=logging.INFO)
out = Path(sys.argv[1]); out.mkdir(exist_ok=True)
data = Path("/work/shared/data")
opts = ExportOptions(out=out / "unused", expression_data=data / "fer2013", calib=data / "lfw/images",
                     detector=Path("/work/shared/models/yunet/yunet_s_640_640.onnx"))
source = load_source(None)
calib, parity = gather_faces(opts, source, data / "lfw/images", Progress(3, enabled=False))
x = calib.tensor(source.preprocess, "NCHW")
print("calib", x.shape)
proto, scopes = onnx_export.export_fp32(ExportModel(source.model, "NCHW"), 112, 18)
proto, _ = onnx_export.simplify(proto)
import onnx
onnx.save(proto, str(out / "fp32.onnx"))
variants = {"u8s8": dict(activations="U8"), "u8s8_rr": dict(activations="U8", reduce_range=True),
            "s8s8": dict(activations="S8")}
for name, kw in variants.items():
    t = time.time()
    q, kept = quantize_int8(proto, scopes, x, list(FLOAT_TAIL), "minmax", **kw)
    onnx_export.compact_names(q)
    onnx.save(q, str(out / f"{name}.onnx"))
    print(name, "built", round(time.time() - t, 1), "s")
