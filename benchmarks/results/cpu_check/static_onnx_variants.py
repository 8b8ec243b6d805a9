"""Static int8 ONNX variants of the shipped checkpoint on a 7-bit (or 8-bit) weight grid, each gated natively with
the export's own parity and task gates (LFW fold 1, FER2013 2,000, JAFFE Acc_g). The run behind docs/runtime/cpus.md:
    FACELIVE_DATA=../shared/data FACELIVE_DETECTOR=../shared/models/yunet/yunet_s_640_640.onnx OMP_NUM_THREADS=1 \\
        python benchmarks/results/cpu_check/static_onnx_variants.py /tmp/variants
Output: static_onnx_variants.json beside this file (the data paths below are this machine's)."""
import json, sys, time, logging
from pathlib import Path
import numpy as np
import onnx
from facelivenet.export.pipeline import ExportOptions, gather_faces
from facelivenet.export.progress import Progress
from facelivenet.export.source import load_source
from facelivenet.export import onnx_export, parity as parity_mod
from facelivenet.export.wrappers import ExportModel, FLOAT_TAIL, torch_reference
from facelivenet.export.quantize_onnx import quantize_int8
from facelivenet.export.task_runs import TaskRuns
from facelivenet.export.runners import runner_for
logging.basicConfig(level=logging.WARNING)
out = Path(sys.argv[1]); out.mkdir(exist_ok=True)
data = Path("/work/shared/data")
opts = ExportOptions(out=out / "unused", expression_data=data / "fer2013", calib=data / "lfw/images",
                     detector=Path("/work/shared/models/yunet/yunet_s_640_640.onnx"), threads=1)
source = load_source(None)
calib, parity_faces = gather_faces(opts, source, data / "lfw/images", Progress(3, enabled=False))
x = calib.tensor(source.preprocess, "NCHW")
px = parity_faces.tensor(source.preprocess, "NCHW")
ref_emb, ref_logits = torch_reference(source.model, px)
tasks = TaskRuns(opts, source, Progress(3, enabled=False), ["int8"]); tasks.load()
proto, scopes = onnx_export.export_fp32(ExportModel(source.model, "NCHW"), 112, 18)
proto, _ = onnx_export.simplify(proto)
variants = {
    "u8s8_8bit_minmax": dict(activations="U8", reduce_range=False, method="minmax"),
    "u8s8_rr_minmax": dict(activations="U8", reduce_range=True, method="minmax"),
    "u8s8_rr_percentile": dict(activations="U8", reduce_range=True, method="percentile"),
    "u8s8_rr_entropy": dict(activations="U8", reduce_range=True, method="entropy"),
}
names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(variants)
results = {}
for name in names:
    kw = dict(variants[name]); method = kw.pop("method")
    t = time.time()
    q, kept = quantize_int8(proto, scopes, x, list(FLOAT_TAIL), method, **kw)
    onnx_export.compact_names(q)
    path = out / f"{name}.onnx"; onnx.save(q, str(path))
    run = runner_for("onnx", path, 1)
    emb, logits = run(px)
    metrics = parity_mod.measure(ref_emb, ref_logits, emb, logits)
    gates = tasks.gate(runner_for("onnx", path, 1), "NCHW")
    results[name] = {"parity": {k: metrics[k] for k in ("cosine_mean", "cosine_min", "expression_top1_agreement_decisive")},
                     "parity_failures": parity_mod.check("int8", metrics),
                     "task_deltas": {k: v.get("delta_points") for k, v in gates["tasks"].items()},
                     "task_failures": gates["failures"], "seconds": round(time.time() - t, 1)}
    print(name, json.dumps(results[name]), flush=True)
json.dump(results, open(out / f"variants_{'_'.join(names)}.json", "w"), indent=1)
