"""The Android source folder (android_stage) holds only the runtime, the demo and the server's client, and
runs on the desktop with the phone's defaults: the LiteRT backend (--format tflite --precision fp32) and the
database in $ANDROID_PRIVATE; with --server, against a real verification server on a loopback port
(tests/server/live_server.py). No Android build is run here (see demo_kivy/ANDROID.md).

Thresholds as in test_demo_headless.py (the shipped model is weak on JAFFE; this checks the packaging)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from facelivenet.demo_kivy.android_main import android_argv
from facelivenet.demo_kivy.android_stage import main as stage_main

from tests.server.live_server import recorded, running_server

from .conftest import RECORDED, demo_env, needs_kivy


# as on a phone, only the staged folder: without the editable install's finder, which would fetch from the
# repository any module the staging left out
STAGED_ONLY = ("import sys\n"
               "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in str(getattr(f, '__module__', ''))]\n")
WHERE = STAGED_ONLY + """
import importlib.util
import facelivenet.demo_kivy as demo, facelivenet.server.client as client
app = importlib.util.find_spec("facelivenet.server.app")
print(demo.__file__, client.__file__, "absent" if app is None else "present")
"""
MAIN = [sys.executable, "-c", STAGED_ONLY + "import runpy; runpy.run_path('main.py', run_name='__main__')"]


def phone_env(tmp_path, detector_path) -> dict[str, str]:
    """The demo's test environment as on a phone: the staged default bundle, the database in $ANDROID_PRIVATE."""
    env = demo_env(tmp_path, detector_path)
    env.pop("FACELIVE_BUNDLE", None)
    env["ANDROID_PRIVATE"] = str(tmp_path)
    return env


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
    assert {p.name for p in (out / "facelivenet").iterdir() if p.is_dir()} == {"demo_kivy", "edge_runtime", "server"}
    assert sorted(p.name for p in (out / "facelivenet" / "server").iterdir()) == ["__init__.py", "client.py"]
    env = phone_env(tmp_path, detector_path)
    where = subprocess.run([sys.executable, "-c", WHERE], capture_output=True, text=True, cwd=out, env=env, timeout=60)
    demo_file, client_file, server_app = where.stdout.split()
    assert demo_file.startswith(str(out)) and client_file.startswith(str(out)), where  # the staged copies
    assert server_app == "absent", "the server itself stays out of the phone build"
    proc = subprocess.run([*MAIN, "--headless", "--enroll-source", str(frame_dirs["enroll"]),
                           "--source", str(frame_dirs["genuine"]), "--user", "KL", "--fixed-order", "--threshold",
                           "0.80", "--expression-threshold", "0.3", "--step-timeout", "2", *RECORDED, "--json"],
                          capture_output=True, text=True, cwd=out, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["decision"] == "accept" and result["model"].endswith("tflite/fp32"), result
    assert (tmp_path / "facelive.db").is_file()


@pytest.mark.slow
@needs_kivy
def test_staged_folder_runs_in_server_mode(frame_dirs, detector_path, tmp_path):
    """main.py --server: enrolls through the server and streams the frames; the server's decision comes back."""
    out = tmp_path / "android"
    assert stage_main([str(out)]) == 0
    with running_server(tmp_path / "server.db", session=recorded(challenge=("happy",))) as server:
        proc = subprocess.run([*MAIN, "--headless", "--server", server.url, "--api-key",
                               server.admin_key, "--source", str(frame_dirs["enroll_then_genuine"]), "--user", "KL",
                               "--fps", "10", "--json"],
                              capture_output=True, text=True, cwd=out, env=phone_env(tmp_path, detector_path),
                              timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert (result["decision"], result["server"], result["challenge"]) == ("accept", server.url, ["happy"]), result
    assert result["enrollment"]["images_used"] == 5, result
