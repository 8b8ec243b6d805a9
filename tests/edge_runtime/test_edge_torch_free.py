"""edge_runtime must import and run with torch absent (ARCHITECTURE.md, "Layers")."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import facelivenet.edge_runtime as er

EDGE_DIR = Path(er.__file__).resolve().parent

# Run in a fresh interpreter: torch is blocked before anything is imported, so
# any `import torch` (direct or through a dependency) raises ImportError.
SCRIPT = r"""
import sys
sys.modules["torch"] = None
import importlib, json, pkgutil
try:
    import torch  # noqa: F401
    raise SystemExit("torch was not blocked")
except ImportError:
    pass

import numpy as np
import facelivenet.edge_runtime as er

modules = sorted(m.name for m in pkgutil.walk_packages(er.__path__, er.__name__ + "."))
for name in modules:
    importlib.import_module(name)

from facelivenet.edge_runtime.preprocess import PreprocessConfig, face_crop, normalize
from facelivenet.edge_runtime.alignment import align_face
from facelivenet.edge_runtime import cli

image_path, detector_path = sys.argv[1], sys.argv[2]
cfg = PreprocessConfig()
faces = []
if image_path and detector_path:
    from facelivenet.edge_runtime.imageio import read_image
    from facelivenet.edge_runtime.detection import YuNetDetector
    image = read_image(image_path)
    faces = YuNetDetector(detector_path).detect(image)
    assert len(faces) == 1, len(faces)
    crop = face_crop(image, cfg, faces[0].landmarks)
    code = cli.main(["-q", "detect", image_path, "--detector", detector_path, "--json"])
    assert code == 0, code
    # the model-running path too: the shipped bundle's int8 ONNX through the face pipeline
    code = cli.main(["-q", "verify", image_path, image_path, "--detector", detector_path, "--json"])
    assert code == 0, code
else:  # no real data here: a synthetic image through the same alignment and normalisation
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
    landmarks = cfg.template_array * 1.4 + 20
    crop = face_crop(image, cfg, landmarks)
    assert align_face(image, landmarks, 112).shape == (112, 112, 3)
batch = normalize(crop, cfg)
assert batch.shape == (1, 3, 112, 112) and batch.dtype == np.float32
loaded = sorted(k for k, v in sys.modules.items() if v is not None and k.split(".")[0] == "torch")
print(json.dumps({"modules": modules, "faces": len(faces), "torch_loaded": loaded}), file=sys.stderr)
"""


def _load_shared_conftest():
    """tests/conftest.py by path ("conftest" in sys.modules may be another folder's)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_facelive_shared_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["real", "synthetic"])
def test_edge_runtime_runs_with_torch_blocked(tmp_path, mode):
    shared = _load_shared_conftest()
    data, detector = shared.find_data_root(), shared.find_detector()
    image = data / "lfw" / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg" if data else None
    real = mode == "real"
    if real and not (image and image.is_file() and detector):
        pytest.skip("real LFW image or YuNet detector absent (FACELIVE_DATA / FACELIVE_DETECTOR / ../shared)")
    args = [str(image), str(detector)] if real else ["", ""]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    expected = {f"facelivenet.edge_runtime.{p.stem}" for p in EDGE_DIR.glob("*.py") if p.stem != "__init__"}
    assert expected <= set(report["modules"]), expected - set(report["modules"])
    assert "facelivenet.edge_runtime.cli" in report["modules"]
    assert report["torch_loaded"] == []
    if real:
        assert report["faces"] == 1
        detect_out, verify_out = proc.stdout.strip().splitlines()  # one JSON object per command
        assert json.loads(detect_out)["images"][0]["num_faces"] == 1
        assert json.loads(verify_out)["score"] > 0.99  # an image against itself


def test_no_torch_import_in_the_source():
    offenders = [
        p.name
        for p in EDGE_DIR.rglob("*.py")
        for line in p.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith(("import torch", "from torch"))
    ]
    assert offenders == []
