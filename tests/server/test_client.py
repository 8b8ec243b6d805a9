"""The Python client (server/client.py) against the real server: ``create_app`` served by uvicorn on a
loopback port in this process, the shipped default bundle, a fresh SQLite database (tests/server/live_server.py).

The genuine session is JAFFE subject KL performing what the server asks (its
random challenge order, target ovals and rests), rendered as the attack suite
renders sessions; KL passes such sessions at the default thresholds (8 of 8
offline with seeds 0-7). The client tests' server allows any clock skew: the
frames go out as fast as they are rendered, not at 10 fps.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.server.client import (Client, Conflict, Forbidden, InvalidRequest, NotFound, RateLimited,
                                       ServerConnectionError, ServerError, ServerUnavailable, SessionExpired,
                                       Unauthorized, server_error)

from .app_fixtures import Performer
from .live_server import perform, running_server

FAST = {"max_clock_skew_s": 1e6}  # frames as fast as they are rendered


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("client") / "server.db", **FAST) as live:
        yield live


@pytest.fixture(scope="module")
def enrolled(server, jaffe) -> list[np.ndarray]:
    """KL enrolled on the server from her two neutral stills (the stills)."""
    stills = Performer(jaffe, "KL").enroll_images
    with Client(server.url, server.admin_key) as admin:
        assert admin.enroll("KL", stills).images_used == 2
    return stills


@pytest.fixture
def kl(enrolled, jaffe) -> Performer:
    """KL in front of the camera, from her first frame (a performer is one session's)."""
    return Performer(jaffe, "KL")


def no_face() -> np.ndarray:
    y, x = np.mgrid[0:480, 0:640]
    return np.dstack([x / 640 * 150 + 40, y / 480 * 120 + 50, np.full(x.shape, 110.0)]).astype(np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_needs_no_key_and_one_connection_is_kept_alive(server):
    with Client(server.url + "/", "") as c:
        assert c.health() == {"status": "ok", "store": "sqlite", "model": c.health()["model"], "api": "v1"}
        sock = c._conn.sock
        c.health()
        assert c._conn.sock is sock, "keep-alive: the same connection serves every call"


def test_enroll_list_delete(server, jaffe):
    with Client(server.url, server.admin_key) as admin:
        done = admin.enroll("KL-files", [jaffe / "KL.NE1.155.tiff", jaffe / "KL.NE3.157.tiff"])  # TIFF sent as JPEG
        assert (done.user, done.images_used, done.images_rejected) == ("KL-files", 2, [])
        assert done.model.startswith(admin.health()["model"])
        users = {u["user"]: u for u in admin.users()}
        assert users["KL-files"]["images"] == 2
        assert admin.delete_user("KL-files")["user"] == "KL-files"
        assert "KL-files" not in {u["user"] for u in admin.users()}
        with pytest.raises(NotFound) as err:
            admin.delete_user("KL-files")
        assert (err.value.status, err.value.code) == (404, "unknown_user")


def test_enrollment_without_a_usable_face_is_refused_and_stores_nothing(server):
    with Client(server.url, server.admin_key) as admin:
        with pytest.raises(InvalidRequest) as err:
            admin.enroll("nobody", [no_face()])
        assert (err.value.status, err.value.code) == (422, "enrollment_failed")
        assert "nobody" not in {u["user"] for u in admin.users()}


def test_keys_and_scopes(server):
    with Client(server.url, server.app_key) as app:
        with pytest.raises(Forbidden) as err:
            app.users()
        assert (err.value.status, err.value.code) == (403, "forbidden")
    with Client(server.url, "flk_00000000_" + "a" * 43) as wrong:
        with pytest.raises(Unauthorized) as err:
            wrong.start_session("KL")
        assert (err.value.status, err.value.code) == (401, "bad_key")
    with Client(server.url, "") as none:
        with pytest.raises(Unauthorized) as err:
            none.start_session("KL")
        assert err.value.code == "missing_key"


def test_unknown_user_and_session_are_not_found(server, kl):
    with Client(server.url, server.admin_key) as admin:
        with pytest.raises(NotFound) as err:
            admin.start_session("nobody")
        assert err.value.code == "unknown_user"
        with pytest.raises(NotFound) as err:
            admin.admin_session("no-such-session")
        assert err.value.code == "unknown_session"


def test_a_genuine_session_from_start_to_decision(server, kl):
    """The transcript: start, frames (each answered with the step, its deadline and the face), the decision
    once, and the admin read with what the app never sees."""
    exchanges = []
    with Client(server.url, server.app_key, trace=exchanges.append) as app:
        session = app.start_session("KL")
        assert session.pending and session.steps == 4 and session.step.index == 0
        assert session.step.expected == "neutral" and session.step.deadline_t is None
        assert session.limits["max_frames"] == server.config.max_frames
        replies = perform(session, kl)
        outcome = session.result()
        assert outcome.accepted and (outcome.user, outcome.reason) == ("KL", None), outcome
        with pytest.raises(Conflict) as err:
            session.result()
        assert err.value.code == "result_already_delivered"
    assert replies[-1].status == "decided" and all(r.pending for r in replies[:-1])
    assert [r.frames for r in replies] == list(range(1, len(replies) + 1)) and session.seq == len(replies)
    assert replies[0].deadline_t == pytest.approx(replies[0].step.timeout_s)  # the first frame fixed the origin
    asked = [r.step.index for r in replies[:-1]]
    assert asked == sorted(asked) and asked[-1] == 3, "the steps advance in order to the last one"
    faces = [r.face for r in replies if r.face is not None]
    assert len(faces) >= 0.9 * len(replies)
    assert all(0 <= v <= 1 for f in faces for v in f.box) and any(f.in_target for f in faces)
    nonces = [e["path"].split("nonce=")[1] for e in exchanges if "/frames?" in e["path"]]
    assert len(set(nonces)) == len(nonces), "a new nonce for every frame"
    assert all("Bearer" not in str(e) and server.app_key not in str(e) for e in exchanges), "a trace never shows the key"
    assert "score" not in str([e["response"] for e in exchanges]), "no score reaches an app-scope client"
    with Client(server.url, server.admin_key) as admin:
        detail = admin.admin_session(outcome.session_id)
        assert (detail["status"], detail["reasons"], detail["frames"]) == ("accept", [], len(replies))
        assert detail["thresholds"] and detail["result"]["decision"] == "accept"
        assert {r.expected for r in replies[:-1]} == {"neutral", *detail["challenge"]}
        assert any(a["success"] for a in admin.attempts("KL"))


def test_refused_frames_leave_the_session_as_it_was(server, kl):
    with Client(server.url, server.app_key) as app:
        session = app.start_session("KL")
        image, t = kl.frame(0, session.opened["step"]), 0.0
        first_nonce = session.nonce
        session.send(image, t)
        kept = (session.seq, session.nonce)
        session.nonce = first_nonce  # a replayed frame: its nonce was used
        with pytest.raises(Conflict) as err:
            session.send(image, t + 0.1)
        assert err.value.code == "bad_nonce"
        session.nonce = kept[1]
        assert session.seq == kept[0]
        with pytest.raises(InvalidRequest) as err:
            session.send(b"this is not a JPEG", t + 0.1)
        assert (err.value.status, err.value.code) == (415, "not_a_jpeg")
        other = Client(server.url, server.add_key("another-app"))
        with other, pytest.raises(Forbidden) as err:
            other.request("POST", f"/sessions/{session.session_id}/result")
        assert err.value.code == "session_not_yours"
        reply = session.send(kl.frame(1, session.opened["step"]), t + 0.1)
        assert reply.frames == 2 and reply.pending, "the refusals changed nothing"
        outcome = session.result()
        assert (outcome.decision, outcome.reason) == ("reject", "abandoned")


def test_an_expired_session_the_rate_limit_and_a_reconnect(tmp_path, jaffe):
    """The server closes idle connections after 0.2 s here: the client reconnects once, by itself."""
    kl = Performer(jaffe, "KL")
    with running_server(tmp_path / "limits.db", uvicorn_options={"timeout_keep_alive": 0.2}, max_frame_gap_s=0.3,
                        rate_sessions_per_min=2, **FAST) as live:
        with Client(live.url, live.admin_key) as admin:
            admin.enroll("KL", kl.enroll_images)
            session = admin.start_session("KL")
            session.send(kl.frame(0, session.opened["step"]), 0.0)
            idle = admin._conn.sock
            time.sleep(0.5)
            with pytest.raises(SessionExpired) as err:
                session.send(kl.frame(1, session.opened["step"]), 0.1)
            assert (err.value.status, err.value.code) == (410, "session_expired")
            assert admin._conn.sock is not idle, "a new connection after the server closed the idle one"
            assert session.result().reason == "expired"
            with pytest.raises(RateLimited) as err:  # 2 starts a minute: the third (sooner if results count too)
                for _ in range(2):
                    admin.start_session("KL")
            assert err.value.code == "rate_limited" and err.value.retry_after > 0


def test_a_server_that_is_not_there_is_one_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "k", timeout_s=2) as c, pytest.raises(ServerConnectionError) as err:
        c.health()
    assert f"cannot reach the server at {url}" in str(err.value)
    with pytest.raises(FaceLiveError, match="server URL must look like"):
        Client("ftp://example.org", "k")


def test_error_bodies_map_to_their_family():
    limited = server_error(429, b'{"error": {"code": "rate_limited", "message": "slow down", "status": 429}}', "3")
    assert isinstance(limited, RateLimited) and (limited.code, limited.retry_after) == ("rate_limited", 3.0)
    proxy = server_error(502, b"<html>Bad Gateway</html>")
    assert isinstance(proxy, ServerUnavailable) and proxy.code == "http_502" and "Bad Gateway" in proxy.message
    assert type(server_error(418, b"")) is ServerError


def test_https_with_the_servers_certificate(tmp_path):
    """TLS in uvicorn (--ssl-certfile / --ssl-keyfile): the client verifies the server against a given CA."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                           str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr[-300:]}")
    tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    with running_server(tmp_path / "tls.db", uvicorn_options=tls) as live:
        assert live.url.startswith("https://")
        with Client(live.url, live.admin_key, ssl_context=ssl.create_default_context(cafile=str(cert))) as c:
            assert c.health()["status"] == "ok"
        with Client(live.url, live.admin_key) as untrusted, pytest.raises(ServerConnectionError, match="CERTIFICATE"):
            untrusted.health()


def test_the_protocol_page_names_every_path_and_code(server):
    """docs/server/protocol.md against the running server's OpenAPI document and the code table."""
    import json
    import urllib.request

    from facelivenet.server.errors import CODES

    page = (Path(__file__).resolve().parents[2] / "docs" / "server" / "protocol.md").read_text(encoding="utf-8")
    with urllib.request.urlopen(server.url + "/openapi.json", timeout=10) as answer:
        paths = json.load(answer)["paths"]
    for path, operations in paths.items():
        for method in operations:
            assert f"`{method.upper()} {path}" in page, f"{method.upper()} {path} is not on the protocol page"
    missing = [code for code, status in CODES.items() if f"| {status} | `{code}` |" not in page]
    assert not missing, f"codes missing from the protocol page's table: {missing}"
