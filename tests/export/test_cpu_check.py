"""The CPU check: each file of a bundle run by the torch-free worker on the same crops, gated like the export;
targets that cannot run here are reported with why. (The emulated families run in `make cpu-check`.)"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from facelivenet.edge_runtime.bundle import DEFAULT_BUNDLE_DIR
from facelivenet.edge_runtime.manifest import MANIFEST_NAME, load_manifest
from facelivenet.export.cpu_check import (TARGETS, CheckFile, CpuTarget, check_on_cpus, markdown,
                                          passes_everywhere)

NATIVE = TARGETS[0]


def _reference() -> dict[str, np.ndarray]:
    with np.load(DEFAULT_BUNDLE_DIR / "self_check.npz") as npz:
        return {k: npz[k] for k in ("pixels", "embedding", "expression_logits")}


def _files(bundle: Path) -> list[CheckFile]:
    m = load_manifest(bundle, verify_files=False)
    return [CheckFile(f.parity_key, f.format, bundle / f.path, f.layout, f.precision) for f in m.files]


def test_targets_that_cannot_run_here_say_why(tmp_path):
    arm = CpuTarget("arm64 dot product", "qemu-aarch64", "cortex-a76")
    assert NATIVE.command(tmp_path) == [sys.executable]
    assert arm.command(tmp_path) is None and str(tmp_path) in arm.why_not(tmp_path)


def test_every_shipped_file_passes_natively_and_a_wrong_one_fails(tmp_path):
    """The self-check faces stand in for real ones here (their torch outputs are in the bundle)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, bundle)
    ref = _reference()
    files = _files(bundle)
    wrong = files[0]  # model.onnx with its first convolution's weights negated
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(wrong.path))
    init = next(t for t in model.graph.initializer if numpy_helper.to_array(t).ndim == 4)
    init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
    onnx.save(model, str(wrong.path))
    gone = CpuTarget("arm64 NEON (no dot product)", "qemu-aarch64", "cortex-a72")
    result = check_on_cpus(files, ref["pixels"], ref["embedding"], ref["expression_logits"], ref,
                           load_manifest(bundle, verify_files=False).preprocess, (NATIVE, gone), tmp_path / "none")
    assert result["targets"]["native"]["checked"] and not result["targets"][gone.name]["checked"]
    assert not passes_everywhere(result, wrong.key)
    assert any("self-check" in f for f in result["files"][wrong.key]["native"]["failures"])
    for f in files[1:]:
        gate = result["files"][f.key]["native"]
        assert gate["passed"] and gate["cosine_min"] > 0.98, (f.key, gate)
    table = markdown(result)
    assert "**FAIL**" in table and f"{gone.name}: not checked" in table


def test_the_result_is_written_into_the_manifest_and_a_failing_default_is_replaced(tmp_path):
    from facelivenet.benchmarks.cpus_cli import write_into_manifest

    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, bundle)
    m = load_manifest(bundle)
    default = next(f for f in m.files if f.path == m.default_file)
    gate = {"passed": True, "cosine_mean": 1.0, "cosine_min": 1.0, "failures": []}
    result = {"faces": 8, "targets": {"native": {"checked": True, "emulated": False, "emulator": "",
                                                  "cpu": {"features": ["AVX2"]}},
                                       "arm64 dot product": {"checked": False, "why": "no emulator"}},
              "files": {f.parity_key: {"native": dict(gate)} for f in m.files}}
    result["files"][default.parity_key]["native"] = {"passed": False, "failures": ["self-check: wrong"]}
    changed = write_into_manifest(bundle, result, "facelive-bench cpus --write")
    after = load_manifest(bundle)  # still valid, every hash still right
    assert changed["default_file"]["was"] == default.path and after.default_file == changed["default_file"]["now"]
    assert after.default_file != default.path
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    assert data["parity"][default.parity_key]["cpu_checks"]["native"]["passed"] is False
    assert data["provenance"]["cpu_checks"]["families"]["arm64 dot product"] == {"checked": False, "why": "no emulator"}


def test_an_export_records_where_each_file_was_checked(tiny_bundle):
    """The export runs the check (here on this CPU only: tests/export/conftest.py) and records it per file."""
    bundle, summary = tiny_bundle
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    assert list(data["provenance"]["cpu_checks"]["families"]) == ["native"]
    checked = [f for f in data["files"] if f["format"] in ("onnx", "tflite")]
    assert checked
    for f in checked:
        key = f["format"] + "/" + f["precision"] + (f"/{f['variant']}" if f.get("variant") else "")
        assert set(data["parity"][key]["cpu_checks"]) == {"native"}
    default = data.get("default_file")
    if default:  # a default file passed on every family checked
        key = next(f["format"] + "/" + f["precision"] + (f"/{f['variant']}" if f.get("variant") else "")
                   for f in data["files"] if f["path"] == default)
        assert all(g["passed"] for g in data["parity"][key]["cpu_checks"].values())
