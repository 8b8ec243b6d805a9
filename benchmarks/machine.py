"""The machine's measured fp32 peak and how much of it our model achieves.

Peak: the best float32 matrix product (2 n^3 FLOPs: a multiply-add counts as two
FLOPs, as in the model's count) this machine runs through EVERY engine that times
a row, at each thread count: numpy's BLAS, onnxruntime (a one-node MatMul, the
runtime's session options), LiteRT (a FULLY_CONNECTED, its default XNNPACK
delegate) and, in the full benchmark, torch (:data:`ENGINE_OF_FORMAT`). One BLAS
alone is no bound: on an AVX-512 x86 machine numpy's OpenBLAS may dispatch its
256-bit (Haswell) kernels while onnxruntime's MLAS and XNNPACK run 512-bit ones,
at twice the rate, so the model's convolutions came out at 104-140 % of a
numpy-only peak. Each engine is sampled at the start and end of the run (n x n,
best of ``repeats``) and inside each timed row's own process between its model's
timed calls with the row's own runtime (:func:`gemm_sampler`, a smaller n that
stays in cache), so a load that slowed the model slowed a peak sample too; the
peak is the best of all these samples. numpy's thread count is set with
``threadpoolctl`` when it is installed, else through ``OPENBLAS_NUM_THREADS`` /
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` in a child process (numpy reads them
only at import); the other engines take it through their own API.

Achieved: FLOPs of one forward pass (``training.flops``, multiply and add
counted separately) / median latency, as a fraction of the peak only for rows
that compute in float32 (fp32 files and weight-only int8 ones, whose weights are
dequantised to float) run by an engine the peak measured: static int8 files
multiply int8 activations (several times the float rate) and are not bounded by
a float32 peak (:func:`row_achieved`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from facelivenet.edge_runtime.constants import FORMAT_TABLE

from .int8_forms import float32_compute
from .resources import cpu_model

log = logging.getLogger(__name__)

GEMM_N = 2048
GEMM_REPEATS = 5
QUICK_GEMM_N = 1536
QUICK_GEMM_REPEATS = 3


GEMM_SAMPLES_PER_ROW = 3
ROW_GEMM_N = 512  # in-row samples: short next to the row's timed calls, 1 MiB a matrix (the row's RSS)

# The engine whose GEMM bounds a row of each format (the runtime that times the row); numpy's BLAS is
# measured too. A format without one (coreml) gets no fraction of the peak.
ENGINE_OF_FORMAT = {**{f: spec.engine for f, spec in FORMAT_TABLE.items() if spec.engine}, "torch": "torch"}
ENGINES = ("numpy", "onnxruntime", "litert", "torch")
# module that, once imported in a row's process, shows which runtime the row runs (in-row samples)
_LOADED = {"onnxruntime": ("onnxruntime",), "litert": ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"),
           "torch": ("torch",)}
PEAK_NOTE = ("fp32 peak: the best float32 n x n matrix product (2 n^3 FLOPs, a multiply-add = 2 FLOPs as in the "
             "model's count) of every engine that times a row ({engines}), at the same thread count, sampled at the "
             "start and end of the run (n={n}) and inside each row's process between its timed calls with the row's "
             "own runtime (n<={row_n}); the best sample counts. Fraction of peak only for rows in float32 arithmetic "
             "run by one of these engines: int8 static files compute in int8 and are not bounded by it.")


class EngineUnavailable(RuntimeError):
    """The engine's runtime is not installed here."""


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        low, v = v & 0x7F, v >> 7
        out.append(low | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _pb(field: int, value: int | str | bytes) -> bytes:
    """One protobuf field: an int as a varint, text or bytes length-delimited."""
    if isinstance(value, int):
        return _varint(field << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def onnx_matmul_model(b: np.ndarray) -> bytes:
    """A serialized ONNX model ``C = A @ B`` (float32 A: n x n input, B: initializer), written without the
    ``onnx`` package (a board has only onnxruntime)."""
    n = int(b.shape[0])

    def value_info(name: str) -> bytes:
        dim = _pb(1, _pb(1, n))  # TensorShapeProto.dim { dim_value }
        return _pb(1, name) + _pb(2, _pb(1, _pb(1, 1) + _pb(2, dim + dim)))  # type.tensor_type {FLOAT, shape}

    init = _pb(1, n) + _pb(1, n) + _pb(2, 1) + _pb(8, "B") + _pb(9, np.ascontiguousarray(b, "<f4").tobytes())
    node = _pb(1, "A") + _pb(1, "B") + _pb(2, "C") + _pb(4, "MatMul")
    graph = _pb(1, node) + _pb(2, "gemm") + _pb(5, init) + _pb(11, value_info("A")) + _pb(12, value_info("C"))
    return _pb(1, 8) + _pb(8, _pb(1, "") + _pb(2, 17)) + _pb(7, graph)  # ir_version 8, opset 17


def tflite_fc_model(b: np.ndarray) -> bytes:
    """A .tflite flatbuffer ``C = A @ B``: one float32 FULLY_CONNECTED (weights = B transposed, constant)."""
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as s
    except ImportError as exc:  # a legacy tflite_runtime install has no schema module
        raise EngineUnavailable(f"cannot write a .tflite GEMM here: {exc}") from exc

    n = int(b.shape[0])
    weights = s.BufferT()
    weights.data = np.ascontiguousarray(b.T, np.float32).view(np.uint8).ravel()  # FC: y = x W^T, W [out, in]

    def tensor(name: str, buffer: int):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [n, n], s.TensorType.FLOAT32, buffer
        return t

    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, -1], [2]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT()
    graph = s.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = [tensor("A", 0), tensor("B", 1), tensor("C", 0)], \
        [op], [0], [2]
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [s.BufferT(), weights]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _import(*names: str):
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise EngineUnavailable(f"none of {', '.join(names)} is installed")


def _numpy_product(a: np.ndarray, b: np.ndarray, threads: int | None) -> Callable[[], Any]:
    out = np.empty_like(a)  # threads: set by the environment or threadpoolctl (peak_gflops)
    return lambda: np.matmul(a, b, out=out)


def _onnxruntime_product(a: np.ndarray, b: np.ndarray, threads: int | None) -> Callable[[], Any]:
    ort = _import("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = max(1, threads or 1), 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as edge_runtime.backends
    opts.log_severity_level = 3
    session = ort.InferenceSession(onnx_matmul_model(b), opts, providers=["CPUExecutionProvider"])
    out = np.empty_like(a)
    a_value = ort.OrtValue.ortvalue_from_numpy(a)  # a view of ``a``: both kept alive by the closure
    binding = session.io_binding()  # no output allocation or copy inside the timed call
    binding.bind_ortvalue_input("A", a_value)
    binding.bind_output("C", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)

    def product() -> tuple[Any, ...]:
        session.run_with_iobinding(binding)
        return a, a_value, out

    return product


def _litert_product(a: np.ndarray, b: np.ndarray, threads: int | None) -> Callable[[], Any]:
    interp = _import("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
    interpreter = interp.Interpreter(model_content=tflite_fc_model(b), num_threads=max(1, threads or 1))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], a)
    return interpreter.invoke


def _torch_product(a: np.ndarray, b: np.ndarray, threads: int | None) -> Callable[[], Any]:
    torch = _import("torch")
    if threads:  # in a row's process the job set torch's threads already (threads None)
        torch.set_num_threads(int(threads))
    ta, tb, out = torch.from_numpy(a), torch.from_numpy(b), torch.empty(a.shape, dtype=torch.float32)
    return lambda: torch.mm(ta, tb, out=out)


PRODUCTS: dict[str, Callable[[np.ndarray, np.ndarray, int | None], Callable[[], Any]]] = {
    "numpy": _numpy_product, "onnxruntime": _onnxruntime_product, "litert": _litert_product, "torch": _torch_product,
}


def engines_for(formats: Sequence[str]) -> tuple[str, ...]:
    """numpy and the engine of each format (the runtime that times its rows), in :data:`ENGINES` order."""
    wanted = {"numpy", *(ENGINE_OF_FORMAT[f] for f in formats if f in ENGINE_OF_FORMAT)}
    return tuple(e for e in ENGINES if e in wanted)


def loaded_engines() -> tuple[str, ...]:
    """The engines whose runtime this process has imported (a row's process: the row's runtime); numpy if none."""
    found = tuple(e for e, modules in _LOADED.items() if any(m in sys.modules for m in modules))
    return found or ("numpy",)


def _env_threads() -> int:
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))  # a row's process: the job's (worker.thread_env)
    except ValueError:
        return 1


