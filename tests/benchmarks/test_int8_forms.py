"""The int8 forms table of facelive-bench (issue 17): fp32 / weight-only / static side by side."""

from __future__ import annotations


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
