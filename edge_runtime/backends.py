"""Model backends behind one interface: a float32 batch in, (embedding, expression_logits) out.

- ``onnx``: onnxruntime, CPU execution provider.
- ``tflite``: LiteRT's interpreter (``ai_edge_litert``). The old ``tflite_runtime``
  package is only a fallback, and only after a parity self-check against
  reference outputs saved at export (ARCHITECTURE.md, "Toolchain notes": its
  2.14 build runs some int8 models silently wrong).
- ``coreml``: coremltools on macOS (prediction does not exist on Linux).

The input is always NCHW or NHWC exactly as the file declares (manifest
``files[].layout``); callers prepare it with :func:`preprocess.normalize`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import platform
import time
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from .constants import FORMAT_TABLE, FORMATS, MAX_THREADS
from .errors import FaceLiveError

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAMES = ("embedding", "expression_logits")
BACKEND_FORMATS = FORMATS


class BackendError(FaceLiveError):
    """A model file cannot be loaded or run by the chosen backend."""


class BackendUnavailableError(BackendError):
    """The runtime a format needs is not installed (or cannot run) on this machine."""


class ModelBackend(Protocol):
    """What every backend offers."""

    name: str  # e.g. "onnxruntime 1.23.2"
    threads: int
    load_ms: float

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 batch (layout of the file) -> (embedding [N, D], expression_logits [N, 7]), float32."""
        ...


def _module_version(module) -> str:
    return str(getattr(module, "__version__", "?"))


class OnnxRuntimeBackend:
    """onnxruntime on CPU; the batch dimension is dynamic, so batches run in one call."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        try:
            ort = importlib.import_module("onnxruntime")
        except ImportError as exc:
            raise BackendUnavailableError("onnxruntime is not installed: pip install 'facelivenet[edge]'") from exc
        start = time.perf_counter()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load {Path(path).name}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self.load_ms = (time.perf_counter() - start) * 1000.0
        self.threads = max(1, int(threads))
        self.name = f"onnxruntime {_module_version(ort)}"

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb, logits = self._session.run(list(OUTPUT_NAMES), {self._input: np.ascontiguousarray(batch, np.float32)})
        return emb, logits


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """Send what C++ code writes to fd 2 to /dev/null meanwhile (the interpreter's banners; errors still raise)."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (some embedded interpreters): nothing to quiet
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class TfliteBackend:
    """A TFLite interpreter (LiteRT or the legacy tflite_runtime) through its signature runner.

    The files have a static batch of 1, as phones run them; a batch runs one face at a time.
    """

    def __init__(self, path: str | Path, threads: int = 1, module: str = "ai_edge_litert.interpreter") -> None:
        try:
            interp_mod = importlib.import_module(module)
        except ImportError as exc:
            raise BackendUnavailableError(f"{module.split('.')[0]} is not installed: pip install 'facelivenet[edge]'") from exc
        start = time.perf_counter()
        try:
            with _native_stderr_quiet():  # LiteRT prints "INFO: Created ... XNNPACK delegate" from C++
                interpreter = interp_mod.Interpreter(model_path=str(path), num_threads=max(1, int(threads)))
                interpreter.allocate_tensors()  # the delegate is applied here, inside the quiet block
                self._runner = interpreter.get_signature_runner("serving_default")
        except Exception as exc:  # the interpreter raises ValueError/RuntimeError variously
            raise BackendError(f"{module} cannot load {Path(path).name}: {exc}") from exc
        self.load_ms = (time.perf_counter() - start) * 1000.0
        self.threads = max(1, int(threads))
        root = importlib.import_module(module.split(".")[0])
        self.name = f"{module.split('.')[0]} {_module_version(root)}"

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embs, logits = [], []
        for x in np.asarray(batch, np.float32):
            out = self._runner(**{INPUT_NAME: np.ascontiguousarray(x[None])})
            embs.append(out[OUTPUT_NAMES[0]])
            logits.append(out[OUTPUT_NAMES[1]])
        return np.concatenate(embs).astype(np.float32), np.concatenate(logits).astype(np.float32)


class CoreMLBackend:
    """Core ML through coremltools; prediction exists only on macOS."""

    MAX_BATCH = 32

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        if platform.system() != "Darwin":
            raise BackendUnavailableError("the coreml backend runs only on macOS; use --format onnx or tflite here")
        try:
            ct = importlib.import_module("coremltools")
        except ImportError as exc:
            raise BackendUnavailableError("coremltools is not installed: pip install coremltools") from exc
        start = time.perf_counter()
        try:
            self._model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        except Exception as exc:
            raise BackendError(f"coremltools cannot load {Path(path).name}: {exc}") from exc
        self.load_ms = (time.perf_counter() - start) * 1000.0
        self.threads = max(1, int(threads))  # Core ML picks its own threads
        self.name = f"coremltools {_module_version(ct)}"

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embs, logits = [], []
        for i in range(0, len(batch), self.MAX_BATCH):
            out = self._model.predict({INPUT_NAME: np.asarray(batch[i:i + self.MAX_BATCH], np.float32)})
            embs.append(np.asarray(out[OUTPUT_NAMES[0]], dtype=np.float32))
            logits.append(np.asarray(out[OUTPUT_NAMES[1]], dtype=np.float32))
        return np.concatenate(embs), np.concatenate(logits)


# What a file must reach on the bundle's self-check inputs (synthetic patterns with clear top-1 margins)
# before a runtime trusts it: the legacy tflite_runtime gate, and the device benchmark's floor at every precision.
SELF_CHECK_MIN_COSINE = 0.98
SELF_CHECK_MIN_AGREEMENT = 0.9


def parity_self_check(
    backend: ModelBackend, inputs: np.ndarray, ref_embedding: np.ndarray, ref_logits: np.ndarray,
    min_cosine: float = SELF_CHECK_MIN_COSINE, min_agreement: float = SELF_CHECK_MIN_AGREEMENT,
) -> dict[str, float]:
    """Run ``inputs`` and compare with reference outputs; BackendError if the backend disagrees.

    Cosine is between embeddings (L2-normalised first); agreement is of the top expression.
    """
    emb, logits = backend.run(inputs)

    def unit(a: np.ndarray) -> np.ndarray:
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    cos = np.sum(unit(emb) * unit(ref_embedding), axis=1)
    agree = float(np.mean(np.argmax(logits, 1) == np.argmax(ref_logits, 1)))
    result = {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()), "expression_agreement": agree}
    if result["cosine_min"] < min_cosine or agree < min_agreement:
        raise BackendError(
            f"{backend.name} fails the parity self-check (cosine min {result['cosine_min']:.4f} < {min_cosine} "
            f"or expression agreement {agree:.3f} < {min_agreement}): this runtime computes this file wrongly on "
            "this CPU"
        )
    return result


