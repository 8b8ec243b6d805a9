"""The GEMM peak: every engine that times a row, sampled at the start and end of the run and between a row's
timed calls, folded into the run's peak (issue 16); a float32 row's fraction of it cannot pass 100 %."""

from __future__ import annotations

import numpy as np
import pytest

from facelivenet.benchmarks import machine
from facelivenet.benchmarks.jobs import run_job
from facelivenet.benchmarks.latency import time_interleaved
from facelivenet.benchmarks.machine import (ENGINE_OF_FORMAT, GEMM_SAMPLES_PER_ROW, achieved, engines_for,
                                            fold_row_peaks, gemm_sampler, row_achieved)
from facelivenet.edge_runtime.bundle import resolve_bundle_dir
from facelivenet.edge_runtime.manifest import FORMATS, load_manifest


def test_between_runs_before_the_first_round_after_every_k_rounds_and_at_the_end():
    calls: list[str] = []
    time_interleaved([lambda: calls.append("m")], runs=10, warmup=2, between=lambda: calls.append("g"), every=4)
    assert "".join(calls) == "mm" + "gmmmm" + "gmmmm" + "gmm" + "g"


def test_gemm_sampler_counts_two_n_cubed_flops_per_product():
    sample, samples = gemm_sampler(64)
    for _ in range(3):
        sample()
    assert len(samples) == 3 and all(v > 0 for v in samples)