def gemm_sampler(n: int = GEMM_N, seed: int = 0, engines: Sequence[str] | None = None,
                 threads: int | None = None) -> tuple[Callable[[], None], list[float]]:
    """(a call that times one float32 (n x n) @ (n x n) product through each engine and records the best,
    the GFLOP/s of each call so far). ``engines`` None: the runtimes this process runs (:func:`loaded_engines`),
    at ``threads`` (None: ``$OMP_NUM_THREADS``, as a row's process sets it; torch keeps its own setting)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    products = []
    auto, engines = engines is None, tuple(engines or loaded_engines())
    for engine in engines:
        try:
            products.append(PRODUCTS[engine](a, b, threads if threads or engine == "torch" else _env_threads()))
        except EngineUnavailable:
            log.debug("GEMM engine %s not installed", engine)
    if not products:
        if not auto:
            raise EngineUnavailable(f"no GEMM engine of {', '.join(engines)} is installed")
        products.append(_numpy_product(a, b, threads))  # a row's process always has numpy
    samples: list[float] = []

    def sample() -> None:
        best = 0.0
        for product in products:
            with np.errstate(all="ignore"):  # emulators may raise spurious FP flags in BLAS kernels; timing only
                start = time.perf_counter()
                product()
                best = max(best, 2.0 * n**3 / (time.perf_counter() - start) / 1e9)
        samples.append(best)

    return sample, samples


def gemm_gflops(n: int = GEMM_N, repeats: int = GEMM_REPEATS, seed: int = 0, engine: str = "numpy",
                threads: int | None = None) -> float:
    """Best GFLOP/s of ``repeats`` float32 (n x n) @ (n x n) products of ``engine`` in this process (one untimed
    first)."""
    sample, samples = gemm_sampler(n, seed, (engine,), threads)
    for _ in range(max(1, repeats) + 1):
        sample()
    return max(samples[1:])


def thread_control() -> str:
    """How numpy's GEMM thread count is set: ``threadpoolctl`` or ``environment`` (a child process)."""
    return "threadpoolctl" if importlib.util.find_spec("threadpoolctl") else "environment"


