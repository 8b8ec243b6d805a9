"""One home for the values every part of facelivenet shares.

Model file formats and precisions, exit codes, the default challenge and its
timings, the environment variables, the parity gates. Everything else imports
them from here, and help texts are generated from them, so a value changes in
one place. Torch-free, like the rest of ``edge_runtime`` (ARCHITECTURE.md,
"Layers").
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------- model files


@dataclass(frozen=True)
class FormatSpec:
    """Everything the project knows about one model file format, in one place: the file extension, the
    runtime that runs it (its backend class in :mod:`.backends`, the module and distribution it imports),
    what its converter needs (export), which benchmark engine times it, and where it can run."""

    name: str
    extension: str  # without the dot; a Core ML model is a folder (.mlpackage)
    backend: str  # the runtime, as the help and the reports name it
    requirement: str  # how a user gets the runtime
    backend_class: str  # its class in edge_runtime/backends.py
    runtime: tuple[str, str]  # (module, distribution) the backend imports
    converters: tuple[tuple[str, str], ...]  # (module, distribution) the export's converter needs
    engine: str | None  # the benchmarks' GEMM engine that runs it (benchmarks/machine.py); None: none measured
    runs_anywhere: bool  # predicts on every OS and CPU: timed at export, static int8 files, the CPU check
    gptq: bool  # its int8 files start from the GPTQ-rounded model


FORMAT_TABLE: dict[str, FormatSpec] = {
    "onnx": FormatSpec("onnx", "onnx", "onnxruntime", 'pip install "facelivenet[edge]"', "OnnxRuntimeBackend",
                       ("onnxruntime", "onnxruntime"), (("onnx", "onnx"), ("onnxscript", "onnxscript")),
                       "onnxruntime", True, True),
    "tflite": FormatSpec("tflite", "tflite", "LiteRT (ai_edge_litert)", 'pip install "facelivenet[edge]"',
                         "TfliteBackend", ("ai_edge_litert", "ai-edge-litert"),
                         (("litert_torch", "litert-torch"), ("ai_edge_quantizer", "ai-edge-quantizer")),
                         "litert", True, True),
    "coreml": FormatSpec("coreml", "mlpackage", "coremltools", "macOS with coremltools (prediction is macOS-only)",
                         "CoreMLBackend", ("coremltools", "coremltools"), (("coremltools", "coremltools"),),
                         None, False, False),
}
FORMATS: tuple[str, ...] = tuple(FORMAT_TABLE)
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
# A bundle names its own default file (manifest ``default_file``: the fastest file that passed every gate at
# export); these pick among the files when it names none, or when only a format or a precision is asked for.
DEFAULT_FORMAT = "onnx"
DEFAULT_PRECISION = "int8"
# int8 files come in two variants: "static" (int8 activations, integer kernels) and the weight-only fallback
# (int8 weights, float compute), whose manifest variant is "".
INT8_VARIANTS: dict[str, str] = {"static": "static", "weight-only": ""}


def file_form(precision: str, variant: str | None = "") -> str:
    """``fp32``, ``int8 weights only`` or ``int8 static``: the one label of a model file's form in every table,
    plot and message (``facelive inspect``, the bench and device reports)."""
    if precision != "int8":
        return precision
    return f"int8 {variant}" if variant else "int8 weights only"
DEFAULT_THREADS = 1
MAX_THREADS = 64
DEFAULT_MAX_PIXELS = 16_000_000  # images with more pixels are refused (decompression bombs)


def model_file_name(fmt: str, precision: str, variant: str = "") -> str:
    """The bundle's file names: ``model.onnx`` for fp32 ONNX, ``model_<precision>[_<variant>].<extension>``
    otherwise."""
    if (fmt, precision, variant) == ("onnx", "fp32", ""):
        return "model.onnx"
    return f"model_{precision}{f'_{variant}' if variant else ''}.{FORMAT_TABLE[fmt].extension}"


# ---------------------------------------------------------------- exit codes

# Every console script and module CLI: 0 success, 1 a FaceLiveError (bad input,
# bad bundle...), 2 command-line usage (argparse), 3 an unexpected internal
# error, 4 an authentication that ran and rejected, 5 a measured target missed
# (``--strict``), 130 Ctrl-C.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_REJECTED = 4
EXIT_TARGET_MISSED = 5
EXIT_INTERRUPTED = 130

# ------------------------------------------------------------ the session

DEFAULT_CHALLENGE: tuple[str, ...] = ("happy", "surprise")  # the paper's two most reliable expressions
DEFAULT_HOLD_FRAMES = 3  # consecutive frames an asked expression must hold
DEFAULT_STEP_TIMEOUT_S = 5.0  # seconds per challenge step
DEFAULT_MAX_MISSING_FRAMES = 2  # frames a face may vanish for before NO_FACE
DEFAULT_FPS = 10.0  # the frame rate of a folder or list of frames
DEFAULT_MAX_FAILURES = 5  # failed attempts that lock a user out ...
DEFAULT_LOCKOUT_WINDOW_S = 300.0  # ... within this many seconds
DEFAULT_DB = "facelive.db"  # the template database of the CLI and the demo

# -------------------------------------------------------- environment

DATA_ENV = "FACELIVE_DATA"  # the face data root (lfw/, fer2013/, jaffe/, ...)
DETECTOR_ENV = "FACELIVE_DETECTOR"  # the YuNet .onnx file
BUNDLE_ENV = "FACELIVE_BUNDLE"  # the model bundle folder
PUBLIC_KEY_ENV = "FACELIVE_BUNDLE_PUBLIC_KEY"  # require bundles signed by this Ed25519 key
CACHE_ENV = "FACELIVE_CACHE"  # the face and peer-model cache

# ------------------------------------------------------------ parity gates


@dataclass(frozen=True)
class ParityGate:
    """What an exported file must reach against the torch model on the same real aligned faces."""

    cosine_mean: float
    cosine_min: float | None = None
    top1_agreement: float | None = None

    def describe(self) -> str:
        """The gate in words, e.g. ``cosine mean >= 0.995, min >= 0.98, expression top-1 agreement >= 99 %``."""
        parts = [f"embedding cosine mean >= {self.cosine_mean:g}"]
        if self.cosine_min is not None:
            parts.append(f"min >= {self.cosine_min:g}")
        if self.top1_agreement is not None:
            parts.append(f"expression top-1 agreement >= {self.top1_agreement * 100:g} %")
        return ", ".join(parts)


PARITY_GATES: dict[str, ParityGate] = {
    "fp32": ParityGate(cosine_mean=0.9999),
    "fp16": ParityGate(cosine_mean=0.999),
    "int8": ParityGate(cosine_mean=0.995, cosine_min=0.98, top1_agreement=0.99),
}


def gates_help() -> str:
    """One line per precision, for help texts."""
    return "\n".join(f"  {p:<5} {g.describe()}" for p, g in PARITY_GATES.items())

