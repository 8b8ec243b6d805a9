"""Run an exported file on a batch: (embedding, expression_logits) as float32 numpy arrays.

The same code paths the edge runtime uses: onnxruntime, ai_edge_litert's
interpreter (never the old tflite_runtime, DESIGN.md section 8) and, on macOS,
Core ML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ExportError, require
from .wrappers import INPUT_NAME, OUTPUT_NAMES

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
ONNX_BATCH = 32


def onnx_runner(path: str | Path, threads: int = 1) -> Runner:
    ort = require("onnxruntime", "onnxruntime", "running the ONNX files")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot load {Path(path).name}: {exc}") from exc

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embs, logits = [], []
        for i in range(0, len(batch), ONNX_BATCH):
            e, l = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(batch[i:i + ONNX_BATCH], np.float32)})
            embs.append(e)
            logits.append(l)
        return np.concatenate(embs), np.concatenate(logits)

    return run


def tflite_runner(path: str | Path, threads: int = 1) -> Runner:
    require("ai_edge_litert", "ai-edge-litert", "running the TFLite files")
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=max(1, threads))
        runner = interpreter.get_signature_runner("serving_default")
    except Exception as exc:
        raise ExportError(f"ai_edge_litert cannot load {Path(path).name}: {exc}") from exc

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embs, logits = [], []
        for x in batch:  # the file has a static batch of 1 (what a phone runs)
            out = runner(**{INPUT_NAME: np.ascontiguousarray(x[None], np.float32)})
            embs.append(out[OUTPUT_NAMES[0]])
            logits.append(out[OUTPUT_NAMES[1]])
        return np.concatenate(embs).astype(np.float32), np.concatenate(logits).astype(np.float32)

    return run


def coreml_runner(path: str | Path, threads: int = 1) -> Runner:
    from . import coreml_export

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return coreml_export.predict(path, batch)

    return run


RUNNERS = {"onnx": onnx_runner, "tflite": tflite_runner, "coreml": coreml_runner}


def runner_for(fmt: str, path: str | Path, threads: int = 1) -> Runner:
    return RUNNERS[fmt](path, threads)