def test_a_row_samples_the_peak_inside_its_own_process(tmp_path):
    bundle = resolve_bundle_dir(None)
    manifest = load_manifest(bundle)
    f = manifest.file_for("onnx", "fp32")
    x = tmp_path / "x.npy"
    size = manifest.preprocess.input_size
    np.save(x, np.zeros((1, 3, size, size), np.float32))
    out = run_job({"kind": "bundle_file", "format": "onnx", "path": str(bundle / f.path), "threads": 1, "runs": 10,
                   "warmup": 1, "input": str(x), "gemm_n": 128})
    every = 10 // GEMM_SAMPLES_PER_ROW
    assert len(out["gemm_gflops_samples"]) == -(-10 // every) + 1  # before rounds 0, every, 2 every ..., and at the end


def test_row_samples_raise_the_peak_so_a_slow_start_sample_cannot_push_a_row_past_it():
    m = {"peak_gflops_samples": {"1": [50.0, 60.0]}, "peak_gflops_by_engine": {"onnxruntime": {"1": 60.0}},
         "peak_gflops_by_threads": {"1": 60.0}, "gemm": {}}
    rows = [{"format": "onnx", "threads": 1, "gemm_gflops_samples": [90.0, 100.0]}, {"format": "onnx", "threads": 1}]
    fold_row_peaks(m, rows)
    assert m["peak_gflops"] == 100.0 and m["peak_gflops_samples"]["1"] == [50.0, 60.0, 100.0]
    # a row timed at 80 GFLOP/s would have read 133 % of the start/end peak alone
    assert achieved(80e6, 1.0, m["peak_gflops"])["fraction_of_peak"] == 0.8


# GEMM GFLOP/s of each engine as on an AVX-512 x86 machine whose numpy OpenBLAS runs its 256-bit kernels
ENGINE_GFLOPS = {"numpy": 110.0, "onnxruntime": 200.0, "litert": 210.0, "torch": 90.0}
FLOPS = 205.87e6


def _row(fmt: str, precision: str, variant: str, gflops: float) -> dict:
    return {"format": fmt, "precision": precision, "variant": variant, "threads": 1,
            "latency_ms": {"median": FLOPS / gflops / 1e6}}


def test_a_float32_row_cannot_pass_the_peak_by_construction(monkeypatch):
    """Each float32 row runs at 95 % of ITS runtime's GEMM (dense convolutions come close to it): the peak holds
    every runtime's GEMM, so no fraction passes 1. A numpy-only peak read 173-181 % for ONNX and TFLite here."""
    monkeypatch.setattr(machine, "peak_gflops", lambda t, n, r, engine: ENGINE_GFLOPS[engine])
    monkeypatch.setattr(machine, "engine_available", lambda engine: True)
    m = machine.machine_section([1], quick=True, engines=engines_for(["onnx", "tflite", "torch"]))
    rows = [_row(fmt, precision, variant, 0.95 * ENGINE_GFLOPS[ENGINE_OF_FORMAT[fmt]])
            for fmt in ("onnx", "tflite") for precision, variant in (("fp32", ""), ("int8", ""))]
    rows.append(_row("torch", "fp32", "", 0.95 * ENGINE_GFLOPS["torch"]))
    for row in rows:
        got = row_achieved(row, FLOPS, m)
        assert got["arithmetic"] == "float32" and 0 < got["fraction_of_peak"] <= 1.0, (row, got)
    assert m["peak_gflops"] == 210.0 and m["peak_engine_by_threads"] == {"1": "litert"}
    assert m["peak_gflops_by_engine"]["numpy"] == {"1": 110.0}
    numpy_only = achieved(FLOPS, rows[0]["latency_ms"]["median"], ENGINE_GFLOPS["numpy"])["fraction_of_peak"]
    assert numpy_only > 1.7  # the fault this guards against


def test_every_runtime_that_times_a_row_is_one_of_the_peaks_engines():
    runnable = [f for f in FORMATS if f != "coreml"]  # coreml: macOS only, no engine: no fraction (below)
    assert set(runnable) <= set(ENGINE_OF_FORMAT)
    assert set(engines_for([*runnable, "torch"])) == {"numpy", *ENGINE_OF_FORMAT.values()}
    assert "torch" not in engines_for(runnable)  # the device benchmark never imports torch


def test_rows_the_fp32_peak_does_not_bound_get_no_fraction():
    m = {"peak_gflops_by_engine": {"numpy": {"1": 100.0}, "onnxruntime": {"1": 100.0}},
         "peak_gflops_by_threads": {"1": 100.0}}
    static = row_achieved(_row("onnx", "int8", "static", 400.0), FLOPS, m)  # int8 activations: VNNI, dot products
    assert static["fraction_of_peak"] is None and static["arithmetic"] == "int8" and static["gflops"] > 100
    weights_only = row_achieved(_row("onnx", "int8", "", 80.0), FLOPS, m)  # weights dequantised: float compute
    assert weights_only["fraction_of_peak"] == pytest.approx(0.8, abs=1e-3)
    tflite = row_achieved(_row("tflite", "fp32", "", 80.0), FLOPS, m)  # litert's GEMM was not measured
    assert tflite["fraction_of_peak"] is None and "tflite" in tflite["no_fraction"]


@pytest.mark.parametrize("engine", machine.ENGINES)
def test_each_engine_computes_the_product_it_times(engine):
    """The ONNX model and the .tflite file are written by hand: they multiply what the FLOP count says."""
    if not machine.engine_available(engine):
        pytest.skip(f"{engine} is not installed")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((48, 48), dtype=np.float32), rng.standard_normal((48, 48), dtype=np.float32)
    product = machine.PRODUCTS[engine](a, b, 1)
    got = product()
    if engine == "litert":
        interpreter = product.__self__
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    elif engine == "onnxruntime":
        got = got[-1]
    np.testing.assert_allclose(np.asarray(got), a @ b, rtol=1e-4, atol=1e-4)
    assert machine.gemm_gflops(48, 1, engine=engine, threads=1) > 0


def test_an_engine_that_cannot_run_is_left_out_and_its_rows_get_no_fraction(monkeypatch):
    def peak(t, n, r, engine):
        if engine == "litert":  # e.g. a legacy tflite_runtime board: no schema module to write the GEMM file
            raise machine.EngineUnavailable("no schema")
        return ENGINE_GFLOPS[engine]

    monkeypatch.setattr(machine, "peak_gflops", peak)
    monkeypatch.setattr(machine, "engine_available", lambda engine: True)
    m = machine.machine_section([1], quick=True, engines=engines_for(["onnx", "tflite"]))
    assert set(m["peak_gflops_by_engine"]) == {"numpy", "onnxruntime"} and "litert" not in m["gemm"]["note"]
    assert row_achieved(_row("tflite", "fp32", "", 150.0), FLOPS, m)["fraction_of_peak"] is None

    def unavailable(a, b, threads):
        raise machine.EngineUnavailable("no schema")

    monkeypatch.setitem(machine.PRODUCTS, "litert", unavailable)
    monkeypatch.setattr(machine, "loaded_engines", lambda: ("litert",))
    sample, samples = gemm_sampler(32)  # a row's process: its runtime's GEMM cannot be written; numpy's is timed
    sample()
    assert len(samples) == 1 and samples[0] > 0
    with pytest.raises(machine.EngineUnavailable):
        machine.gemm_gflops(32, 1, engine="litert")  # never numpy's GEMM under litert's name
