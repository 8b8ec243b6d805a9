"""The server's main paths through the real app (FastAPI's TestClient), the shipped default bundle, on BOTH
stores (``any_store_url``: SQLite and a real PostgreSQL started by the test run).

A genuine JAFFE subject (KL, who passes such sessions at the default thresholds) performs what the server
asks and is accepted; the same frames through the offline Authenticator, with the server's challenge and
plan, give the same decision. Sessions are bound to the key that opened them, the decision is delivered
once, an expired or idle session fails closed with exactly one failed attempt, and the lock-out counts
served attempts.
"""

from __future__ import annotations

import pytest

from .app_fixtures import Performer, auth, perform, pipeline, replay_offline, serve  # noqa: F401

NOT_ENROLLED = "nobody"


def test_genuine_session_accepts_through_the_server_and_offline_agrees(any_store_url, pipeline, jaffe, tmp_path):  # noqa: F811
    kl, mk = Performer(jaffe, "KL", seed=0), Performer(jaffe, "MK", seed=1)
    with serve(any_store_url, pipeline) as s:
        for name, person in (("KL", kl), ("MK", mk)):
            enrolled = s.enroll(name, person.enroll_images)
            assert enrolled["images_used"] == len(person.enroll_images) and enrolled["images_rejected"] == []
        users = s.client.get("/v1/users", headers=auth(s.admin)).json()["users"]
        assert sorted(u["user"] for u in users) == ["KL", "MK"]

        session = s.start("KL")
        assert session["status"] == "pending" and session["steps"] == 4
        assert session["step"]["expected"] == "neutral" and session["step"]["deadline_t"] is None
        frames = perform(s, kl, session)
        result = s.result(session).json()
        assert result == {"session_id": session["session_id"], "user": "KL", "decision": "accept", "reason": None}

        read = s.admin_read(session)
        assert read["status"] == "accept" and read["frames"] == len(frames) and read["key_id"]
        assert read["result"]["decision"] == "accept" and read["thresholds"]["verification_cosine"] > 0
        assert read["result"]["identity"]["aggregate"] >= read["thresholds"]["verification_cosine"]
        assert [a["success"] for a in s.attempts("KL")] == [True]

    offline = replay_offline(read, "KL", kl.enroll_images, frames, tmp_path / "offline.db", pipeline)
    assert offline.decision == "accept"
    assert list(offline.reasons) == read["result"]["reasons"] == []
    assert offline.frames == read["result"]["frames"]
    assert offline.identity["aggregate"] == pytest.approx(read["result"]["identity"]["aggregate"], abs=1e-6)


def test_a_session_is_bound_to_the_key_that_opened_it(any_store_url, pipeline, jaffe):  # noqa: F811
    kl = Performer(jaffe, "KL")
    with serve(any_store_url, pipeline) as s:
        s.enroll("KL", kl.enroll_images)
        other = add_app_key(s)
        session = s.start("KL")
        body = kl.frame(0, session["step"])
        s.error(s.send(session, 0, 0.0, session["nonce"], body, key=other), 403, "session_not_yours")
        s.error(s.result(session, key=other), 403, "session_not_yours")
        assert s.admin_read(session)["frames"] == 0
        r = s.send(session, 0, 0.0, session["nonce"], body)  # the opener's frame still goes through
        assert r.status_code == 200 and r.json()["frames"] == 1
        admin_started = s.start("KL", key=s.admin)  # an admin key may do app calls
        s.error(s.result(admin_started), 403, "session_not_yours")


def add_app_key(s) -> str:
    from .app_fixtures import add_key

    return add_key(s.db, "another-app", "app")


def test_the_result_is_delivered_once(any_store_url, pipeline, jaffe):  # noqa: F811
    kl = Performer(jaffe, "KL")
    with serve(any_store_url, pipeline) as s:
        s.enroll("KL", kl.enroll_images)
        session = s.start("KL")
        first = s.result(session)
        assert first.status_code == 200
        assert first.json()["decision"] == "reject" and first.json()["reason"] == "abandoned"
        s.error(s.result(session), 409, "result_already_delivered")
        s.error(s.send(session, 0, 0.0, session["nonce"], kl.frame(0, session["step"])), 409, "session_decided")
        assert [(a["success"], a["reasons"]) for a in s.attempts("KL")] == [(False, ["ABANDONED"])]


def test_an_idle_session_fails_closed_with_exactly_one_attempt(any_store_url, pipeline, jaffe):  # noqa: F811
    kl = Performer(jaffe, "KL")
    with serve(any_store_url, pipeline) as s:
        s.enroll("KL", kl.enroll_images)
        session = s.start("KL")
        r = s.send(session, 0, 3.0, session["nonce"], kl.frame(0, session["step"]))
        assert r.status_code == 200
        nonce = r.json()["nonce"]
        s.clock.advance(1.6)  # more than max_frame_gap_s (1.5) without a frame
        s.error(s.send(session, 1, 4.6, nonce, kl.frame(1, session["step"])), 410, "session_expired")
        s.error(s.send(session, 1, 4.7, nonce, kl.frame(1, session["step"])), 409, "session_decided")
        read = s.admin_read(session)
        assert read["status"] == "reject" and read["reasons"] == ["SESSION_EXPIRED"] and read["frames"] == 1
        assert s.result(session).json()["reason"] == "expired"
        assert [(a["success"], a["reasons"]) for a in s.attempts("KL")] == [(False, ["SESSION_EXPIRED"])]


