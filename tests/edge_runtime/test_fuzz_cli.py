"""Fuzzed ``facelive`` command lines: any argv gives an exit code, never an exception or a traceback.

argv is drawn from the real parser's subcommands and arguments (most required
ones, some optional ones, now and then a stray token), with values that mostly
fit the argument: small numbers, odd text, choices, and paths to things that exist (a face image, a
folder of frames, a valid and a corrupt database, a pairs CSV, a bundle copy
with a tampered model) or do not. The commands run for real in a scratch
folder. Checks: ``main`` returns an int in the documented set; stderr holds
no traceback; with ``--json`` (and no --help/--version), stdout is exactly one
strict JSON object.

Known bugs stay out of the drawn values and have their own strict-xfail tests
below (huge --threads / --length hang; NaN options are accepted and printed
as invalid JSON; a path component over the file system's name limit is an
internal error; ``calibrate --out SRC --force`` deletes the source bundle).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from facelivenet.edge_runtime.bundle import resolve_bundle_dir
from facelivenet.edge_runtime.cli import build_parser, main
from facelivenet.edge_runtime.manifest import load_manifest
from facelivenet.edge_runtime.store import TemplateStore

FUZZ = settings(max_examples=int(os.environ.get("FACELIVE_FUZZ_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
EXIT_CODES = {0, 1, 2, 4}
ODD_VALUE, STRAY_TOKEN, OPTIONAL = 1 / 12, 1 / 10, 1 / 4  # chances: an odd value, a stray token, an optional argument  # success, failure, usage, rejected (3 = an internal error: a bug)
COMMANDS = ["enroll", "auth", "verify", "calibrate", "users", "inspect", "detect", "keygen", "sign"]
INTS = ["-1", "0", "1", "2", "3", "7"]
FLOATS = ["-1", "0", "0.5", "1e-3", "0.99", "1", "-0.5", "1e5", "30"]
NUMBERS = sorted(set(INTS + FLOATS)) + ["x1"]
WORDS = ["happy", "surprise,happy", "neutral", "happy,,", "gray", "rgb", "onnx", "tflite", "coreml", "int8", "fp32",
         "fp16", "alice", " alice", "KA", "", "-", "--", "é", "1e-3,1e-2"]
SAFE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00./\\"), max_size=12)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, jaffe_samples, detector_path) -> dict[str, str]:
    """The things argv may point at (names -> paths), in a module-wide scratch folder."""
    root = tmp_path_factory.mktemp("fuzz_cli")
    face = root / "face.tiff"
    shutil.copy(jaffe_samples[0], face)
    frames = root / "frames"
    frames.mkdir()
    for i, sample in enumerate(jaffe_samples):
        shutil.copy(sample, frames / f"{i:03d}.tiff")
    (root / "empty").mkdir()
    (root / "bad.png").write_bytes(os.urandom(200))
    (root / "zero.png").write_bytes(b"")
    cv2.imwrite(str(root / "blank.png"), np.full((64, 64, 3), 128, np.uint8))
    (root / "pairs.csv").write_text(f"img1,img2,label\n{face},{frames / '001.tiff'},0\n{face},{face},1\n")
    (root / "bad.csv").write_text("a,b\n1\n")
    (root / "corrupt.db").write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    bundle = resolve_bundle_dir(None)
    manifest = load_manifest(bundle, verify_files=False)
    with TemplateStore(root / "users.db") as store:
        store.put("alice", f"{manifest.model_name}:{manifest.checkpoint_sha256}", np.eye(1, 128, dtype=np.float32))
    tampered = root / "tampered"
    shutil.copytree(bundle, tampered)
    model = tampered / manifest.select().path
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model.write_bytes(bytes(blob))
    names = ["face.tiff", "frames", "empty", "bad.png", "zero.png", "blank.png", "pairs.csv", "bad.csv", "corrupt.db",
             "users.db", "tampered", "missing.png", "new.db", "out", "crops"]
    return {n: str(root / n) for n in names} | {"bundle": str(bundle), "detector": str(detector_path)}


def _subcommand_actions() -> dict[str, list[argparse.Action]]:
    """Each subcommand's arguments, read from the real parser (help excluded)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: [a for a in p._actions if not isinstance(a, argparse._HelpAction)] for name, p in sub.choices.items()}


