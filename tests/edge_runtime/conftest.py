"""Fixtures for the edge runtime tests: real sample faces, a loaded detector, tiny bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from facelivenet.edge_runtime.manifest import (
    Manifest,
    ModelFile,
    Outputs,
    Thresholds,
    save_manifest,
    sha256_file,
)
from facelivenet.edge_runtime.preprocess import PreprocessConfig

# Sample images known to hold exactly one face (checked against YuNet).
LFW_SAMPLES = (
    "AJ_Cook/AJ_Cook_0001.jpg",
    "AJ_Lamas/AJ_Lamas_0001.jpg",
    "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
)
JAFFE_SAMPLES = ("KA.AN1.39.tiff", "KL.HA1.158.tiff", "YM.SU1.58.tiff")


def _existing(paths: list[Path]) -> list[Path]:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"sample images absent from the data folder: {', '.join(map(str, missing))}")
    return paths


@pytest.fixture(scope="session")
def lfw_samples(data_root: Path) -> list[Path]:
    return _existing([data_root / "lfw" / "images" / rel for rel in LFW_SAMPLES])


@pytest.fixture(scope="session")
def jaffe_samples(data_root: Path) -> list[Path]:
    return _existing([data_root / "jaffe" / name for name in JAFFE_SAMPLES])


@pytest.fixture(scope="session")
def detector(detector_path: Path):
    from facelivenet.edge_runtime.detection import YuNetDetector

    return YuNetDetector(detector_path)


@pytest.fixture
def no_detector_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of the detector search must not see the CI's FACELIVE_DETECTOR."""
    monkeypatch.delenv("FACELIVE_DETECTOR", raising=False)


def _make_manifest(files: tuple[ModelFile, ...], **overrides) -> Manifest:
    fields = dict(
        model_name="facelivenet",
        model_version="0.0.0-test",
        checkpoint_sha256="0" * 64,
        files=files,
        preprocess=PreprocessConfig(),
        outputs=Outputs(),
        thresholds=Thresholds(
            verification_cosine=0.35, target_far=1e-3, expression_probability=0.5, calibrated_on="unit test"
        ),
        provenance={"datasets": [{"name": "synthetic", "licence": "none"}]},
        parity={"onnx/fp32": {"cosine_mean": 1.0}},
    )
    fields.update(overrides)
    return Manifest(**fields)


@pytest.fixture
def make_manifest() -> Callable[..., Manifest]:
    """A valid Manifest for the given files; keyword arguments replace fields."""
    return _make_manifest


@pytest.fixture
def build_bundle(tmp_path: Path) -> Callable[..., tuple[Path, Manifest]]:
    """Write a bundle with dummy model files (name -> bytes) and a valid manifest."""

    def build(contents: dict[str, bytes] | None = None, name: str = "bundle") -> tuple[Path, Manifest]:
        contents = contents or {"model_int8.onnx": b"not really an onnx model, but hashed all the same"}
        bundle = tmp_path / name
        bundle.mkdir()
        files = []
        for i, (rel, data) in enumerate(contents.items()):
            path = bundle / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files.append(
                ModelFile(
                    path=rel,
                    format="onnx",
                    precision=("int8", "fp32", "fp16")[i % 3],
                    sha256=sha256_file(path),
                    size_bytes=len(data),
                )
            )
        manifest = _make_manifest(tuple(files))
        save_manifest(manifest, bundle)
        return bundle, manifest

    return build


@pytest.fixture
def manifest_dict(build_bundle) -> dict:
    """A valid manifest as the parsed JSON dict (bundle files exist on disk)."""
    bundle, _ = build_bundle()
    return json.loads((bundle / "manifest.json").read_text())


@pytest.fixture(scope="session")
def runtime_model():
    """The shipped default bundle's int8 ONNX model (what `facelive` runs by default)."""
    from facelivenet.edge_runtime.face_model import FaceModel

    return FaceModel(None, "onnx", "int8", threads=1)


@pytest.fixture(scope="module")
def runtime_pipeline(runtime_model, detector_path: Path):
    from facelivenet.edge_runtime.face_pipeline import FacePipeline

    return FacePipeline(runtime_model, detector_path=str(detector_path))
