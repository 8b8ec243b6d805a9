"""``facelive-demo --server URL --api-key KEY`` headless: the same screens with a real verification server
deciding (``create_app`` served by uvicorn on a loopback port in this process, the shipped bundle, a fresh
SQLite database; tests/server/live_server.py). The app enrolls through the server and streams the frames it
reads; the outcome is the server's coarse decision.

The frames are recorded (JAFFE stills, as in test_demo_headless.py): the server runs with positions and
timing off for the accepted run, and with them on (its defaults) for the run that shows the target oval
(a recording cannot follow it). The server draws every challenge itself; a one-expression challenge
(happy) keeps a recording's order right.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from facelivenet.demo_kivy.guidance import INSTRUCTIONS
from facelivenet.edge_runtime.options import SessionSettings
from tests.server.live_server import recorded, running_server

from .conftest import needs_kivy, run_demo
from .test_demo_headless import OVAL, check_screenshot

pytestmark = needs_kivy

SESSION = {"challenge": ("happy",)}


def demo(tmp_path: Path, server, key: str, *args: str, detector_path=None):
    return run_demo(tmp_path, "--headless", "--server", server.url, "--api-key", key, "--user", "KL", "--fps", "10",
                    *args, detector_path=detector_path)


def test_enroll_and_authenticate_through_the_server(frame_dirs, tmp_path):
    with running_server(tmp_path / "server.db", session=recorded(**SESSION)) as server:
        run = demo(tmp_path, server, server.admin_key, "--source", str(frame_dirs["enroll_then_genuine"]),
                   "--screenshot", str(tmp_path / "server.png"))
        out = run.payload
        assert run.code == 0, (out, run.stderr[-2000:])
        assert (out["decision"], out["reasons"], out["user"]) == ("accept", [], "KL"), out
        assert out["server"] == server.url and out["challenge"] == ["happy"]
        assert out["enrollment"]["images_used"] == 5 and out["enrollment"]["server"] == server.url
        assert "identity_scores" not in out and "thresholds" not in out, "the server's scores stay on the server"
        shots = {s["screen"]: s for s in out["screenshots"]}
        assert list(shots) == ["home", "enroll", "auth", "result"]
        for shot in shots.values():
            check_screenshot(shot, tmp_path)
        assert shots["home"]["text"].startswith(f"server {server.url} decides")
        assert shots["enroll"]["text"] == "Enrolled KL from 5 frame(s)"
        assert shots["auth"]["text"] == INSTRUCTIONS["happy"]
        assert shots["result"]["text"].startswith("ACCEPTED")
        from facelivenet.server.client import Client

        with Client(server.url, server.admin_key) as admin:  # what the server recorded
            attempts = admin.attempts("KL")
            assert [a["success"] for a in attempts] == [True]
            detail = admin.admin_session(out["session_id"])
            assert detail["status"] == "accept" and detail["frames"] == out["frames"]


def test_the_servers_target_oval_is_drawn(frame_dirs, tmp_path):
    """Positions and timing on (the server's defaults): the auth screen draws the oval the server asked for; a
    recording cannot follow it, so the server rejects, and the app says why in its coarse words."""
    with running_server(tmp_path / "server.db", session=SessionSettings(**SESSION)) as server:
        run = demo(tmp_path, server, server.admin_key, "--source", str(frame_dirs["enroll_then_genuine"]),
                   "--screenshot", str(tmp_path / "oval.png"))
    out = run.payload
    assert run.code == 4 and out["decision"] == "reject", (out, run.stderr[-2000:])
    assert len(out["reasons"]) == 1 and out["reasons"][0] in ("timeout", "not_verified", "abandoned"), out
    shots = {s["screen"]: s for s in out["screenshots"]}
    preview = check_screenshot(shots["auth"], tmp_path)[130:560, 12:468]
    assert (preview == OVAL).all(axis=2).sum() > 150, "the server's target oval on the preview"
    assert shots["result"]["text"].startswith("REJECTED")
    assert cv2.imread(shots["auth"]["path"]) is not None


def test_server_mode_errors_are_one_line(frame_dirs, tmp_path):
    with running_server(tmp_path / "server.db", session=recorded(**SESSION)) as server:
        app_key_enroll = demo(tmp_path, server, server.app_key, "--source", str(frame_dirs["enroll"]))
        unknown = demo(tmp_path, server, server.app_key, "--source", str(frame_dirs["genuine"]), "--script", "auth")
        url = server.url
    assert app_key_enroll.code == 1 and "forbidden (403)" in app_key_enroll.payload["error"], app_key_enroll.payload
    assert unknown.code == 4 and unknown.payload["reasons"] == ["unknown_user"] and unknown.payload["frames"] == 0
    assert unknown.payload["reason_text"] == ["this user is not enrolled"]
    gone = demo(tmp_path, type("S", (), {"url": url}), "k", "--source", str(frame_dirs["enroll"]))
    assert gone.code == 1 and gone.payload["error_type"] == "ModelLoadError", gone.payload
    assert gone.payload["error"].startswith(f"cannot use the server at {url}: cannot reach the server at {url}")
    assert len(gone.stderr.strip().splitlines()) == 1, gone.stderr
    no_key = run_demo(tmp_path, "--headless", "--server", url, "--source", str(frame_dirs["enroll"]))
    assert no_key.code == 1 and "--api-key" in no_key.payload["error"], no_key.payload


def test_the_engine_lists_the_servers_users_with_an_admin_key_only(frame_dirs, tmp_path):
    """Kivy-free: the home screen's list comes from the server; an app key lists nobody (and is no error)."""
    from facelivenet.demo_kivy.server_engine import ServerEngine
    from facelivenet.demo_kivy.settings import DemoSettings
    from facelivenet.server.client import Client

    with running_server(tmp_path / "server.db", session=recorded(**SESSION)) as server:
        with Client(server.url, server.admin_key) as admin:
            admin.enroll("KL", sorted(frame_dirs["enroll"].glob("*.png"))[:2])
        listed, engines = {}, {}
        for scope, key in (("app", server.app_key), ("admin", server.admin_key)):
            engines[scope] = engine = ServerEngine(DemoSettings(server=server.url, api_key=key))
            engine.load_model()
            listed[scope] = [(u.user_id, engine.matches_model(u)) for u in engine.users()]
        engines["admin"].delete_user("KL")
        listed["after delete"] = engines["admin"].users()
        for engine in engines.values():
            engine.close()
    assert listed == {"app": [], "admin": [("KL", True)], "after delete": []}


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv("FACELIVE_API_KEY", raising=False)