def test_a_session_past_its_time_is_swept_once(any_store_url, pipeline, jaffe):  # noqa: F811
    kl = Performer(jaffe, "KL")
    with serve(any_store_url, pipeline, session_ttl_s=5.0, max_frame_gap_s=60.0) as s:
        s.enroll("KL", kl.enroll_images)
        stale = s.start("KL")
        s.clock.advance(6.0)  # past expires_at: the next session start sweeps it (so the lock-out counts it)
        fresh = s.start("KL")
        assert s.admin_read(stale)["status"] == "reject" and s.admin_read(fresh)["status"] == "pending"
        s.error(s.send(stale, 0, 0.0, stale["nonce"], kl.frame(0, stale["step"])), 409, "session_decided")
        assert s.result(stale).json() == {"session_id": stale["session_id"], "user": "KL", "decision": "reject",
                                          "reason": "expired"}
        assert [(a["success"], a["reasons"]) for a in s.attempts("KL")] == [(False, ["SESSION_EXPIRED"])]


def test_the_lockout_counts_served_attempts(any_store_url, pipeline, jaffe):  # noqa: F811
    from facelivenet.edge_runtime.options import SessionSettings

    kl = Performer(jaffe, "KL")
    with serve(any_store_url, pipeline, session=SessionSettings(max_failures=2, lockout_window_s=60.0)) as s:
        s.enroll("KL", kl.enroll_images)
        for _ in range(2):
            assert s.result(s.start("KL")).json()["decision"] == "reject"
        locked = s.start("KL")
        assert locked["status"] == "decided" and locked["nonce"] is None and locked["step"] is None
        assert s.result(locked).json()["reason"] == "locked_out"
        assert len(s.attempts("KL")) == 2  # a locked-out session records no attempt (the runtime's rule)
        s.clock.advance(61.0)  # the window has passed
        assert s.start("KL")["status"] == "pending"


def test_unknown_user_and_user_deletion(any_store_url, pipeline, jaffe):  # noqa: F811
    kl = Performer(jaffe, "KL")
    with serve(any_store_url, pipeline) as s:
        s.error(s.client.post("/v1/sessions", json={"user": NOT_ENROLLED}, headers=auth(s.app)), 404, "unknown_user")
        s.enroll("KL", kl.enroll_images)
        r = s.client.delete("/v1/users/KL", headers=auth(s.admin))
        assert r.status_code == 200 and r.json() == {"user": "KL", "templates": 1}
        s.error(s.client.delete("/v1/users/KL", headers=auth(s.admin)), 404, "unknown_user")
        s.error(s.client.post("/v1/sessions", json={"user": "KL"}, headers=auth(s.app)), 404, "unknown_user")


def test_the_background_sweep_closes_an_abandoned_session(any_store_url, pipeline, jaffe):  # noqa: F811
    import time

    kl = Performer(jaffe, "KL")
    with serve(any_store_url, pipeline, sweep_interval_s=0.05) as s:
        s.enroll("KL", kl.enroll_images)
        session = s.start("KL")
        s.clock.advance(2.0)  # the client vanished: no frame, no further request
        deadline = time.monotonic() + 10
        while s.admin_read(session)["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.admin_read(session)["reasons"] == ["SESSION_EXPIRED"]
        time.sleep(0.2)  # more sweeps: still one attempt
        assert [(a["success"], a["reasons"]) for a in s.attempts("KL")] == [(False, ["SESSION_EXPIRED"])]


def test_any_worker_serves_any_frame_and_one_nonce_wins_a_race(any_store_url, pipeline, jaffe):  # noqa: F811
    """Two app instances (two workers' pipelines) on one database take turns at one session's frames: the
    session passes as on one; two requests racing with the same nonce: exactly one is taken."""
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from fastapi.testclient import TestClient

    from facelivenet.edge_runtime.api import open_pipeline
    from facelivenet.edge_runtime.options import RuntimeOptions
    from facelivenet.server.app import create_app
    from facelivenet.server.config import ServerConfig
    from facelivenet.server.store import open_store

    kl = Performer(jaffe, "KL")
    with serve(any_store_url, pipeline) as s:
        s.enroll("KL", kl.enroll_images)
        other = create_app(ServerConfig(db=any_store_url), store_factory=partial(open_store, any_store_url),
                           pipeline=open_pipeline(RuntimeOptions()), clock=s.clock)
        with TestClient(other, raise_server_exceptions=False) as second:
            s.frame_clients = (s.client, second)
            session = s.start("KL")
            perform(s, kl, session)
            assert s.result(session).json()["decision"] == "accept"

            race = s.start("KL")
            body = Performer(jaffe, "KL").frame(0, race["step"])
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda c: c.post(
                    f"/v1/sessions/{race['session_id']}/frames", params={"seq": 0, "t": 0.0, "nonce": race["nonce"]},
                    content=body, headers={**auth(s.app), "Content-Type": "image/jpeg"}), s.frame_clients))
            codes = sorted(a.status_code for a in answers)
            assert codes == [200, 409], [a.text for a in answers]
            assert [a.json()["error"]["code"] for a in answers if a.status_code == 409] == ["bad_nonce"]
            assert s.admin_read(race)["frames"] == 1
