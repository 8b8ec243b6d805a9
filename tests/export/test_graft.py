"""Grafting one re-exported file into a shipped bundle: same checkpoint only, a passing file only, the
manifest written after the new file is in place, the replacement recorded."""

from __future__ import annotations

import json
import shutil

import pytest

from facelivenet.edge_runtime.bundle import DEFAULT_BUNDLE_DIR
from facelivenet.edge_runtime.manifest import MANIFEST_NAME, load_manifest, sha256_file
from facelivenet.export.errors import ExportError
from facelivenet.export.graft import graft

KEY = "onnx/int8/static"


@pytest.fixture
def bundles(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    shutil.copytree(DEFAULT_BUNDLE_DIR, src)
    shutil.copytree(DEFAULT_BUNDLE_DIR, dst)
    return src, dst


def _edit(bundle, fn):
    m = json.loads((bundle / MANIFEST_NAME).read_text())
    fn(m)
    (bundle / MANIFEST_NAME).write_text(json.dumps(m))


def test_a_new_file_replaces_the_old_one_and_is_recorded(bundles):
    import onnx

    src, dst = bundles
    path = src / "model_int8_static.onnx"
    model = onnx.load(str(path))
    model.doc_string = "rebuilt"  # other bytes, same network
    onnx.save(model, str(path))

    def point_at_new(m):
        f = next(f for f in m["files"] if f["path"] == path.name)
        f["sha256"], f["size_bytes"] = sha256_file(path), path.stat().st_size
        m["parity"][KEY]["note"] = "from the source"

    _edit(src, point_at_new)
    change = graft(src, dst, KEY, "test")
    after = load_manifest(dst)  # verifies every file
    assert change["sha256_now"] == sha256_file(dst / path.name) != change["sha256_was"]
    assert after.parity[KEY]["note"] == "from the source"
    assert after.provenance["replaced_files"][-1]["reason"] == "test"


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(checkpoint_sha256="0" * 64), "differ in checkpoint_sha256"),
    (lambda m: m["parity"][KEY].update(passed=False), "did not pass its gates"),
    (lambda m: m.update(files=[f for f in m["files"] if f["path"] != "model_int8_static.onnx"]), "has no onnx/int8/static"),
])
def test_a_file_from_another_checkpoint_or_failing_is_refused(bundles, edit, message):
    src, dst = bundles
    _edit(src, edit)
    before = (dst / MANIFEST_NAME).read_bytes()
    with pytest.raises(ExportError, match=message):
        graft(src, dst, KEY, "test")
    assert (dst / MANIFEST_NAME).read_bytes() == before and not list(dst.glob(".graft-*"))
