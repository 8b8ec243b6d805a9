"""The int8 forms table of facelive-bench (issue 17): fp32 / weight-only / static side by side."""

from __future__ import annotations

import pytest


def test_int8_forms_table_and_target():
    from facelivenet.benchmarks.int8_forms import TARGET_SPEEDUP, form_name, markdown_lines

    assert form_name("fp32", "") == "fp32" and form_name("int8", "") == "int8 weights only"
    assert form_name("int8", "static") == "int8 static"
    rows = [{"format": "onnx", "form": "fp32", "path": "model.onnx", "threads": 1, "median_ms": 2.4, "p90_ms": 2.5,
             "speedup_vs_fp32": 1.0},
            {"format": "onnx", "form": "int8 static", "path": "model_int8_static.onnx", "threads": 1,
             "median_ms": 1.0, "p90_ms": 1.1, "speedup_vs_fp32": 2.4}]
    section = {"measured": True, "method": "interleaved", "rows": rows,
               "target": {"text": f">= {TARGET_SPEEDUP}x", "holds": True,
                          "best": {"format": "onnx", "path": "model_int8_static.onnx", "speedup_vs_fp32": 2.4}}}
    text = "\n".join(markdown_lines(section))
    assert "| onnx | int8 static | model_int8_static.onnx | 1 | 1.000 | 1.100 | 2.40x |" in text
    assert ": yes (model_int8_static.onnx: 2.40x)" in text
    assert "not measured (no int8" in "\n".join(markdown_lines({"measured": False, "reason": "no int8 file"}))
    assert markdown_lines(None) == []


def _row(fmt: str, precision: str, variant: str, path: str) -> dict:
    lat = {"median": 1.0, "p95": 1.1, "p99": 1.2}
    return {"format": fmt, "precision": precision, "variant": variant, "path": path, "threads": 1, "size_bytes": 1,
            "load_ms": 1.0, "latency_ms": lat, "rss_mb": 50.0, "achieved": {}, "parity": {}, "accuracy": {},
            "export_parity": {"cosine_mean": 0.999, "cosine_min": 0.99, "faces": 3, "passed": True}}


def test_every_table_and_plot_names_the_two_int8_files_apart(monkeypatch):
    """The rows table, the device's at-export table, the skipped list and the latency plot all label a file by
    form_name: "int8 static" (int8 activations) and "int8 weights only" (weight-only, float compute)."""
    from facelivenet.benchmarks import plots, report

    rows = [_row("onnx", "fp32", "", "model.onnx"), _row("onnx", "int8", "static", "model_int8_static.onnx"),
            _row("onnx", "int8", "", "model_int8.onnx")]
    result = {"mode": "edge", "quick": True, "machine": {"cpu": "X", "peak_gflops_by_threads": {"1": 50.0}},
              "model": {}, "config": {"runs": 3, "warmup": 1}, "rows": rows, "reference": {"count": 4},
              "pipeline": {"measured": False, "reason": "-"},
              "skipped": [{"format": "tflite", "precision": "int8", "variant": "static", "reason": "no runtime"}]}
    md = report.markdown(result)
    for label in ("fp32", "int8 static", "int8 weights only"):
        assert md.count(f"| onnx | {label} | 1 |") == 1  # the rows table
        assert md.count(f"| onnx | {label} | 3 |") == 1  # the at-export parity table (faces = 3)
    assert "- skipped tflite int8 static: no runtime" in md
    pytest.importorskip("matplotlib")
    seen = {}

    def keep(fig, path):
        seen["labels"] = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        return path

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_latency(result, "unused.png")
    assert seen["labels"] == ["onnx fp32\n1 thr", "onnx int8 static\n1 thr", "onnx int8 weights only\n1 thr"]
