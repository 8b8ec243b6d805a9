"""Bundle integrity: a model file that differs from its manifest hash is never run.

Fuzzed tampering (one byte flipped anywhere, the file cut short or grown) of a
copy of the real bundle: :class:`FaceModel` refuses it with ManifestError, and
``facelive auth --bundle`` exits 1 with one line naming the sha256 mismatch,
before any frame is looked at or any attempt is recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facelivenet.edge_runtime.bundle import resolve_bundle_dir
from facelivenet.edge_runtime.cli import main
from facelivenet.edge_runtime.errors import ManifestError
from facelivenet.edge_runtime.face_model import FaceModel
from facelivenet.edge_runtime.manifest import MANIFEST_NAME, load_manifest
from facelivenet.edge_runtime.store import TemplateStore

FUZZ = settings(max_examples=int(os.environ.get("FACELIVE_FUZZ_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bundle_copy(tmp_path_factory) -> tuple[Path, Path, bytes]:
    """(a copy of the real bundle, the model file the runtime runs by default, that file's original bytes)."""
    src = resolve_bundle_dir(None)
    dst = tmp_path_factory.mktemp("integrity") / "bundle"
    shutil.copytree(src, dst)
    model = dst / load_manifest(dst, verify_files=False).select().path
    return dst, model, model.read_bytes()


@pytest.fixture
def tampered(bundle_copy):
    """A function writing tampered bytes into the model file; the original comes back afterwards."""
    bundle, model, original = bundle_copy

    def write(data: bytes) -> Path:
        model.write_bytes(data)
        return bundle

    yield write
    model.write_bytes(original)


def tamperings(original: bytes):
    size = len(original)
    flip = st.tuples(st.integers(0, size - 1), st.integers(1, 255)).map(
        lambda t: original[: t[0]] + bytes([original[t[0]] ^ t[1]]) + original[t[0] + 1:])
    cut = st.integers(0, size - 1).map(lambda n: original[:n])
    grow = st.binary(min_size=1, max_size=64).map(lambda extra: original + extra)
    return st.one_of(flip, cut, grow)


def test_the_untouched_copy_loads(bundle_copy):
    bundle, _, _ = bundle_copy
    assert FaceModel(bundle).file.precision == "int8"


@FUZZ
@given(data=st.data())
def test_face_model_refuses_any_tampered_model_file(bundle_copy, tampered, data):
    bundle = tampered(data.draw(tamperings(bundle_copy[2]), label="model bytes"))
    with pytest.raises(ManifestError, match="does not match its manifest sha256"):
        FaceModel(bundle)


def test_face_model_refuses_a_manifest_hash_that_was_edited(bundle_copy, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_copy[0], bundle)
    d = json.loads((bundle / MANIFEST_NAME).read_text())
    entry = next(f for f in d["files"] if f["path"] == d["default_file"])  # the file the runtime runs
    entry["sha256"] = ("0" if entry["sha256"][0] != "0" else "1") + entry["sha256"][1:]
    (bundle / MANIFEST_NAME).write_text(json.dumps(d))
    with pytest.raises(ManifestError, match="does not match its manifest sha256"):
        FaceModel(bundle)


def _enrolled_db(path: Path, bundle: Path) -> Path:
    manifest = load_manifest(bundle, verify_files=False)
    with TemplateStore(path) as store:
        store.put("KA", f"{manifest.model_name}:{manifest.checkpoint_sha256}", np.eye(1, 128, dtype=np.float32))
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["flip", "cut", "grow"])
def test_facelive_auth_refuses_a_tampered_bundle(bundle_copy, tampered, tmp_path, monkeypatch, capsys,
                                                 jaffe_samples, how):
    _, _, original = bundle_copy
    data = {"flip": original[:1000] + bytes([original[1000] ^ 0x5A]) + original[1001:],
            "cut": original[:-1], "grow": original + b"\0"}[how]
    bundle = tampered(data)
    db = _enrolled_db(tmp_path / "users.db", bundle)
    before = _digest(db)
    monkeypatch.chdir(tmp_path)
    code = main(["auth", "--bundle", str(bundle), "--db", str(db), "--user", "KA", "--source",
                 *map(str, jaffe_samples), "--positions", "off", "--timing", "off", "--fixed-order", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    payload = json.loads(out)
    assert payload["error_type"] == "ManifestError" and "sha256" in payload["error"]
    lines = [line for line in err.splitlines() if line.startswith("facelive: error:")]
    assert len(lines) == 1 and "does not match its manifest sha256" in lines[0]
    assert _digest(db) == before, "an attempt was recorded although the model was never run"


@pytest.mark.parametrize("argv", [["inspect", "{bundle}"], ["detect", "{image}", "--bundle", "{bundle}"]],
                         ids=["inspect", "detect"])
def test_a_tampered_bundle_detector_is_refused(bundle_copy, tmp_path, monkeypatch, capsys, jaffe_samples, argv):
    monkeypatch.delenv("FACELIVE_DETECTOR", raising=False)
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_copy[0], bundle)
    manifest = load_manifest(bundle, verify_files=False)
    if not manifest.detector:
        pytest.skip("this bundle carries no detector")
    detector = bundle / manifest.detector["path"]
    blob = bytearray(detector.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # a weight changes; the file still loads
    detector.write_bytes(bytes(blob))
    code = main([a.format(bundle=bundle, image=jaffe_samples[0]) for a in argv])
    _, err = capsys.readouterr()
    assert code == 1 and "sha256" in err