def _value_pools(action: argparse.Action, scratch: dict[str, str]):
    """(values that fit the argument, anything)."""
    paths = sorted(scratch.values())
    fitting = {
        "db": ["users.db", "corrupt.db", "new.db", "bad.png", "empty", "missing.png"],
        "bundle": ["bundle", "tampered", "empty", "missing.png"],
        "pairs": ["pairs.csv", "bad.csv", "face.tiff", "missing.png"],
        "detector": ["detector", "bundle", "face.tiff", "missing.png"],
        "out": ["out", "empty", "missing.png"],
        "save_crops": ["crops", "face.tiff"],
    }
    if action.choices:
        good = st.sampled_from(sorted(map(str, action.choices)))
    elif action.dest in fitting:
        good = st.sampled_from([scratch[n] for n in fitting[action.dest] if n in scratch])
    elif action.type in (int, float):
        good = st.sampled_from(INTS if action.type is int else FLOATS)
    elif action.dest in ("images", "source", "bundle_path") or action.type is Path:
        good = st.sampled_from([scratch[n] for n in ("face.tiff", "frames", "empty", "bad.png", "zero.png",
                                                     "blank.png", "missing.png")] + ["0"])
    else:
        good = st.sampled_from(WORDS)
    return good, st.one_of(st.sampled_from(NUMBERS), st.sampled_from(WORDS), st.sampled_from(paths), SAFE_TEXT)


def _chance(data: st.DataObject, p: float, label: str) -> bool:
    """True with probability about ``p`` (uniform draws: hypothesis favours the ends of numeric ranges)."""
    n = max(2, round(1 / min(p, 1 - p)))
    hit = data.draw(st.sampled_from(range(n)), label=label) == 0
    return hit if p <= 0.5 else not hit


def _draw_argv(data: st.DataObject, scratch: dict[str, str]) -> list[str]:
    """A command line: a subcommand, most required and some optional arguments, now and then a stray token."""
    actions = _subcommand_actions()
    # serve runs until stopped: a draw whose flags are all valid would start a real server (tests/server has its own)
    command = data.draw(st.sampled_from(sorted(set(actions) - {"serve"}) + ["frobnicate"]), label="command")
    argv = [command]
    positional: list[str] = []
    for action in actions.get(command, []):
        if not _chance(data, 0.9 if (action.required or not action.option_strings) else OPTIONAL, action.dest):
            continue
        count = {"+": (1, 3), "*": (0, 2), None: (1, 1), 0: (0, 0)}.get(action.nargs, (1, 1))
        good, anything = _value_pools(action, scratch)
        values = [data.draw(anything if _chance(data, ODD_VALUE, "odd value") else good,
                            label=action.dest) for _ in range(data.draw(st.integers(*count), label=f"n {action.dest}"))]
        if action.option_strings:
            argv += [data.draw(st.sampled_from(action.option_strings), label="flag"), *values]
        else:
            positional += values
    argv += positional
    if _chance(data, STRAY_TOKEN, "stray token"):
        stray = data.draw(st.one_of(st.sampled_from(["--bogus", "-v", "--json", "--help"]), SAFE_TEXT), label="stray")
        argv.insert(data.draw(st.integers(1, len(argv)), label="where"), stray)
    return argv


