"""``facelive-bench device``: the latency + parity benchmark with only the ``edge`` extra importable.

The edge-only runs happen in fresh interpreters whose ``PYTHONPATH`` starts with
stand-in packages for everything outside the edge extra (torch, onnx, the
converters, matplotlib, ...): importing one records its name and raises
ImportError, in the benchmark and in every row's child process alike.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facelivenet.edge_runtime.bundle import resolve_bundle_dir
from facelivenet.edge_runtime.manifest import MANIFEST_NAME, sha256_file

pytestmark = pytest.mark.cpu_sensitive  # make cpu-check runs these on an emulated AVX2 x86 too
# Under emulation (make cpu-check sets FACELIVE_EMULATED) a forward pass takes about a second and a 2048
# GEMM minutes: the device benchmarks run on 24 reference faces and a 256 GEMM there.
EMULATED = ["--faces", "24", "--gemm-n", "256"] if os.environ.get("FACELIVE_EMULATED") else []

NOT_IN_EDGE = ("torch", "torchvision", "onnx", "onnxscript", "litert_torch", "ai_edge_quantizer", "coremltools",
               "matplotlib", "tqdm", "dlib", "face_recognition_models", "kivy", "tensorflow")
BLOCKER = """import os
with open(os.environ["FACELIVE_BLOCKED_LOG"], "a") as fh:
    fh.write(__name__ + "\\n")
raise ImportError(__name__ + " is not part of the edge extra (blocked by the test)")
"""


@pytest.fixture(scope="module")
def blockers(tmp_path_factory) -> Path:
    """A folder of stand-in packages for everything outside the edge extra."""
    root = tmp_path_factory.mktemp("edge-only")
    for name in NOT_IN_EDGE:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(BLOCKER)
    return root


@pytest.fixture()
def edge_env(blockers, tmp_path) -> dict[str, str]:
    """An environment in which only the edge extra's packages import; blocked imports logged per test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blockers), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["FACELIVE_BLOCKED_LOG"] = str(tmp_path / "blocked.log")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _bench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "facelivenet.benchmarks.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _blocked(env: dict[str, str]) -> set[str]:
    log = Path(env["FACELIVE_BLOCKED_LOG"])
    return set(log.read_text().split()) if log.is_file() else set()