def engine_available(engine: str) -> bool:
    """Whether ``engine``'s runtime can be imported here (without importing it)."""
    modules = {"numpy": ("numpy",), **_LOADED}[engine]
    return any(importlib.util.find_spec(m.split(".")[0]) is not None for m in modules)


def peak_gflops(threads: int, n: int = GEMM_N, repeats: int = GEMM_REPEATS, engine: str = "numpy") -> float:
    """Peak fp32 GFLOP/s of ``engine``'s GEMM at ``threads`` threads."""
    if engine == "torch":
        import torch

        saved = torch.get_num_threads()
        try:
            return gemm_gflops(n, repeats, engine=engine, threads=threads)
        finally:
            torch.set_num_threads(saved)
    if engine != "numpy":
        return gemm_gflops(n, repeats, engine=engine, threads=threads)
    if thread_control() == "threadpoolctl":
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(threads)):
            return gemm_gflops(n, repeats)
    from .worker import run_isolated

    return float(run_isolated({"kind": "gemm", "threads": int(threads), "n": n, "repeats": repeats})["gflops"])


def _engine_version(engine: str) -> str:
    if engine == "numpy":
        return "numpy " + np.__version__
    try:
        module = _import(*{"litert": ("ai_edge_litert", "tflite_runtime")}.get(engine, (engine,)))
    except EngineUnavailable:
        return engine
    return f"{module.__name__} {getattr(module, '__version__', '?')}"


def machine_section(threads: Sequence[int], quick: bool = False, n: int | None = None,
                    engines: Sequence[str] = ENGINES) -> dict[str, Any]:
    """``{"cpu", "threads", "peak_gflops", ...}``: the peak at one thread and at each of ``threads``, the best of
    ``engines`` (those installed; ``n``: the GEMM size, smaller for a slow board or an emulator)."""
    default_n, repeats = (QUICK_GEMM_N, QUICK_GEMM_REPEATS) if quick else (GEMM_N, GEMM_REPEATS)
    n = n or default_n
    peaks = _peaks(threads, n, repeats, [e for e in engines if engine_available(e)])
    measured = list(peaks)  # an engine that could not run is left out: its rows get no fraction
    machine: dict[str, Any] = {
        "cpu": cpu_model(),
        "threads": list(threads),
        "peak_gflops_threads": 1,
        "peak_gflops_by_engine": {},
        "peak_gflops_samples": {},
        "logical_cpus": os.cpu_count(),
        "gemm": {"n": n, "row_n": min(n, ROW_GEMM_N), "repeats": repeats, "dtype": "float32",
                 "engines": {e: _engine_version(e) for e in measured}, "library": "numpy " + np.__version__,
                 "thread_control": thread_control(),
                 "statistic": "best of repeats per engine; best engine; best of the samples taken at the start and "
                              "end of the run and inside each timed row's process (a lower sample means other load)",
                 "note": PEAK_NOTE.format(engines=", ".join(measured), n=n, row_n=min(n, ROW_GEMM_N))},
    }
    _add_samples(machine, peaks)
    return machine


