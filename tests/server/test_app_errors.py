"""Every bad request of issue 26 answered with its JSON error and stable code, the server still serving after
it, and the session (and its attempts) unchanged unless the rule says otherwise. SQLite for speed (the main
paths run on both stores in test_app.py); the database-down test runs on the test run's PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from facelivenet.server.errors import CODES

from .app_fixtures import Performer, auth, jpeg, pipeline, serve  # noqa: F401

BLANK = jpeg(np.full((480, 640, 3), 128, np.uint8))  # decodes; no face in it


@pytest.fixture
def s(tmp_path, pipeline):  # noqa: F811
    with serve(str(tmp_path / "server.db"), pipeline) as served:
        yield served


@pytest.fixture(scope="module")
def kl(jaffe):  # noqa: F811
    return Performer(jaffe, "KL")


@pytest.fixture
def session(s, kl):
    """A pending session of KL (enrolled)."""
    s.enroll("KL", kl.enroll_images)
    return s.start("KL")


def test_every_code_has_its_status_and_one_body_shape():
    from facelivenet.server.errors import ApiError

    assert all(400 <= status <= 599 for status in CODES.values())
    e = ApiError("bad_nonce", "x")
    assert e.body() == {"error": {"code": "bad_nonce", "message": "x", "status": 409}}
    with pytest.raises(ValueError):
        ApiError("no_such_code", "x")


def test_missing_and_wrong_keys(s):
    s.error(s.client.post("/v1/sessions", json={"user": "KL"}), 401, "missing_key")
    s.error(s.client.post("/v1/sessions", json={"user": "KL"}, headers={"Authorization": "Basic abc"}), 401,
            "missing_key")
    s.error(s.client.post("/v1/sessions", json={"user": "KL"}, headers=auth("flk_00000000_" + "a" * 43)), 401,
            "bad_key")
    wrong_secret = s.app[:-4] + ("aaaa" if not s.app.endswith("aaaa") else "bbbb")
    s.error(s.client.post("/v1/sessions", json={"user": "KL"}, headers=auth(wrong_secret)), 401, "bad_key")
    s.error(s.client.get("/v1/users", headers=auth(s.app)), 403, "forbidden")


def test_a_revoked_key_is_refused(s):
    from facelivenet.server.store import open_store

    store = open_store(s.db)
    try:
        assert store.revoke_key(s.app.split("_")[1])
    finally:
        store.close()
    s.error(s.client.post("/v1/sessions", json={"user": "KL"}, headers=auth(s.app)), 401, "bad_key")


def test_unknown_route_method_and_malformed_body(s):
    s.error(s.client.get("/v1/nothing"), 404, "not_found")
    s.error(s.client.get("/"), 404, "not_found")
    s.error(s.client.delete("/v1/health"), 405, "method_not_allowed")
    s.error(s.client.post("/v1/sessions", content=b"{not json", headers={**auth(s.app),
                                                                         "Content-Type": "application/json"}),
            422, "invalid_request")
    s.error(s.client.post("/v1/sessions", json={"usr": "KL"}, headers=auth(s.app)), 422, "invalid_request")
    s.error(s.client.post("/v1/sessions", json={"user": " padded "}, headers=auth(s.app)), 422, "invalid_request")


def test_not_a_jpeg(s, session):
    s.error(s.send(session, 0, 0.0, session["nonce"], b"GIF89a" + b"\0" * 100), 415, "not_a_jpeg")
    s.error(s.send(session, 0, 0.0, session["nonce"], b"\xff\xd8\xff" + b"\0" * 100), 415, "not_a_jpeg")  # truncated
    s.error(s.send(session, 0, 0.0, session["nonce"], BLANK, content_type="text/plain"), 415, "not_a_jpeg")
    assert s.admin_read(session)["frames"] == 0
    assert s.send(session, 0, 0.0, session["nonce"], BLANK).status_code == 200  # the same nonce still works


def test_a_50_mb_body_is_refused(s, session):
    big = b"\xff\xd8\xff" + bytes(50 * 1024 * 1024)
    s.error(s.send(session, 0, 0.0, session["nonce"], big), 413, "frame_too_large")

    def chunked():  # no Content-Length: the stream is cut at the limit
        for _ in range(50):
            yield bytes(1024 * 1024)

    s.error(s.send(session, 0, 0.0, session["nonce"], chunked()), 413, "frame_too_large")
    s.error(s.client.post("/v1/sessions", content=b"{" + b" " * 70_000 + b"}",
                          headers={**auth(s.app), "Content-Type": "application/json"}), 413, "body_too_large")
    assert s.admin_read(session)["frames"] == 0


def test_a_frame_over_the_pixel_limit_is_a_bad_frame(tmp_path, pipeline, kl):  # noqa: F811
    with serve(str(tmp_path / "px.db"), pipeline, max_frame_pixels=100_000) as s:
        s.enroll("KL", kl.enroll_images)
        session = s.start("KL")
        s.error(s.send(session, 0, 0.0, session["nonce"], BLANK), 422, "bad_frame")
        assert s.admin_read(session)["status"] == "pending"


def test_a_frame_for_an_unknown_session(s):
    s.error(s.send({"session_id": "no-such-session"}, 0, 0.0, "x", BLANK), 404, "unknown_session")
    s.error(s.result({"session_id": "no-such-session"}), 404, "unknown_session")
    s.error(s.client.get("/v1/admin/sessions/no-such-session", headers=auth(s.admin)), 404, "unknown_session")


def test_a_reused_or_made_up_nonce(s, session):
    first = s.send(session, 0, 0.0, session["nonce"], BLANK)
    assert first.status_code == 200
    s.error(s.send(session, 1, 0.1, session["nonce"], BLANK), 409, "bad_nonce")  # the used one
    s.error(s.send(session, 1, 0.1, "made-up", BLANK), 409, "bad_nonce")
    assert s.admin_read(session)["frames"] == 1
    assert s.send(session, 1, 0.1, first.json()["nonce"], BLANK).status_code == 200


def test_frames_out_of_order_or_back_in_time(s, session):
    nonce = s.send(session, 0, 5.0, session["nonce"], BLANK).json()["nonce"]
    s.error(s.send(session, 0, 5.1, nonce, BLANK), 409, "frame_out_of_order")
    s.error(s.send(session, 2, 5.1, nonce, BLANK), 409, "frame_out_of_order")
    s.error(s.send(session, 1, 5.0, nonce, BLANK), 409, "frame_time_not_increasing")
    s.error(s.send(session, 1, 4.0, nonce, BLANK), 409, "frame_time_not_increasing")
    assert s.admin_read(session)["frames"] == 1


def test_frames_early_or_late_against_the_server_clock(s, session):
    nonce = s.send(session, 0, 100.0, session["nonce"], BLANK).json()["nonce"]
    s.clock.advance(0.5)
    s.error(s.send(session, 1, 101.6, nonce, BLANK), 409, "frame_early")  # 1.6 s on the client, 0.5 s here
    s.clock.advance(1.0)
    s.error(s.send(session, 1, 100.2, nonce, BLANK), 409, "frame_late")  # 0.2 s on the client, 1.5 s here
    r = s.send(session, 1, 101.4, nonce, BLANK)
    assert r.status_code == 200 and r.json()["frames"] == 2


def test_bad_query_values(s, session):
    for params in ({"seq": -1, "t": 0.0}, {"seq": "a", "t": 0.0}, {"seq": 0, "t": "soon"}, {"seq": 0, "t": "nan"},
                   {"seq": 0, "t": "inf"}):
        r = s.client.post(f"/v1/sessions/{session['session_id']}/frames", params={**params, "nonce": session["nonce"]},
                          content=BLANK, headers={**auth(s.app), "Content-Type": "image/jpeg"})
        s.error(r, 422, "invalid_request")
    assert s.admin_read(session)["frames"] == 0


def test_too_many_frames_rejects_the_session(tmp_path, pipeline, kl):  # noqa: F811
    with serve(str(tmp_path / "n.db"), pipeline, max_frames=3) as s:
        s.enroll("KL", kl.enroll_images)
        session = s.start("KL")
        nonce = session["nonce"]
        for i in range(3):
            s.clock.advance(0.1 if i else 0.0)
            nonce = s.send(session, i, i / 10, nonce, BLANK).json()["nonce"]
        s.clock.advance(0.1)
        s.error(s.send(session, 3, 0.3, nonce, BLANK), 429, "too_many_frames")
        assert s.admin_read(session)["reasons"] == ["TOO_MANY_FRAMES"]
        assert s.result(session).json()["reason"] == "abandoned"
        assert [a["reasons"] for a in s.attempts("KL")] == [["TOO_MANY_FRAMES"]]


def test_rate_limits_answer_429_with_retry_after(tmp_path, pipeline, kl):  # noqa: F811
    with serve(str(tmp_path / "r.db"), pipeline, rate_sessions_per_min=2) as s:
        s.enroll("KL", kl.enroll_images)
        s.start("KL")
        s.start("KL")
        r = s.client.post("/v1/sessions", json={"user": "KL"}, headers=auth(s.app))
        s.error(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1


def test_enrollment_without_a_usable_face_stores_nothing(s):
    files = [("images", ("blank.jpg", BLANK, "image/jpeg")), ("images", ("junk.jpg", b"junk", "image/jpeg"))]
    s.error(s.client.put("/v1/users/ghost", files=files, headers=auth(s.admin)), 422, "enrollment_failed")
    s.error(s.client.put("/v1/users/ghost", content=BLANK, headers={**auth(s.admin), "Content-Type": "image/jpeg"}),
            415, "unsupported_media_type")
    s.error(s.client.put("/v1/users/ghost", files=[("other", ("a.jpg", BLANK, "image/jpeg"))],
                         headers=auth(s.admin)), 422, "invalid_request")
    s.error(s.client.put("/v1/users/ghost", files=files, headers=auth(s.app)), 403, "forbidden")
    assert s.client.get("/v1/users", headers=auth(s.admin)).json() == {"users": []}


def test_enrollment_reports_the_rejected_images(s, kl):
    files = [("images", ("kl.jpg", jpeg(kl.enroll_images[0], 95), "image/jpeg")),
             ("images", ("blank.jpg", BLANK, "image/jpeg"))]
    r = s.client.put("/v1/users/KL", files=files, headers=auth(s.admin))
    assert r.status_code == 200, r.text
    assert r.json()["images_used"] == 1 and r.json()["images_rejected"] == [{"index": 1, "reasons": ["NO_FACE"]}]


def test_a_database_that_is_down_is_503_and_the_server_recovers(pg_cluster, pg_url, pipeline, kl):  # noqa: F811
    with serve(pg_url, pipeline) as s:
        s.enroll("KL", kl.enroll_images)
        pg_cluster.stop()
        try:
            for r in (s.client.get("/v1/health"),
                      s.client.post("/v1/sessions", json={"user": "KL"}, headers=auth(s.app))):
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "store_unavailable" and "Traceback" not in r.text
        finally:
            pg_cluster.start()
        assert s.client.get("/v1/health").json()["status"] == "ok"
        assert s.start("KL")["status"] == "pending"
        assert [u["user"] for u in s.client.get("/v1/users", headers=auth(s.admin)).json()["users"]] == ["KL"]


def test_openapi_lists_every_route_under_v1(s):
    doc = s.client.get("/openapi.json").json()
    assert sorted(doc["paths"]) == ["/v1/admin/attempts", "/v1/admin/config", "/v1/admin/sessions/{session_id}",
                                    "/v1/health", "/v1/sessions", "/v1/sessions/{session_id}/frames",
                                    "/v1/sessions/{session_id}/result", "/v1/users", "/v1/users/{user}"]
    frames = doc["paths"]["/v1/sessions/{session_id}/frames"]["post"]
    assert "image/jpeg" in frames["requestBody"]["content"]
    assert s.client.get("/docs").status_code == 200


def test_app_scope_answers_carry_no_scores(s, session):
    r = s.send(session, 0, 0.0, session["nonce"], BLANK).json()
    text = repr(r) + repr(session) + repr(s.result(session).json())
    for word in ("identity", "threshold", "score", "aggregate", "margin", "probab"):
        assert word not in text


def test_the_key_is_checked_before_the_body(s, session):
    s.error(s.send(session, 0, 0.0, session["nonce"], b"not a jpeg", key="flk_00000000_" + "a" * 43), 401, "bad_key")
    s.error(s.client.post(f"/v1/sessions/{session['session_id']}/frames", params={"seq": 0, "t": 0.0,
                                                                                  "nonce": session["nonce"]},
                          content=b"not a jpeg", headers={"Content-Type": "image/jpeg"}), 401, "missing_key")


def test_a_session_started_on_another_model_is_rejected_not_judged(s, session):
    import dataclasses

    from facelivenet.server.sessions import nonce_pair
    from facelivenet.server.store import open_store

    nonce, digest = nonce_pair()
    other = {"session_id": "started-elsewhere"}
    store = open_store(s.db)
    try:  # as a server on another bundle, sharing this database, would have written it
        row = store.session(session["session_id"])
        store.create_session(dataclasses.replace(row, session_id=other["session_id"], nonce_sha256=digest,
                                                 model_fingerprint="facelivenet:another-model", version=0))
    finally:
        store.close()
    s.error(s.send(other, 0, 0.0, nonce, BLANK), 409, "model_mismatch")
    read = s.admin_read(other)
    assert read["reasons"] == ["MODEL_MISMATCH"] and read["frames"] == 0
    assert [a["reasons"] for a in s.attempts("KL")] == [["MODEL_MISMATCH"]]
