"""facelive-bench end to end: bad input, --help, and the JSON shape of a --quick run on a tiny bundle."""

from __future__ import annotations

import json

from facelivenet.benchmarks.cli import main

ROW_KEYS = {"format", "precision", "threads", "size_bytes", "load_ms", "latency_ms", "rss_mb", "parity", "accuracy"}
PEER_KEYS = {"name", "params", "flops", "precision", "latency_ms", "ratio_vs_ours"}


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_missing_bundle_is_a_one_line_error(capsys, tmp_path):
    code, out, err = _run(capsys, ["--bundle", str(tmp_path / "nope"), "--json"])
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("facelive-bench: error: --bundle")
    assert json.loads(out)["error_type"] == "ManifestError"


def test_not_a_bundle_and_bad_options(capsys, tmp_path):
    code, _, err = _run(capsys, ["--bundle", str(tmp_path)])
    assert code == 1 and "manifest.json" in err and err.count("\n") == 1
    code, _, err = _run(capsys, ["--bundle", str(tmp_path), "--threads", "0"])
    assert code == 1 and err.count("\n") == 1
    code, _, err = _run(capsys, ["--bundle", str(tmp_path), "--peers", "alexnet"])
    assert code == 1 and err.count("\n") == 1
    code, _, err = _run(capsys, ["--nonsense"])
    assert code == 2


def test_bad_data_folder_and_tampered_bundle(capsys, tmp_path, bench_bundle):
    code, _, err = _run(capsys, ["--bundle", str(bench_bundle), "--data", str(tmp_path / "none")])
    assert code == 1 and "--data" in err and err.count("\n") == 1
    bad = tmp_path / "tampered"
    bad.mkdir()
    for f in bench_bundle.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model_int8.onnx").write_bytes(b"not a model")
    code, _, err = _run(capsys, ["--bundle", str(bad), "--quick"])
    assert code == 1 and "sha256" in err and err.count("\n") == 1


def test_help_teaches_with_examples(capsys):
    code, out, _ = _run(capsys, ["--help"])
    assert code == 0 and "examples:" in out and "--quick" in out and "attacks" in out


def test_subcommands_hand_over_their_arguments(capsys, monkeypatch):
    import sys
    import types

    from facelivenet.benchmarks import cli

    seen = []
    fake = types.ModuleType("fake_attacks_cli")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "fake_attacks_cli", fake)
    monkeypatch.setitem(cli.SUBCOMMANDS, "attacks", ("fake_attacks_cli", "test"))
    assert main(["attacks", "--quick", "--json"]) == 0 and seen == [["--quick", "--json"]]
    monkeypatch.setitem(cli.SUBCOMMANDS, "attacks", ("no_such_module_here", "test"))
    code, _, err = _run(capsys, ["attacks", "--quick"])
    assert code == 1 and err.count("\n") == 1 and "not available" in err
    assert "attacks" in cli.SUBCOMMANDS


def test_quick_json_shape_latency_only(capsys, monkeypatch, tmp_path, bench_bundle, bench_checkpoint):
    """No --data: latency rows for the files the bundle has, the others skipped, peers fp32, a line about parity."""
    monkeypatch.delenv("FACELIVE_DATA", raising=False)
    out_dir = tmp_path / "report"
    code, out, err = _run(capsys, [
        "--bundle", str(bench_bundle), "--checkpoint", str(bench_checkpoint), "--quick", "--json", "--threads", "1",
        "--runs", "3", "--warmup", "1", "--no-dlib", "--in-process", "--peers", "mobilefacenet", "--cache-dir", str(tmp_path / "cache"),
        "--out", str(out_dir)])
    assert code == 0, err
    result = json.loads(out)
    assert result["quick"] is True and any("QUICK" in n for n in result["notes"])
    assert any("--data" in n for n in result["notes"])
    assert set(result["machine"]) >= {"cpu", "threads", "peak_gflops"} and result["machine"]["peak_gflops"] > 0
    formats = {(r["format"], r["precision"]) for r in result["rows"]}
    assert formats == {("onnx", "fp32"), ("onnx", "int8"), ("torch", "fp32")}
    for r in result["rows"]:
        assert ROW_KEYS <= set(r)
        assert set(r["latency_ms"]) >= {"median", "p95", "p99"} and r["latency_ms"]["runs"] == 3
        assert r["parity"] == {} and r["accuracy"] == {}
    assert {s["format"] for s in result["skipped"]} == {"tflite", "coreml"}
    assert result["pipeline"]["measured"] is False
    assert [p["name"] for p in result["peers"]] == ["mobilefacenet"]
    for p in result["peers"]:
        assert PEER_KEYS <= set(p) and p["precision"] == "fp32" and p["ratio_vs_ours"] > 0
    assert all(t["holds"] is None for t in result["targets"])  # int8 peers need --data
    assert result["model"]["params"] > 0 and result["model"]["flops"] > 0
    for name in ("result.json", "report.md", "config.json", "latency.png", "peer_ratios.png"):
        assert (out_dir / name).is_file(), name
    assert json.loads((out_dir / "config.json").read_text())["quick"] is True
    assert "| onnx | int8 static | 1 |" in (out_dir / "report.md").read_text()
    assert all("variant" in r for r in result["rows"])


def test_quick_table_output(capsys, monkeypatch, tmp_path, bench_bundle, bench_checkpoint):
    monkeypatch.delenv("FACELIVE_DATA", raising=False)
    code, out, _ = _run(capsys, [
        "--bundle", str(bench_bundle), "--checkpoint", str(bench_checkpoint), "--quick", "--runs", "2",
        "--warmup", "0", "--no-peers", "--in-process"])
    assert code == 0
    assert out.startswith("# facelive-bench (QUICK") and "parity and accuracy need --data" in out