def remeasure(machine: dict[str, Any]) -> None:
    """Sample the peak again (at the end of a run) and keep the best sample per thread count."""
    gemm = machine["gemm"]
    engines = list(machine["peak_gflops_by_engine"])
    _add_samples(machine, _peaks(machine["threads"], gemm["n"], gemm["repeats"], engines))


def fold_row_peaks(machine: dict[str, Any], rows: Sequence[dict[str, Any]]) -> None:
    """Add the GEMM samples taken inside each row's process by its own runtime (``gemm_gflops_samples``) to the
    peak per thread count: the peak is the best sample of the whole run, so no row's fraction of it rests on a
    slow sample."""
    for row in rows:
        got, engine = row.get("gemm_gflops_samples"), ENGINE_OF_FORMAT.get(row.get("format", ""))
        if got and engine in machine["peak_gflops_by_engine"]:
            _add_samples(machine, {engine: {str(row.get("threads")): round(max(got), 2)}})


def _add_samples(machine: dict[str, Any], by_engine: dict[str, dict[str, float]]) -> None:
    """Fold ``{engine: {threads: GFLOP/s}}`` into the per-engine bests, the samples and the peak per thread count."""
    for engine, peaks in by_engine.items():
        best = machine["peak_gflops_by_engine"].setdefault(engine, {})
        for t, v in peaks.items():
            best[t] = max(best.get(t, 0.0), v)
            machine["peak_gflops_samples"].setdefault(t, []).append(v)
    keys = sorted({t for peaks in machine["peak_gflops_by_engine"].values() for t in peaks}, key=int)
    machine["peak_gflops_by_threads"] = {t: max(p.get(t, 0.0) for p in machine["peak_gflops_by_engine"].values())
                                         for t in keys}
    machine["peak_engine_by_threads"] = {t: max(machine["peak_gflops_by_engine"],
                                                key=lambda e: machine["peak_gflops_by_engine"][e].get(t, 0.0))
                                         for t in keys}
    machine["peak_gflops"] = machine["peak_gflops_by_threads"].get("1")


def _peaks(threads: Sequence[int], n: int, repeats: int, engines: Sequence[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for engine in engines:
        try:
            out[engine] = {str(t): round(peak_gflops(t, n, repeats, engine), 2) for t in sorted({1, *threads})}
        except EngineUnavailable as exc:  # its rows get no fraction of the peak (row_achieved)
            log.warning("GEMM peak of %s not measured: %s", engine, exc)
            continue
        log.info("GEMM peak of %s: %s GFLOP/s by thread count", engine, out[engine])
    return out


def achieved(flops: int | float, median_ms: float, peak: float | None) -> dict[str, Any]:
    """Achieved GFLOP/s of a forward pass and its fraction of the measured peak."""
    gflops = float(flops) / (median_ms / 1000.0) / 1e9
    return {"gflops": round(gflops, 3), "fraction_of_peak": round(gflops / peak, 4) if peak else None}


def row_achieved(row: dict[str, Any], flops: int | float, machine: dict[str, Any]) -> dict[str, Any]:
    """:func:`achieved` of a timed row against the run's peak at its thread count; no fraction (and why) for a
    row that does not compute in float32 or whose runtime's GEMM the peak did not measure."""
    if not float32_compute(row["precision"], row.get("variant", "")):
        out = achieved(flops, row["latency_ms"]["median"], None)
        return {**out, "arithmetic": "int8",
                "no_fraction": "int8 arithmetic (int8 activations) is not bounded by the float32 GEMM peak"}
    engine = ENGINE_OF_FORMAT.get(row["format"])
    if engine not in machine.get("peak_gflops_by_engine", {}):
        out = achieved(flops, row["latency_ms"]["median"], None)
        return {**out, "arithmetic": "float32", "no_fraction": f"the peak did not measure {row['format']}'s runtime"}
    peak = machine["peak_gflops_by_threads"].get(str(row["threads"]))
    return {**achieved(flops, row["latency_ms"]["median"], peak), "arithmetic": "float32", "peak_gflops": peak}