BackendFactory = Callable[[Path, int], ModelBackend]


def _open_tflite(path: Path, threads: int, self_check: Callable[[ModelBackend], object] | None) -> ModelBackend:
    """LiteRT when installed; else the legacy tflite_runtime, only after ``self_check`` passes.

    ``self_check`` raises when the backend disagrees with the bundle's reference and returns None when the
    bundle has no reference: the legacy interpreter is then refused, never trusted unchecked.
    """
    try:
        importlib.import_module(FORMAT_TABLE["tflite"].runtime[0] + ".interpreter")
    except ImportError:
        pass
    else:
        return TfliteBackend(path, threads)
    try:
        importlib.import_module("tflite_runtime.interpreter")
    except ImportError as exc:
        raise BackendUnavailableError("no TFLite interpreter: pip install ai-edge-litert") from exc
    if self_check is not None:
        backend = TfliteBackend(path, threads, module="tflite_runtime.interpreter")
        if self_check(backend) is not None:
            log.warning("using the legacy tflite_runtime for %s: it passed the parity self-check", path.name)
            return backend
    raise BackendError(
        "only the legacy tflite_runtime is installed, and without reference outputs from the bundle (its "
        "manifest has no self_check entry) it cannot be checked (it runs some int8 models silently wrong): "
        "pip install ai-edge-litert"
    )


# Each format's backend class, named by constants.FORMAT_TABLE (the one table of per-format facts).
BACKEND_CLASSES: dict[str, type] = {f: globals()[spec.backend_class] for f, spec in FORMAT_TABLE.items()}


def open_backend(fmt: str, path: str | Path, threads: int = 1,
                 self_check: Callable[[ModelBackend], object] | None = None) -> ModelBackend:
    """Open ``path`` with the backend for ``fmt`` (onnx, tflite, coreml).

    For tflite, LiteRT is used when installed; otherwise ``tflite_runtime`` is tried,
    and only if ``self_check`` is given and passes (it raises on disagreement and returns None
    when there is no reference to check against, which refuses the legacy interpreter too).
    The caller verifies the file's hash first (see :mod:`face_model`).
    """
    if not 1 <= threads <= MAX_THREADS:
        raise BackendError(f"threads must be in [1, {MAX_THREADS}], got {threads}")
    if fmt not in BACKEND_CLASSES:
        raise BackendError(f"unknown format {fmt!r}; choose one of {', '.join(BACKEND_FORMATS)}")
    path = Path(path)
    if fmt == "tflite":
        return _open_tflite(path, threads, self_check)
    return BACKEND_CLASSES[fmt](path, threads)
