"""One CLI convention everywhere (edge_runtime/cli_common.py): every console script of pyproject.toml and
every module CLI of the runtime, training, demo and benchmarks, given a bad input, exits 1 with one
``PROG: error: ...`` line on stderr and, with --json, ONE JSON object ``{"error", "error_type"}`` on stdout."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from facelivenet.edge_runtime.constants import EXIT_FAILURE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
MISSING = "/nonexistent/facelive-convention-test"

# console script (or module CLI) -> (entry point, argv with a bad input, the error_type it must name)
BAD_INPUT = {
    "facelive": (None, ["inspect", MISSING, "--json"], "ManifestError"),
    "facelive-train": (None, ["evaluate", "--data", MISSING, "--json"], "EvaluationError"),
    "facelive-export": (None, ["--calib", MISSING, "--out", "{tmp}/bundle", "--json"], None),
    "facelive-demo": (None, ["--headless", "--bundle", MISSING, "--json"], "ModelLoadError"),
    "facelive-bench": (None, ["--bundle", MISSING, "--json"], "ManifestError"),
    "facelive-bench attacks": ("facelivenet.benchmarks.attacks.cli:main", ["--data", MISSING, "--json"], None),
    "facelive-bench device": ("facelivenet.benchmarks.device_cli:main", ["--bundle", MISSING, "--json"],
                              "ManifestError"),
    "jaffe_per_class": ("facelivenet.training.evaluation.jaffe_per_class:main",
                        ["--data", MISSING, "--out", "{tmp}/per_class.json", "--json"], "DatasetLayoutError"),
    "android_stage": ("facelivenet.demo_kivy.android_stage:main", ["{tmp}/out", "--bundle", MISSING, "--json"],
                      "ManifestError"),
    "int8_scan": ("facelivenet.export.int8_scan:main", ["--calib", MISSING, "--out", "{tmp}/scan", "--json"],
                  "ExportError"),
    "teacher_eval": ("facelivenet.training.evaluation.teacher_eval:main",
                     ["--teacher", "arcface_fp", "--data", MISSING, "--json"], "ProtocolFileError"),
    "teacher_term": ("facelivenet.training.evaluation.teacher_term:main",
                     ["--checkpoint", f"{MISSING}/model.pt", "--teacher", "arcface_fp", "--data", MISSING, "--json"],
                     "CheckpointError"),
}
# Not yet on the shared path (issue 18, point 3): none left.
NOT_YET: dict[str, str] = {}


def console_scripts() -> dict[str, str]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


def _load(spec: str):
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def test_every_console_script_is_covered():
    assert set(console_scripts()) <= set(BAD_INPUT)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=NOT_YET[n], strict=False))
                                  if n in NOT_YET else n for n in BAD_INPUT])
def test_bad_input_exits_1_with_one_json_error(name, tmp_path, capsys, monkeypatch):
    spec, argv, error_type = BAD_INPUT[name]
    main = _load(spec or console_scripts()[name])
    monkeypatch.delenv("FACELIVE_BUNDLE", raising=False)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert code == EXIT_FAILURE, (code, out, err)
    assert len(lines) == 1, f"--json must print exactly one line on stdout, got {out!r}"
    payload = json.loads(lines[0])
    assert isinstance(payload["error"], str) and payload["error"] and "\n" not in payload["error"]
    assert isinstance(payload["error_type"], str)
    if error_type is not None:
        assert payload["error_type"] == error_type, payload
    assert "Traceback" not in err
    assert any(line.endswith(payload["error"]) and ": error: " in line for line in err.splitlines()), err


def test_an_os_error_exits_1_on_every_runner(tmp_path, capsys, monkeypatch):
    """facelive-export had its own failure path, where an OSError exited 3 (issue 27): now the one runner's."""
    from facelivenet.export import cli as export_cli

    def refuse(_options):
        raise PermissionError(13, "Permission denied", str(tmp_path / "bundle"))

    monkeypatch.setattr("facelivenet.export.pipeline.export_bundle", refuse)
    code = export_cli.main(["--out", str(tmp_path / "bundle"), "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_FAILURE and json.loads(out)["error_type"] == "PermissionError"
    assert err.strip().startswith("facelive-export: error: ") and "Permission denied" in err
