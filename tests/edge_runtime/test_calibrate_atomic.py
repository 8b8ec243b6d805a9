"""``facelive calibrate --force`` never leaves the user without a bundle: the old --out stays until the new
copy is built and verified (edge_runtime/bundle_io.py)."""

from __future__ import annotations

import dataclasses

import pytest

from facelivenet.edge_runtime import verification
from facelivenet.edge_runtime.errors import ManifestError
from facelivenet.edge_runtime.manifest import load_manifest
from facelivenet.edge_runtime.verification import write_calibrated_bundle


def _with_threshold(manifest, value: float):
    return dataclasses.replace(manifest, thresholds=dataclasses.replace(manifest.thresholds,
                                                                        verification_cosine=value))


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_force_replaces_the_old_copy_with_the_verified_new_one(build_bundle, tmp_path):
    src, manifest = build_bundle()
    out = tmp_path / "calibrated"
    write_calibrated_bundle(src, out, _with_threshold(manifest, 0.5))
    write_calibrated_bundle(src, out, _with_threshold(manifest, 0.6), force=True)
    assert load_manifest(out, verify_files=True).thresholds.verification_cosine == 0.6
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("stage", ["copy", "verify"])
def test_a_failed_rebuild_keeps_the_old_bundle(build_bundle, tmp_path, monkeypatch, stage):
    src, manifest = build_bundle()
    out = tmp_path / "calibrated"
    write_calibrated_bundle(src, out, _with_threshold(manifest, 0.5))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args, **kwargs):
        raise ManifestError(f"simulated failure while the new copy is {stage}ing")

    monkeypatch.setattr(verification.shutil if stage == "copy" else verification, "copytree" if stage == "copy"
                        else "load_manifest", fail)
    with pytest.raises(ManifestError, match="simulated failure"):
        write_calibrated_bundle(src, out, _with_threshold(manifest, 0.6), force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert _leftovers(tmp_path) == []  # no partial folder left behind


def test_without_force_an_existing_out_is_refused(build_bundle, tmp_path):
    src, manifest = build_bundle()
    out = tmp_path / "calibrated"
    write_calibrated_bundle(src, out, manifest)
    with pytest.raises(Exception, match="pass --force"):
        write_calibrated_bundle(src, out, manifest)
