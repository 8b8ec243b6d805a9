"""The `facelive` console script: inspect and detect (ARCHITECTURE.md, "Commands")."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest

from facelivenet.edge_runtime.cli import main
from facelivenet.edge_runtime.manifest import MANIFEST_NAME


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_json_object(stdout: str) -> dict:
    """stdout holds exactly one JSON object and nothing else."""
    obj, end = json.JSONDecoder().raw_decode(stdout.lstrip())
    assert stdout.lstrip()[end:].strip() == "", f"more than one JSON value on stdout: {stdout!r}"
    assert isinstance(obj, dict)
    return obj


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("facelive: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


# --------------------------------------------------------------------------- inspect


def test_inspect_json_prints_the_manifest(build_bundle, capsys):
    bundle, manifest = build_bundle()
    code, out, err = _run(capsys, "inspect", str(bundle), "--json")
    assert code == 0, err
    obj = _one_json_object(out)
    assert obj == json.loads((bundle / MANIFEST_NAME).read_text()) == manifest.to_dict()


def test_inspect_summary(build_bundle, capsys):
    bundle, manifest = build_bundle()
    code, out, err = _run(capsys, "inspect", str(bundle))
    assert code == 0, err
    assert manifest.model_name in out and "sha256 verified" in out and "model_int8.onnx" in out
    assert "happy" in out and "112x112 gray NCHW" in out


def test_inspect_tampered_file_fails_with_one_line(build_bundle, capsys):
    bundle, manifest = build_bundle()
    (bundle / manifest.files[0].path).write_bytes(b"swapped model")
    code, out, err = _run(capsys, "inspect", str(bundle))
    assert code != 0
    assert out == ""
    line = _one_line_error(err)
    assert "model_int8.onnx" in line and "sha256" in line
    assert len(err.strip().splitlines()) == 1


def test_inspect_tampered_json_mode_still_one_object(build_bundle, capsys):
    bundle, manifest = build_bundle()
    (bundle / manifest.files[0].path).write_bytes(b"swapped model")
    code, out, err = _run(capsys, "inspect", str(bundle), "--json")
    assert code != 0
    obj = _one_json_object(out)
    assert obj["error_type"] == "ManifestError" and "sha256" in obj["error"]
    _one_line_error(err)


def test_inspect_no_verify_skips_hashes(build_bundle, capsys):
    bundle, manifest = build_bundle()
    (bundle / manifest.files[0].path).write_bytes(b"swapped model")
    code, out, err = _run(capsys, "inspect", str(bundle), "--no-verify")
    assert code == 0, err
    assert "NOT verified" in out


def test_inspect_not_a_bundle(tmp_path, capsys):
    code, out, err = _run(capsys, "inspect", str(tmp_path))
    assert code == 1 and out == ""
    assert "no manifest.json" in _one_line_error(err)


def test_inspect_invalid_manifest_names_the_field(build_bundle, capsys):
    bundle, _ = build_bundle()
    d = json.loads((bundle / MANIFEST_NAME).read_text())
    del d["thresholds"]["target_far"]
    (bundle / MANIFEST_NAME).write_text(json.dumps(d))
    code, _, err = _run(capsys, "inspect", str(bundle))
    assert code == 1 and "thresholds.target_far" in _one_line_error(err)


# --------------------------------------------------------------------------- detect


def test_detect_json_on_a_real_image(detector_path, lfw_samples, capsys):
    code, out, err = _run(capsys, "detect", str(lfw_samples[0]), "--detector", str(detector_path), "--json")
    assert code == 0, err
    obj = _one_json_object(out)
    assert obj["num_images"] == 1 and obj["num_faces"] == 1
    assert obj["detector"] == str(detector_path)
    (entry,) = obj["images"]
    assert entry["path"] == str(lfw_samples[0]) and entry["width"] == entry["height"] == 250
    (face,) = entry["faces"]
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and 0.6 <= face["score"] <= 1
    assert all(len(p) == 2 for p in face["landmarks"])


def test_detect_uses_the_env_var(detector_path, jaffe_samples, monkeypatch, capsys):
    monkeypatch.setenv("FACELIVE_DETECTOR", str(detector_path))
    code, out, err = _run(capsys, "detect", str(jaffe_samples[0]))
    assert code == 0, err
    assert "1 face(s) in 256x256" in out and "score" in out


def test_detect_folder_and_save_crops(detector_path, lfw_samples, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in lfw_samples[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "notes.txt").write_text("not an image, not listed")
    crops = tmp_path / "crops"
    code, out, err = _run(
        capsys, "detect", str(folder), "--detector", str(detector_path), "--save-crops", str(crops),
        "--size", "96", "--colour", "rgb", "--json",
    )
    assert code == 0, err
    obj = _one_json_object(out)
    assert [e["path"] for e in obj["images"]] == [str(folder / p.name) for p in sorted(lfw_samples[:2])]
    assert obj["crop_config"]["input_size"] == 96 and obj["crop_config"]["colour"] == "rgb"
    written = [c for e in obj["images"] for c in e["crops"]]
    assert len(written) == 2
    for c in written:
        img = cv2.imread(c)
        assert img is not None and img.shape == (96, 96, 3)


def test_detect_reports_bad_images_and_fails(detector_path, lfw_samples, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    code, out, err = _run(capsys, "detect", str(lfw_samples[0]), str(bad), "--detector", str(detector_path), "--json")
    assert code == 1
    obj = _one_json_object(out)
    good, broken = obj["images"]
    assert good["num_faces"] == 1 and "error" in broken and str(bad) in broken["error"]
    assert "1 of 2 image(s) could not be read" in _one_line_error(err)


def test_detect_without_a_detector(tmp_path, no_detector_env, capsys):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), (255 * (cv2.getGaussianKernel(64, 10) @ cv2.getGaussianKernel(64, 10).T)).astype("uint8"))
    code, out, err = _run(capsys, "detect", str(img))
    assert code == 1 and out == ""
    line = _one_line_error(err)
    assert "FACELIVE_DETECTOR" in line and "--detector" in line


def test_detect_bad_size(detector_path, lfw_samples, tmp_path, capsys):
    code, _, err = _run(
        capsys, "detect", str(lfw_samples[0]), "--detector", str(detector_path), "--save-crops", str(tmp_path),
        "--size", "8",
    )
    assert code == 1 and "input_size" in _one_line_error(err)


def test_detect_empty_folder(tmp_path, capsys):
    code, _, err = _run(capsys, "detect", str(tmp_path))
    assert code == 1 and "holds no images" in _one_line_error(err)


# --------------------------------------------------------------------------- help, version, usage


def test_version(capsys):
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.startswith("facelive ")


@pytest.mark.parametrize("argv", [["--help"], ["inspect", "--help"], ["detect", "--help"]])
def test_help_teaches_with_examples(argv, capsys):
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    assert "examples:" in out and "facelive " in out.split("examples:")[1]


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["inspect", "a", "b"], ["detect"]])
def test_usage_errors_exit_2(argv, capsys):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == "" and "usage:" in err


def test_inspect_without_a_bundle_reads_the_shipped_one(capsys, monkeypatch):
    from facelivenet.edge_runtime.bundle import DEFAULT_BUNDLE_DIR

    monkeypatch.delenv("FACELIVE_BUNDLE", raising=False)
    code, out, _ = _run(capsys, "inspect", "--no-verify", "--json")
    shown, shipped = json.loads(out), json.loads((DEFAULT_BUNDLE_DIR / "manifest.json").read_text())
    assert code == 0 and shown["checkpoint_sha256"] == shipped["checkpoint_sha256"]
    assert [f["path"] for f in shown["files"]] == [f["path"] for f in shipped["files"]]


def test_console_script_keeps_stdout_clean(build_bundle, tmp_path):
    """A real process: -v logs go to stderr, stdout is the JSON object alone."""
    bundle, manifest = build_bundle()
    proc = subprocess.run(
        [sys.executable, "-m", "facelivenet.edge_runtime.cli", "-vv", "inspect", str(bundle), "--json"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert _one_json_object(proc.stdout) == manifest.to_dict()
    assert "facelive: INFO:" in proc.stderr and "sha256 verified" in proc.stderr