def test_device_bench_runs_the_shipped_bundle_without_torch(edge_env, data_root, detector_path, tmp_path):
    """The shipped bundle on real faces re-aligned from the data folder, with only the edge extra."""
    proc = _bench(edge_env, "device", *EMULATED, "--runs", "3", "--warmup", "1", "--data", str(data_root), "--detector",
                  str(detector_path), "--json", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["mode"] == "edge"
    rows = {(r["format"], r["precision"], r["variant"]): r for r in result["rows"]}
    manifest = json.loads((resolve_bundle_dir(None) / MANIFEST_NAME).read_text())
    assert set(rows) == {(f["format"], f["precision"], f.get("variant", "")) for f in manifest["files"]
                         if f["format"] != "coreml"}
    real = result["real_faces"]
    in_reference = manifest["provenance"]["parity_reference"]["faces"]
    assert in_reference >= 300 and real["faces_used"] == (24 if EMULATED else in_reference)
    # another CPU may align a few crops a grey level apart: reported, not required; the model outputs are gated
    assert 0 <= real["crops_identical"] <= real["faces_used"]
    assert real["crops_identical_fraction"] == round(real["crops_identical"] / real["faces_used"], 4)
    assert real["aligned_here_with"]["opencv"] and real["aligned_here_with"]["machine"]
    for key, row in rows.items():
        assert row["latency_ms"]["median"] > 0 and row["load_ms"] >= 0 and row["rss_mb"] > 0
        assert row["parity"]["passed"] is True and row["parity"]["faces"] == real["faces_used"], (key, row["parity"])
        assert row["self_check"]["reference"] == "self_check.npz" and row["self_check"]["passed"] is True
        by_crop = row["parity"]["by_crop"]
        assert sum(s["faces"] for s in by_crop.values() if s) == real["faces_used"]
        assert (by_crop["identical"] or {"faces": 0})["faces"] == real["crops_identical"]
        # near-tie faces may flip where crops moved; within 1 % of the export's agreement on its own crops
        # (on all of them: a 24-face subset under emulation is compared by the gate above only)
        exported = row["export_parity"]
        if not EMULATED:
            assert row["parity"]["expression_top1_agreement"] == pytest.approx(
                exported["expression_top1_agreement"], abs=0.01)
    assert result["parity_failed"] == [] and result["pipeline"]["measured"]
    assert {"result", "markdown", "config"} <= set(result["report_files"])
    # nothing outside the edge extra was imported; matplotlib may be tried for the plots and is skipped
    assert _blocked(edge_env) <= {"matplotlib"}, _blocked(edge_env)


ALIGN_CHILD = """import sys, numpy as np
from pathlib import Path
from facelivenet.edge_runtime.bundle import resolve_bundle_dir
from facelivenet.edge_runtime.manifest import load_manifest
from facelivenet.benchmarks.device_faces import load_reference_faces

b = resolve_bundle_dir(None)
np.save(sys.argv[3], load_reference_faces(b, load_manifest(b), Path(sys.argv[1]), sys.argv[2]).crops)
"""


def test_another_simd_path_moves_the_reference_crops_by_at_most_a_grey_level(data_root, detector_path, tmp_path):
    """The reference faces aligned here and in a child whose OpenCV may not use AVX/AVX2/AVX-512 (another CPU
    in effect, where this one has them): crops may differ, but only in their last bit, on a few pixels."""
    from facelivenet.benchmarks.device_faces import crop_drift, load_reference_faces
    from facelivenet.edge_runtime.manifest import load_manifest

    bundle = resolve_bundle_dir(None)
    here = load_reference_faces(bundle, load_manifest(bundle), data_root, detector_path)
    if not len(here.crops):
        pytest.skip("the reference faces' images are not in the data folder")
    env = dict(os.environ, OPENCV_CPU_DISABLE="AVX512-SKX,AVX2,AVX,FMA3,FP16")
    out = tmp_path / "crops.npy"
    proc = subprocess.run([sys.executable, "-c", ALIGN_CHILD, str(data_root), str(detector_path), str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    drift = crop_drift(here.crops, np.load(out))
    assert drift["crops"] == len(here.crops)
    assert drift["max_abs_diff"] <= 2 and drift["max_crop_mean_abs_diff"] <= 0.05, drift  # a pixel's shift: >> 1
    assert drift["changed_pixel_fraction"] <= 0.01, drift


def test_crop_drift_measures_a_shifted_crop():
    from facelivenet.benchmarks.device_faces import crop_drift

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    b = a.copy()
    b[1] = np.roll(a[1], 1, axis=1)  # one crop shifted by a pixel
    drift = crop_drift(a, b)
    assert drift["identical"] == 2 and drift["max_abs_diff"] > 2 and drift["max_crop_mean_abs_diff"] > 1
    assert crop_drift(a, a) == {"crops": 3, "identical": 3, "max_abs_diff": 0, "max_crop_mean_abs_diff": 0.0,
                                "changed_pixel_fraction": 0.0}


def test_full_bench_falls_back_to_the_device_bench_without_torch(edge_env):
    env = {k: v for k, v in edge_env.items() if k != "FACELIVE_DATA"}  # no data: the synthetic reference only
    proc = _bench(env, "--quick", *EMULATED[2:], "--runs", "2", "--warmup", "0", "--no-peers", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch is not installed" in proc.stderr and "ignoring --no-peers" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["mode"] == "edge" and result["real_faces"] is None
    assert all(r["parity"]["reference"] == "self_check.npz" and r["parity"]["passed"] for r in result["rows"])
    assert "torch" in _blocked(edge_env)  # the one probe for torch, which decided the fallback


def test_data_without_the_reference_folders_falls_back_to_the_self_check(data_root, detector_path, tmp_path, capsys):
    from facelivenet.benchmarks.device_cli import main

    if not (data_root / "jaffe").is_dir():
        pytest.skip("JAFFE absent")
    only_jaffe = tmp_path / "data"
    only_jaffe.mkdir()
    (only_jaffe / "jaffe").symlink_to(data_root / "jaffe")  # faces for the pipeline, none of the parity folders
    code = main([*EMULATED, "--data", str(only_jaffe), "--detector", str(detector_path), "--runs", "2", "--warmup", "0",
                 "--json", "-q"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["real_faces"]["faces_used"] == 0
    assert result["real_faces"]["missing_images"] == (24 if EMULATED else result["real_faces"]["faces_in_reference"])
    assert all(r["parity"]["reference"] == "self_check.npz" for r in result["rows"])
    assert any("none of the bundle's reference faces" in n for n in result["notes"])
    assert result["pipeline"]["measured"]  # the JAFFE photo still times the 640x480 pipeline


def _copy_bundle(tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(resolve_bundle_dir(None), dst)
    return dst


def _rewrite_self_check(bundle: Path, change) -> None:
    """Alter self_check.npz and re-record its sha256 (a consistent but wrong reference)."""
    path = bundle / "self_check.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez(path, **arrays)
    manifest_path = bundle / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["provenance"]["self_check"]["sha256"] = sha256_file(path)
    manifest_path.write_text(json.dumps(manifest))


def test_a_file_that_disagrees_with_the_reference_fails_the_run(tmp_path, capsys, monkeypatch):
    from facelivenet.benchmarks.device_cli import main

    monkeypatch.delenv("FACELIVE_DATA", raising=False)  # the synthetic reference is the one altered here
    bundle = _copy_bundle(tmp_path)

    def swap_logits(a):  # another model's answers: top-1 agreement collapses
        a["expression_logits"] = a["expression_logits"][:, ::-1].copy()

    _rewrite_self_check(bundle, swap_logits)
    code = main(["--bundle", str(bundle), *EMULATED[2:], "--runs", "2", "--warmup", "0", "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 1
    result = json.loads(captured.out)
    assert result["parity_failed"] and all(not r["parity"]["passed"] for r in result["rows"])
    # both int8 files of a format are named apart: int8 activations ("static") and weight-only
    assert {"onnx int8 static", "onnx int8 weights only", "tflite int8 static"} <= set(result["parity_failed"])
    assert all("variant" in r for r in result["rows"])
    assert "parity gate failed on this device" in captured.err


def test_an_altered_reference_file_is_refused(tmp_path, capsys, monkeypatch):
    from facelivenet.benchmarks.device_cli import main

    monkeypatch.delenv("FACELIVE_DATA", raising=False)
    bundle = _copy_bundle(tmp_path)
    with np.load(bundle / "self_check.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["embedding"] = -arrays["embedding"]
    np.savez(bundle / "self_check.npz", **arrays)  # the manifest still holds the old sha256
    code = main(["--bundle", str(bundle), *EMULATED[2:], "--runs", "2", "--json", "-q"])
    out = capsys.readouterr()
    assert code == 1
    assert "does not match the sha256" in json.loads(out.out)["error"]


def test_a_slow_board_can_take_fewer_reference_faces_and_a_smaller_gemm(data_root, detector_path, capsys):
    from facelivenet.benchmarks.device_cli import main

    code = main(["--data", str(data_root), "--detector", str(detector_path), "--faces", "12", "--gemm-n", "128",
                 "--runs", "2", "--warmup", "0", "--json", "-q"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    real = result["real_faces"]
    if real["faces_used"] == 0:
        pytest.skip("the reference faces' images are not in the data folder")
    assert real["faces_chosen"] == 12 and real["faces_used"] <= 12
    assert result["machine"]["gemm"]["n"] == 128
    assert all(r["parity"]["faces"] == real["faces_used"] for r in result["rows"])
    assert all(len(r["gemm_gflops_samples"]) >= 2 for r in result["rows"])  # sampled inside each row's process


def test_bad_options_name_the_problem(capsys):
    from facelivenet.benchmarks.device_cli import main

    assert main(["--runs", "0", "-q"]) == 1
    assert "--runs must be >= 1" in capsys.readouterr().err
    assert main(["--faces", "0", "-q"]) == 1
    assert "--faces must be >= 1" in capsys.readouterr().err
    assert main(["--threads", "x", "-q"]) == 1
    assert "--threads" in capsys.readouterr().err
