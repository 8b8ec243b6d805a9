"""facelive-export's command line: help, bad input (one line, nothing left behind), gate failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from facelivenet.export.cli import main

from .conftest import TINY_CALIB


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("facelive-export: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _assert_nothing_written(out_dir: Path) -> None:
    assert not out_dir.exists()
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}.")]


def test_help_lists_examples_and_gates(capsys):
    code, out, _ = _run(["--help"], capsys)
    assert code == 0
    assert "examples:" in out and "--calib" in out and "0.995" in out


def test_missing_checkpoint(tmp_path, capsys, jaffe_dir):
    out_dir = tmp_path / "b"
    code, _, err = _run(["--checkpoint", tmp_path / "nope.pt", "--out", out_dir, "--calib", jaffe_dir,
                         "--formats", "onnx"], capsys)
    assert code == 1
    assert "checkpoint" in _error_line(err) and "does not exist" in _error_line(err)
    _assert_nothing_written(out_dir)


def test_no_default_checkpoint_is_one_line(tmp_path, capsys, monkeypatch, jaffe_dir):
    from facelivenet.export import source

    monkeypatch.setattr(source, "default_checkpoint", lambda: tmp_path / "default_model" / "model.pt")
    out_dir = tmp_path / "b"
    code, out, err = _run(["--out", out_dir, "--calib", jaffe_dir, "--formats", "onnx", "--json"], capsys)
    assert code == 1
    assert "no default model shipped" in _error_line(err) and "--checkpoint" in _error_line(err)
    assert json.loads(out)["error_type"] == "ExportError"
    _assert_nothing_written(out_dir)


def test_missing_calibration_folder(tmp_path, capsys, tiny_checkpoint):
    out_dir = tmp_path / "b"
    code, _, err = _run(["--checkpoint", tiny_checkpoint, "--out", out_dir, "--calib", tmp_path / "nofaces",
                         "--formats", "onnx"], capsys)
    assert code == 1
    assert "calibration folder" in _error_line(err) and "does not exist" in _error_line(err)
    _assert_nothing_written(out_dir)


def test_too_few_faces_says_how_many(tmp_path, capsys, tiny_checkpoint, jaffe_dir, detector_path):
    import cv2
    import numpy as np

    folder = tmp_path / "few"
    folder.mkdir()
    for i, src in enumerate(sorted(jaffe_dir.iterdir())[:3]):  # links, never copies, of real faces
        os.symlink(src, folder / f"face{i}{src.suffix}")
    for i in range(2):
        cv2.imwrite(str(folder / f"blank{i}.png"), np.full((64, 64, 3), 128, np.uint8))
    out_dir = tmp_path / "b"
    code, _, err = _run(["--checkpoint", tiny_checkpoint, "--out", out_dir, "--calib", folder, "--formats", "onnx",
                         "--detector", detector_path, "--cache-dir", tmp_path / "cache"], capsys)
    line = _error_line(err)
    assert code == 1
    assert "3 usable face(s) found in 5 image(s)" in line and "need at least 200" in line
    _assert_nothing_written(out_dir)


@pytest.mark.parametrize("flag,value,valid", [
    ("--formats", "onnx,tflight", "valid: onnx, tflite, coreml"),
    ("--precisions", "int4", "valid: fp32, fp16, int8"),
])
def test_unknown_format_or_precision_lists_the_valid_ones(tmp_path, capsys, flag, value, valid, jaffe_dir):
    out_dir = tmp_path / "b"
    code, _, err = _run(["--out", out_dir, "--calib", jaffe_dir, flag, value], capsys)
    assert code == 1
    assert value.split(",")[-1] in _error_line(err) and valid in _error_line(err)
    _assert_nothing_written(out_dir)


def test_missing_converter_names_the_extra(tmp_path, capsys, monkeypatch, jaffe_dir):
    import importlib.util

    from facelivenet.export import errors

    real = importlib.util.find_spec
    monkeypatch.setattr(errors.importlib.util, "find_spec",
                        lambda name, *a: None if name == "coremltools" else real(name, *a))
    out_dir = tmp_path / "b"
    code, _, err = _run(["--out", out_dir, "--calib", jaffe_dir, "--formats", "onnx,coreml"], capsys)
    line = _error_line(err)
    assert code == 1
    assert "coremltools" in line and 'pip install "facelivenet[export]"' in line
    _assert_nothing_written(out_dir)


def test_existing_output_is_refused_without_force(tmp_path, capsys, jaffe_dir, tiny_checkpoint):
    out_dir = tmp_path / "b"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    code, _, err = _run(["--checkpoint", tiny_checkpoint, "--out", out_dir, "--calib", jaffe_dir,
                         "--formats", "onnx"], capsys)
    assert code == 1 and "already exists" in _error_line(err) and "--force" in _error_line(err)
    code, _, err = _run(["--checkpoint", tiny_checkpoint, "--out", out_dir, "--calib", jaffe_dir,
                         "--formats", "onnx", "--force"], capsys)
    assert code == 1 and "not a bundle" in _error_line(err)
    assert (out_dir / "keep.txt").read_text() == "mine"


def test_failed_gate_fails_the_export_and_writes_nothing(converters, shared_onnx_export, tiny_bundle, tmp_path, tiny_checkpoint, jaffe_dir,
                                                         detector_path, face_cache):
    from facelivenet.export.errors import ParityGateError
    from facelivenet.export.pipeline import ExportOptions, export_bundle

    out_dir = tmp_path / "b"
    opts = ExportOptions(out=out_dir, checkpoint=tiny_checkpoint, formats=("onnx",), precisions=("int8",),
                         calib=jaffe_dir, detector=detector_path, calib_count=TINY_CALIB, min_calib=TINY_CALIB,
                         parity_count=16, cache_dir=face_cache, threads=1, progress=False,
                         max_int8_bytes=1000)  # no model fits: the size gate must fail
    with pytest.raises(ParityGateError) as info:
        export_bundle(opts)
    assert "model_int8.onnx" in str(info.value) and "size" in str(info.value) and "> 1.0 kB" in str(info.value)
    assert "cos mean" in info.value.table  # the numbers are printed
    _assert_nothing_written(out_dir)
