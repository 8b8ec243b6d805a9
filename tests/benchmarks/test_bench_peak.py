"""The GEMM peak: sampled between a row's timed calls and folded into the run's peak (issue 16)."""

from __future__ import annotations

import numpy as np

from facelivenet.benchmarks.jobs import run_job
from facelivenet.benchmarks.latency import time_interleaved
from facelivenet.benchmarks.machine import GEMM_SAMPLES_PER_ROW, achieved, fold_row_peaks, gemm_sampler
from facelivenet.edge_runtime.bundle import resolve_bundle_dir
from facelivenet.edge_runtime.manifest import load_manifest


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
    machine = {"peak_gflops_samples": {"1": [50.0, 60.0]}, "peak_gflops_by_threads": {"1": 60.0}, "gemm": {}}
    rows = [{"threads": 1, "gemm_gflops_samples": [90.0, 100.0]}, {"threads": 1}]
    fold_row_peaks(machine, rows)
    assert machine["peak_gflops"] == 100.0 and machine["peak_gflops_samples"]["1"] == [50.0, 60.0, 100.0]
    # a row timed at 80 GFLOP/s would have read 133 % of the start/end peak alone
    assert achieved(80e6, 1.0, machine["peak_gflops"])["fraction_of_peak"] == 0.8
