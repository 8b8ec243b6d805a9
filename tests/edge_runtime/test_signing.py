"""Signed manifests: a bundle signed by the deployer's key loads; an edited or unsigned one is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from facelivenet.edge_runtime import signing  # noqa: E402
from facelivenet.edge_runtime.errors import ManifestError  # noqa: E402
from facelivenet.edge_runtime.manifest import load_manifest  # noqa: E402


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, str]:
    return signing.generate_keypair(tmp_path / "keys")


@pytest.fixture()
def signed(build_bundle, keys) -> Path:
    bundle, _ = build_bundle()
    signing.sign_bundle(bundle, keys["private_key"])
    return bundle


def _lower_threshold(bundle: Path) -> None:
    path = bundle / "manifest.json"
    d = json.loads(path.read_text())
    d["thresholds"]["verification_cosine"] = -1.0  # what an attacker editing the JSON would do
    path.write_text(json.dumps(d))


def test_keygen_writes_a_private_key_only_its_owner_reads(keys):
    private, public = Path(keys["private_key"]), Path(keys["public_key"])
    assert private.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    assert keys["fingerprint"] == signing.fingerprint(signing.load_public_key(public))
    with pytest.raises(ManifestError, match="already exists"):
        signing.generate_keypair(private.parent)


def test_keygen_never_writes_into_a_bundle_or_over_a_file(build_bundle, tmp_path):
    bundle, _ = build_bundle()
    with pytest.raises(ManifestError, match="is a bundle folder"):
        signing.generate_keypair(bundle)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ManifestError, match="not a folder"):
        signing.generate_keypair(tmp_path / "a_file")
    with pytest.raises(ManifestError, match="plain file name"):
        signing.generate_keypair(tmp_path / "k", name="../escape")
    assert not list(bundle.glob("*.key")) and not list(bundle.glob("*.pub"))


def test_signed_bundle_loads_with_its_public_key(signed, keys):
    manifest = load_manifest(signed, public_key=keys["public_key"])
    record = json.loads((signed / signing.SIGNATURE_NAME).read_text())
    assert record["algorithm"] == "ed25519" and record["key_fingerprint"] == keys["fingerprint"]
    assert manifest.files


def test_an_edited_threshold_is_refused(signed, keys):
    _lower_threshold(signed)
    with pytest.raises(ManifestError, match="manifest was edited after signing"):
        load_manifest(signed, public_key=keys["public_key"])
    assert load_manifest(signed, public_key="").thresholds.verification_cosine == -1.0  # without a key: hashes only


def test_unsigned_bundle_or_another_key_is_refused(build_bundle, signed, keys, tmp_path):
    unsigned, _ = build_bundle(name="unsigned")
    with pytest.raises(ManifestError, match="is not signed"):
        load_manifest(unsigned, public_key=keys["public_key"])
    other = signing.generate_keypair(tmp_path / "other")
    with pytest.raises(ManifestError, match="not the configured public key"):
        load_manifest(signed, public_key=other["public_key"])


def test_public_key_from_the_environment(signed, keys, monkeypatch):
    monkeypatch.setenv(signing.PUBLIC_KEY_ENV, keys["public_key"])
    load_manifest(signed)
    _lower_threshold(signed)
    with pytest.raises(ManifestError, match="edited after signing"):
        load_manifest(signed)


@pytest.mark.parametrize("content, shown", [
    ("not json", "not a valid signature file"),
    ('{"algorithm": "rsa", "signature": "AAAA"}', "unsupported signature algorithm"),
    ('{"algorithm": "ed25519", "signature": "***"}', "not a valid signature file"),
])
def test_a_broken_signature_file_is_named(signed, keys, content, shown):
    (signed / signing.SIGNATURE_NAME).write_text(content)
    with pytest.raises(ManifestError, match=shown):
        load_manifest(signed, public_key=keys["public_key"])


def test_a_missing_or_wrong_key_file_is_a_clear_error(signed, keys, tmp_path):
    with pytest.raises(ManifestError, match="public key .* does not exist"):
        load_manifest(signed, public_key=tmp_path / "nope.pub")
    with pytest.raises(ManifestError, match="not a PEM public key"):
        load_manifest(signed, public_key=keys["private_key"])
    with pytest.raises(ManifestError, match="not an unencrypted PEM private key"):
        signing.sign_bundle(signed, keys["public_key"])


def test_signing_refuses_a_bundle_whose_files_do_not_match(build_bundle, keys):
    bundle, _ = build_bundle()
    (bundle / "model_int8.onnx").write_bytes(b"swapped model")
    with pytest.raises(ManifestError, match="sha256"):
        signing.sign_bundle(bundle, keys["private_key"])
    assert not (bundle / signing.SIGNATURE_NAME).exists()


def _facelive(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facelivenet.edge_runtime.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_keygen_sign_and_the_runtime_refusing_an_edited_copy(tmp_path):
    from facelivenet.edge_runtime.bundle import resolve_bundle_dir

    bundle = tmp_path / "bundle"
    shutil.copytree(resolve_bundle_dir(None), bundle)
    made = _facelive("keygen", "--out", str(tmp_path / "keys"), "--json")
    assert made.returncode == 0, made.stderr
    keys = json.loads(made.stdout)
    done = _facelive("sign", str(bundle), "--key", keys["private_key"], "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["key_fingerprint"] == keys["fingerprint"]
    shown = _facelive("inspect", str(bundle), "--public-key", keys["public_key"])
    assert shown.returncode == 0 and f"signature  verified with {keys['public_key']}" in shown.stdout
    _lower_threshold(bundle)
    face = str(Path(__file__).parent / "nonexistent.jpg")  # refused before any image is read
    run = _facelive("verify", face, face, "--bundle", str(bundle), "--public-key", keys["public_key"], "--json")
    assert run.returncode != 0
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and "manifest was edited after signing" in err[0]
    assert "edited after signing" in json.loads(run.stdout)["error"]


def test_a_calibrated_copy_of_a_signed_bundle_drops_the_stale_signature(signed, keys, tmp_path, monkeypatch):
    import dataclasses

    from facelivenet.edge_runtime.verification import write_calibrated_bundle

    monkeypatch.setenv(signing.PUBLIC_KEY_ENV, keys["public_key"])  # enforced on devices, and here
    manifest = load_manifest(signed)
    lowered = dataclasses.replace(manifest, thresholds=dataclasses.replace(manifest.thresholds,
                                                                           verification_cosine=0.5))
    out = write_calibrated_bundle(signed, tmp_path / "calibrated", lowered)
    assert not (out / signing.SIGNATURE_NAME).exists()
    with pytest.raises(ManifestError, match="is not signed"):  # refused until the deployer signs it again
        load_manifest(out)
    signing.sign_bundle(out, keys["private_key"])
    assert load_manifest(out).thresholds.verification_cosine == 0.5
