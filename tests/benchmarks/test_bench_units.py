"""Small pieces: thread lists, process resources, the machine peak, the measuring child process, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facelivenet.benchmarks import report
from facelivenet.benchmarks.config import BenchConfig, parse_threads
from facelivenet.benchmarks.errors import BenchError
from facelivenet.benchmarks.machine import achieved, gemm_gflops, peak_gflops
from facelivenet.benchmarks.pipeline import PipelineRun, pipeline_section
from facelivenet.benchmarks.resources import cpu_model, peak_rss_mb, rss_mb, thread_count
from facelivenet.benchmarks.worker import run_isolated


def test_parse_threads():
    assert parse_threads("2,1, 2") == (1, 2)
    for bad in ("", "0", "1,x", "-1", "1.5"):
        with pytest.raises(BenchError, match="--threads"):
            parse_threads(bad)


def test_config_defaults_follow_quick():
    full, quick = BenchConfig(Path("b")), BenchConfig(Path("b"), quick=True)
    assert full.timed_runs >= 200 and quick.timed_runs < full.timed_runs
    assert BenchConfig(Path("b"), quick=True, runs=7).timed_runs == 7
    d = quick.to_dict()
    assert d["bundle"] == "b" and d["runs"] == quick.timed_runs and json.dumps(d)


def test_process_resources():
    assert rss_mb() is None or rss_mb() > 1
    assert peak_rss_mb() >= (rss_mb() or 0) - 1
    assert thread_count() is None or thread_count() >= 1
    assert cpu_model()


def test_gemm_peak_and_achieved_fraction():
    assert gemm_gflops(128, 2) > 0.01
    assert peak_gflops(1, n=256, repeats=2) > 0.01  # through threadpoolctl or a child process
    a = achieved(205.9e6, 4.0, 100.0)
    assert a["gflops"] == pytest.approx(51.475) and a["fraction_of_peak"] == pytest.approx(0.5148, abs=1e-4)
    assert achieved(1e9, 10.0, None)["fraction_of_peak"] is None


def test_child_process_reports_errors_in_one_line(tmp_path):
    with pytest.raises(BenchError, match="unknown benchmark job kind") as exc:
        run_isolated({"kind": "nope", "threads": 1})
    assert "\n" not in str(exc.value)
    missing = {"kind": "bundle_file", "format": "onnx", "path": str(tmp_path / "gone.onnx"), "threads": 1,
               "runs": 1, "warmup": 0, "input": str(tmp_path / "gone.npy")}
    with pytest.raises(BenchError):
        run_isolated(missing)


def test_pipeline_slot():
    assert pipeline_section(None, 3, 1, 1) == {"measured": False, "reason": pytest.approx(report_reason())}
    calls = []
    run = PipelineRun(lambda: calls.append("f") or {"detect": 1.0, "model": 2.0}, "tflite/int8/static")
    out = pipeline_section(run, 3, 1, 1)
    assert out["measured"] and set(out["stages"]) == {"detect", "model"} and out["frame_latency_ms"]["runs"] == 3
    assert len(calls) == 4 and out["stages"]["model"]["runs"] == 3 and out["stages_ms"] == {"detect": 1.0, "model": 2.0}
    assert out["model_file"] == "tflite/int8/static"


def report_reason() -> str:
    from facelivenet.benchmarks.pipeline import NOT_PLUGGED_IN

    return NOT_PLUGGED_IN


def _lat(median: float) -> dict:
    return {"median": median, "p95": median * 1.1, "p99": median * 1.2}


def test_ratios_and_targets():
    rows = [{"format": "onnx", "precision": "int8", "threads": 1, "latency_ms": _lat(5.0)}]
    peers = [
        {"name": "mobilefacenet", "precision": "int8", "threads": 1, "latency_ms": _lat(20.0),
         "reference_latency_ms": _lat(4.0)},  # paired: 4 / 20
        {"name": "two_model_pipeline", "precision": "int8", "threads": 1, "latency_ms": _lat(8.0)},  # rows: 5 / 8
    ]
    report.add_ratios(peers, report.our_medians(rows))
    assert peers[0]["ratio_vs_ours"] == pytest.approx(0.2) and peers[0]["ratio_method"] == "paired"
    assert peers[1]["ratio_vs_ours"] == pytest.approx(0.625) and peers[1]["ratio_method"] == "rows"
    t = {x["peer"]: x for x in report.targets(peers, [1])}
    assert t["mobilefacenet"]["holds"] is True and t["two_model_pipeline"]["holds"] is False
    missing = [x for x in report.targets(peers, [2]) if x["holds"] is None]
    assert len(missing) == 2 and all("reason" in x for x in missing)


def test_machine_section_always_has_the_single_thread_peak(monkeypatch):
    from facelivenet.benchmarks import machine

    monkeypatch.setattr(machine, "peak_gflops", lambda t, n, r, engine: 10.0 * t)
    m = machine.machine_section([2], quick=True, engines=("numpy",))
    assert m["peak_gflops"] == 10.0 and m["peak_gflops_by_threads"] == {"1": 10.0, "2": 20.0}
    assert m["threads"] == [2] and m["cpu"]


def test_markdown_lists_rows_peers_targets_and_notes():
    result = {
        "quick": True, "machine": {"cpu": "X", "logical_cpus": 2, "peak_gflops_by_threads": {"1": 50.0}},
        "model": {"params": 1_300_000, "flops": 205_900_000}, "config": {"runs": 30, "warmup": 5},
        "rows": [{"format": "onnx", "precision": "int8", "variant": "static", "threads": 1, "size_bytes": 1_600_000,
                  "load_ms": 10.0, "latency_ms": _lat(5.0), "rss_mb": 60.0,
                  "achieved": {"gflops": 41.2, "arithmetic": "int8", "fraction_of_peak": None},
                  "parity": {"cosine_mean": 0.9999, "cosine_min": 0.999, "expression_top1_agreement": 0.95,
                             "passed": False}, "accuracy": {"lfw": {"accuracy": 0.9}}}],
        "peers": [{"name": "mobilefacenet", "precision": "int8", "threads": 1, "input_size": 112, "params": 1_000_000,
                   "flops": 440_000_000, "latency_ms": _lat(20.0), "ratio_vs_ours": 0.25}],
        "targets": report.targets([{"name": "mobilefacenet", "precision": "int8", "threads": 1,
                                    "ratio_vs_ours": 0.25}], [1]),
        "pipeline": {"measured": False, "reason": "not yet"}, "skipped": [{"format": "coreml", "reason": "absent"}],
        "notes": ["QUICK run"],
    }
    md = report.markdown(result)
    assert md.startswith("# facelive-bench (QUICK")
    assert "| onnx | int8 static | 1 | 1.60 MB |" in md and "| 41.2 (int8 ops) |" in md
    assert "FAIL" in md and "90.0%" in md
    assert "| mobilefacenet | int8 | 1 | 112 |" in md and "0.250x" in md
    assert "| yes |" in md and "skipped coreml: absent" in md and "- QUICK run" in md


def test_lfw_pairs_index_their_images(data_root):
    from facelivenet.benchmarks.accuracy import lfw_pairs

    if not (data_root / "lfw" / "pairs.txt").is_file():
        pytest.skip("LFW absent from the data folder")
    full, quick = lfw_pairs(data_root / "lfw"), lfw_pairs(data_root / "lfw", per_fold=5)
    assert len(full.labels) == 6000 and full.subset is None and len(set(full.folds)) == 10
    assert len(quick.labels) == 100 and quick.labels.sum() == 50 and "5 same" in quick.subset
    assert max(full.left.max(), full.right.max()) == len(full.images) - 1


def test_peak_keeps_the_best_sample(monkeypatch):
    from facelivenet.benchmarks import machine

    samples = iter([10.0, 20.0, 30.0, 5.0])  # start: 1 and 2 threads; end: 1 and 2 threads
    monkeypatch.setattr(machine, "peak_gflops", lambda t, n, r, engine: next(samples))
    m = machine.machine_section([2], quick=True, engines=("numpy",))
    machine.remeasure(m)
    assert m["peak_gflops_samples"] == {"1": [10.0, 30.0], "2": [20.0, 5.0]}
    assert m["peak_gflops"] == 30.0 and m["peak_gflops_by_threads"] == {"1": 30.0, "2": 20.0}


def test_deltas_are_the_file_minus_the_torch_model_per_task():
    from facelivenet.benchmarks.accuracy import add_deltas

    torch_acc = {"lfw": {"accuracy": 0.90}, "fer2013": {"accuracy": 0.55}, "authentication_jaffe": {"acc_g": 0.816}}
    file_acc = {"lfw": {"accuracy": 0.88}, "authentication_jaffe": {"acc_g": 0.820}, "fer2013": {"skipped": "x"}}
    add_deltas(file_acc, torch_acc)
    assert file_acc["delta_vs_torch"] == pytest.approx({"lfw": -0.02, "authentication_jaffe": 0.004})
    nothing: dict = {"skipped": "quick"}
    add_deltas(nothing, torch_acc)
    assert "delta_vs_torch" not in nothing
