"""The Android source folder (android_stage) holds only the runtime and the demo, and runs on the desktop
with the phone's defaults: the LiteRT backend (--format tflite --precision fp32) and the database in
$ANDROID_PRIVATE. No Android build is run here (see demo_kivy/ANDROID.md).

Thresholds as in test_demo_headless.py (the shipped model is weak on JAFFE; this checks the packaging)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from facelivenet.demo_kivy.android_main import android_argv
from facelivenet.demo_kivy.android_stage import main as stage_main

from .conftest import demo_env, needs_kivy


def test_android_defaults():
    assert android_argv({"ANDROID_PRIVATE": "/data/user/0/org.facelivenet/files"}) == [
        "--format", "tflite", "--precision", "fp32", "--db", "/data/user/0/org.facelivenet/files/facelive.db"]


@pytest.mark.slow
@needs_kivy
def test_staged_folder_runs_with_the_tflite_backend(frame_dirs, detector_path, tmp_path):
    out = tmp_path / "android"
    assert stage_main([str(out)]) == 0
    assert stage_main([str(out)]) == 1  # exists: refused without --force
    bundle = out / "facelivenet" / "edge_runtime" / "default_bundle"
    assert sorted(p.name for p in bundle.glob("*.tflite")) and not list(bundle.glob("*.onnx"))
    assert (bundle / "detector").is_dir() and (out / "buildozer.spec").is_file() and (out / "main.py").is_file()
    assert {p.name for p in (out / "facelivenet").iterdir() if p.is_dir()} == {"demo_kivy", "edge_runtime"}
    env = demo_env(tmp_path, detector_path)
    env.pop("FACELIVE_BUNDLE", None)
    env["ANDROID_PRIVATE"] = str(tmp_path)
    where = subprocess.run([sys.executable, "-c", "import facelivenet.demo_kivy as d; print(d.__file__)"],
                           capture_output=True, text=True, cwd=out, env=env, timeout=60)
    assert where.stdout.strip().startswith(str(out)), where  # the staged copy, not the repository
    proc = subprocess.run([sys.executable, "main.py", "--headless", "--enroll-source", str(frame_dirs["enroll"]),
                           "--source", str(frame_dirs["genuine"]), "--user", "KL", "--fixed-order", "--threshold",
                           "0.90", "--expression-threshold", "0.3", "--step-timeout", "2", "--json"],
                          capture_output=True, text=True, cwd=out, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["decision"] == "accept" and result["model"].endswith("tflite/fp32"), result
    assert (tmp_path / "facelive.db").is_file()
