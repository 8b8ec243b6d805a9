"""``facelive serve`` and ``facelive keys`` (server/cli.py): keys printed once, the settings from flags and
YAML, a clear error without the server extra, and the real server in its own processes (2 workers) answering
on loopback, refusing a 50 MB body from its header alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from facelivenet.edge_runtime import cli


def run(capsys, *argv: str) -> tuple[int, dict, str]:
    code = cli.main(["-q", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("{") else {}), err


def test_keys_add_list_revoke(tmp_path, capsys):
    db = str(tmp_path / "keys.db")
    code, added, _ = run(capsys, "keys", "add", "kiosk", "--scope", "app", "--db", db, "--json")
    assert code == 0 and added["key"].startswith(f"flk_{added['key_id']}_") and added["scope"] == "app"
    code, listed, _ = run(capsys, "keys", "list", "--db", db, "--json")
    assert code == 0 and [k["key_id"] for k in listed["keys"]] == [added["key_id"]]
    assert added["key"].split("_", 2)[2] not in json.dumps(listed)  # the secret is shown once only
    code, revoked, _ = run(capsys, "keys", "revoke", added["key_id"], "--db", db, "--json")
    assert code == 0 and revoked["revoked"] is True
    code, listed, _ = run(capsys, "keys", "list", "--db", db, "--json")
    assert listed["keys"][0]["revoked"] is True
    code, failed, err = run(capsys, "keys", "revoke", "00000000", "--db", db, "--json")
    assert code == 1 and "no key" in failed["error"] and err.startswith("facelive: error:")


def test_serve_settings_from_yaml_and_flags(tmp_path, capsys):
    cfg = tmp_path / "server.yaml"
    cfg.write_text("port: 9001\nmax_frames: 100\nrate_frames_per_s: 200\n"
                   "session:\n  max_failures: 50\n  positions: off\n  hold_frames: 4\n")
    code, out, _ = run(capsys, "serve", "--config", str(cfg), "--db", str(tmp_path / "s.db"), "--max-frames", "300",
                       "--hold-frames", "5", "--check", "--json")
    assert code == 0, out
    assert (out["port"], out["max_frames"], out["rate_frames_per_s"]) == (9001, 300, 200)
    assert out["session"]["max_failures"] == 50 and out["session"]["positions"] is None
    assert out["session"]["hold_frames"] == 5 and out["session"]["timing"]["hold_max_s"] == 2.0
    assert out["model_fingerprint"].startswith("facelivenet:")
    assert out["db_timeout_s"] == 10.0  # the default PostgreSQL statement timeout


def test_serve_refuses_bad_settings_in_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("max_frame: 10\n")
    code, out, err = run(capsys, "serve", "--config", str(cfg), "--check", "--json")
    assert code == 1 and "unknown server setting(s) max_frame" in out["error"]
    assert err.count("\n") == 1
    cfg.write_text("session:\n  seed: 3\n")
    code, out, _ = run(capsys, "serve", "--config", str(cfg), "--check", "--json")
    assert code == 1 and "draws every challenge unseen" in out["error"]
    cfg.write_text("db_timeout_s: 0\n")
    code, out, _ = run(capsys, "serve", "--config", str(cfg), "--check", "--json")
    assert code == 1 and "db_timeout_s must be a number > 0" in out["error"]


def test_without_the_server_extra_the_error_names_it(tmp_path):
    script = ("import sys; sys.modules['fastapi'] = None\n"
              "from facelivenet.edge_runtime import cli\n"
              f"sys.exit(cli.main(['serve', '--db', {str(tmp_path / 's.db')!r}, '--check']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert 'pip install "facelivenet[server]"' in done.stderr and "fastapi" in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_facelive_serve_two_workers_on_loopback(tmp_path):
    db, port = str(tmp_path / "serve.db"), _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "facelivenet.edge_runtime.cli", "serve", "--db", db, "--port",
                             str(port), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    try:
        deadline, health = time.monotonic() + 60, None
        while health is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {proc.stdout.read().decode(errors='replace')[-2000:]}")
            try:
                health = _get(f"http://127.0.0.1:{port}/v1/health")
            except OSError:
                time.sleep(0.2)
        assert health["status"] == "ok" and health["store"] == "sqlite" and health["api"] == "v1"
        paths = sorted(_get(f"http://127.0.0.1:{port}/openapi.json")["paths"])
        assert "/v1/sessions/{session_id}/frames" in paths
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # headers only: no body follows
            s.sendall(b"POST /v1/sessions/x/frames?seq=0&t=0&nonce=n HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: image/jpeg\r\nContent-Length: 52428800\r\n\r\n")
            answer = b""
            while chunk := s.recv(65536):  # the server answers at once and closes the connection
                answer += chunk
            answer = answer.decode()
        assert answer.startswith("HTTP/1.1 413") and '"code":"frame_too_large"' in answer.replace(" ", "")
        assert _get(f"http://127.0.0.1:{port}/v1/health")["status"] == "ok"
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