def _strict_json(text: str) -> dict:
    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    obj = json.loads(text, parse_constant=no_constants)
    assert isinstance(obj, dict)
    return obj


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@FUZZ
@given(data=st.data())
def test_fuzz_random_argv(scratch, tmp_path, monkeypatch, capsys, data):
    monkeypatch.chdir(tmp_path)  # enroll's default ./facelive.db and any relative output land here
    argv = _draw_argv(data, scratch)
    code, out, err = _run(argv, capsys)
    event(f"{argv[0]} exit {code}")
    assert isinstance(code, int) and code in EXIT_CODES, (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if "--json" in argv and code != 2 and not {"--help", "-h", "--version"} & set(argv):
        _strict_json(out)


def test_fuzz_finds_real_commands_running(scratch, tmp_path, monkeypatch, capsys):
    """The pool reaches the real code: a plain enroll + auth from it work (not only usage errors)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(["enroll", "--db", "fuzz.db", "--user", "KA", scratch["face.tiff"], "--json"], capsys)
    assert code == 0, err
    code, out, err = _run(["auth", "--db", "fuzz.db", "--user", "KA", "--source", scratch["frames"], "--positions", "off",
                           "--timing", "off", "--fixed-order", "--json"], capsys)
    assert code in (0, 4) and _strict_json(out)["decision"] in ("accept", "reject"), err


# ----------------------------------------------------------------------------------- known bugs


def _facelive(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess | None:
    """Run the console script; None when it is still running after ``timeout`` seconds."""
    try:
        return subprocess.run([sys.executable, "-m", "facelivenet.edge_runtime.cli", *args], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.slow
def test_huge_challenge_length_is_refused(scratch, tmp_path):
    proc = _facelive(["auth", "--db", scratch["users.db"], "--user", "alice", "--source", scratch["frames"],
                      "--length", "1000000000", "--json"], tmp_path, timeout=30)
    assert proc is not None and proc.returncode == 2 and "--length" in proc.stderr  # a usage error


@pytest.mark.slow
@pytest.mark.parametrize("threads", ["3000", "100000000000000000000"])
def test_absurd_thread_counts_are_refused(scratch, tmp_path, threads):
    proc = _facelive(["verify", scratch["face.tiff"], scratch["face.tiff"], "--threads", threads, "--json"],
                     tmp_path, timeout=60)
    assert proc is not None and proc.returncode == 2 and "--threads" in proc.stderr  # a usage error


@pytest.mark.parametrize("argv", [
    ["verify", "{face}", "{face}", "--threshold", "nan"],
    ["auth", "--db", "{users}", "--user", "alice", "--source", "{face}", "--step-timeout", "nan"],
    ["auth", "--db", "{users}", "--user", "alice", "--source", "{face}", "--fps", "nan"],
], ids=["verify-threshold", "auth-step-timeout", "auth-fps"])
def test_nan_options_are_refused(scratch, tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(face=scratch["face.tiff"], users=scratch["users.db"]) for a in argv]
    code, out, err = _run([*argv, "--json"], capsys)
    assert code == 2 and "finite" in err and "nan" not in out.lower()  # refused as a usage error, before any output


def test_calibrate_out_equal_to_source_keeps_the_source(scratch, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "source_bundle"
    shutil.copytree(scratch["bundle"], source)
    code, _, err = _run(["calibrate", "--bundle", str(source), "--pairs", scratch["pairs.csv"], "--far", "0.5",
                         "--out", str(source), "--force"], capsys)
    assert code == 1 and "--out must differ" in err
    assert (source / "manifest.json").is_file()


@pytest.mark.parametrize("argv", [["inspect", "{long}"], ["detect", "{long}"], ["users", "--db", "{long}"],
                                  ["enroll", "--db", "{long}", "--user", "x", "{face}"],
                                  ["auth", "--db", "{users}", "--user", "alice", "--source", "{long}"]],
                         ids=["inspect", "detect", "users", "enroll-db", "auth-source"])
def test_over_long_path_is_a_clean_failure(scratch, tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(long="a" * 300, face=scratch["face.tiff"], users=scratch["users.db"]) for a in argv]
    code, _, err = _run(argv, capsys)
    assert code == 1 and "internal error" not in err


def test_negative_seed_is_a_clean_failure(scratch, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(["auth", "--db", scratch["users.db"], "--user", "alice", "--source", scratch["face.tiff"],
                         "--seed", "-1"], capsys)
    assert code in (1, 2) and "internal error" not in err


@pytest.mark.parametrize("command", ["detect", "verify"])
def test_detector_that_is_not_a_model_is_a_clean_failure(scratch, tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run([command, scratch["face.tiff"], scratch["face.tiff"], "--detector", scratch["bad.png"]], capsys)
    assert code == 1 and "internal error" not in err
