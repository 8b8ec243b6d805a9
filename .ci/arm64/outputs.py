"""Model outputs of this machine on the bundle's reference faces: run on x86 and on (emulated) aarch64 alike.

``python outputs.py OUT.npz --data DIR --faces N [--extra NAME=PATH ...]``

Needs only the edge extra (no torch). Re-aligns N of the bundle's held-out
reference faces (``parity_reference.npz``, evenly spread) with this machine's
OpenCV, runs every ONNX / TFLite file of the shipped bundle plus the ``--extra``
files (the weight-only and the static int8
ones alike) through the runtime's backends, and saves the crops, each file's
embedding and expression logits, the torch reference for the same faces and
this machine's versions. ``compare.py`` turns two such files into the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from facelivenet.benchmarks.device_faces import load_reference_faces
from facelivenet.edge_runtime.backends import open_backend
from facelivenet.edge_runtime.bundle import resolve_bundle_dir
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.manifest import load_manifest
from facelivenet.edge_runtime.photo_align import alignment_platform
from facelivenet.edge_runtime.preprocess import normalize


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("numpy", "cv2", "onnxruntime", "ai_edge_litert"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            out[name] = f"unavailable ({type(exc).__name__})"
    return out


def file_key(fmt: str, precision: str, variant: str = "") -> str:
    """A file's row in the report: ``onnx/int8`` (weight-only), ``onnx/int8-static``; ``compare.py`` reads the
    precision back as the part between the slash and the dash."""
    return f"{fmt}/{precision}" + (f"-{variant}" if variant else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--detector")
    p.add_argument("--faces", type=int, default=24)
    p.add_argument("--crops", type=Path, metavar="OUTPUTS_NPZ",
                   help="feed the crops saved in another machine's outputs file instead of aligning here (the "
                        "model files alone compared on identical inputs)")
    p.add_argument("--only-extra", action="store_true", help="run the --extra files only, not the bundle's")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=PATH",
                   help="another model file (format from its suffix), e.g. onnx/int8-static=model_static_int8.onnx")
    args = p.parse_args(argv)
    bundle = resolve_bundle_dir(None)
    manifest = load_manifest(bundle)
    faces = load_reference_faces(bundle, manifest, args.data, args.detector, args.faces)
    if faces is None or not len(faces.crops):
        print("outputs.py: none of the reference faces are under --data", file=sys.stderr)
        return 1
    files = {file_key(f.format, f.precision, f.variant): (f.format, bundle / f.path, f.layout) for f in manifest.files
             if f.format in ("onnx", "tflite") and not args.only_extra}
    for item in args.extra:
        name, _, path = item.partition("=")
        fmt = "tflite" if path.endswith(".tflite") else "onnx"
        files[name] = (fmt, Path(path), "NCHW")
    if args.crops is not None:
        with np.load(args.crops) as other:
            if not np.array_equal(other["torch_embedding"], faces.embedding):
                print("outputs.py: --crops holds other reference faces (another --faces?)", file=sys.stderr)
                return 1
            faces.crops = other["crops"]
    arrays = {"crops": faces.crops, "torch_embedding": faces.embedding, "torch_logits": faces.expression_logits}
    report: dict = {"machine": platform.machine(), "aligned_with": alignment_platform(), "versions": _versions(),
                    "faces": int(len(faces.crops)), "crops_from": str(args.crops) if args.crops else "aligned here",
                    "files": {}}
    import dataclasses

    for key, (fmt, path, layout) in files.items():
        x = np.ascontiguousarray(normalize(faces.crops, dataclasses.replace(manifest.preprocess, layout=layout)),
                                 np.float32)
        try:
            start = time.perf_counter()
            backend = open_backend(fmt, path, 1)
            emb, logits = backend.run(x)
            report["files"][key] = {"runtime": backend.name, "path": str(path), "seconds": round(time.perf_counter() - start, 1)}
        except FaceLiveError as exc:
            report["files"][key] = {"error": str(exc), "path": str(path)}
            print(f"outputs.py: {key}: {exc}", file=sys.stderr)
            continue
        arrays[f"{key}/embedding"], arrays[f"{key}/logits"] = emb, logits
        print(f"outputs.py: {key}: {len(x)} faces through {backend.name}", file=sys.stderr)
    np.savez_compressed(args.out, report=np.array(json.dumps(report)), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
