"""Fixtures for the demo app's tests: frame folders made from real JAFFE faces, and a runner for
``facelive-demo --headless`` in a fresh process (SDL offscreen, a temporary KIVY_HOME).

JAFFE images never leave the test's temporary folders (research use only)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.edge_runtime.frames import scripted

needs_kivy = pytest.mark.skipif(importlib.util.find_spec("kivy") is None,
                                reason="Kivy is not installed: pip install 'facelivenet[demo]'")

HOLD = 4  # frames per challenge step in the scripts (one more than --hold-frames 3)
ENROLL = ["KL.NE1.155", "KL.NE3.157"] * 5  # KL's neutral faces for the template
GENUINE = ["KL.NE2.156"] * HOLD + ["KL.HA2.159"] * HOLD + ["KL.NE2.156"] * HOLD + ["KL.SU3.166"] * HOLD
PHOTO = ["KL.NE2.156"] * 30  # one neutral photo held up for 3 s
ENROLL_FRAMES = 9  # 5 captures one every 0.2 s at 10 fps: frames 0, 2, 4, 6, 8
RECORDED = ["--positions", "off", "--timing", "off"]  # recorded frames cannot follow a live oval or rest


@dataclass
class DemoRun:
    code: int
    payload: dict
    stdout: str
    stderr: str


def write_frames(images: list[np.ndarray], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    return folder


def jaffe_frames(jaffe: Path, names: list[str], seed: int) -> list[np.ndarray]:
    return [f.image for f in scripted([jaffe / f"{n}.tiff" for n in names], seed=seed)]


def no_face_frames(count: int = 12) -> list[np.ndarray]:
    """A synthetic scene with no face: a colour gradient, a disc that drifts, a caption."""
    y, x = np.mgrid[0:480, 0:640]
    frames = []
    for i in range(count):
        img = np.dstack([x / 640 * 150 + 40, y / 480 * 120 + 50, np.full(x.shape, 110.0)]).astype(np.uint8)
        cv2.circle(img, (300 + 4 * i, 250), 70, (70, 160, 220), -1)
        cv2.putText(img, "synthetic frame: no face", (150, 420), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (240, 240, 240), 2)
        frames.append(img)
    return frames


@pytest.fixture(scope="session")
def frame_dirs(jaffe: Path, tmp_path_factory) -> dict[str, Path]:
    """Folders of camera-like frames: enroll, genuine, enroll+genuine (one source), photo, noface."""
    root = tmp_path_factory.mktemp("demo_frames")
    enroll = jaffe_frames(jaffe, ENROLL, seed=1)[:ENROLL_FRAMES]
    genuine = jaffe_frames(jaffe, GENUINE, seed=0)
    return {
        "enroll": write_frames(enroll, root / "enroll"),
        "genuine": write_frames(genuine, root / "genuine"),
        "enroll_then_genuine": write_frames(enroll + genuine, root / "enroll_then_genuine"),
        "photo": write_frames(jaffe_frames(jaffe, PHOTO, seed=0), root / "photo"),
        "noface": write_frames(no_face_frames(), root / "noface"),
    }


def demo_env(tmp_path: Path, detector_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, SDL_VIDEODRIVER="offscreen", KIVY_NO_ARGS="1", KIVY_HOME=str(tmp_path / "kivy_home"),
               OMP_NUM_THREADS="1")
    if detector_path is not None:
        env["FACELIVE_DETECTOR"] = str(detector_path)
    return env


def run_demo(tmp_path: Path, *args: str, detector_path: Path | None = None, timeout: float = 180) -> DemoRun:
    """``python -m facelivenet.demo_kivy ARGS --json`` in a fresh process; the one JSON object parsed."""
    proc = subprocess.run([sys.executable, "-m", "facelivenet.demo_kivy", *args, "--json"], capture_output=True,
                          text=True, timeout=timeout, env=demo_env(tmp_path, detector_path), cwd=tmp_path)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json must print exactly one line; stdout={proc.stdout!r} stderr={proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return DemoRun(proc.returncode, json.loads(lines[0]), proc.stdout, proc.stderr)
