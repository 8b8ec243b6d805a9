"""The frame route's fast path (server/frame_endpoint.py) and the worker's cache of unpickled sessions
(server/session_state.StateCache): the same answers as the full stack, and never a stale session."""

from __future__ import annotations

import numpy as np
import pytest

from facelivenet.server import schemas, session_state
from facelivenet.server.errors import ApiError
from facelivenet.server.frame_endpoint import parse_frame_query
from facelivenet.server.store import open_store

from .app_fixtures import Performer, auth, jpeg, pipeline, serve  # noqa: F401

BLANK = jpeg(np.full((480, 640, 3), 128, np.uint8))


def test_the_query_is_parsed_and_each_bad_value_is_named():
    assert parse_frame_query(b"seq=3&t=12.5&nonce=abc") == (3, 12.5, "abc")
    assert parse_frame_query(b"nonce=a%2Bb&t=1e3&seq=0") == (0, 1000.0, "a+b")
    for query, name in ((b"t=1&nonce=n", "seq"), (b"seq=0&nonce=n", "t"), (b"seq=0&t=1", "nonce"),
                        (b"seq=-1&t=1&nonce=n", "seq"), (b"seq=a&t=1&nonce=n", "seq"), (b"seq=1.5&t=1&nonce=n", "seq"),
                        (b"seq=0&t=soon&nonce=n", "t"), (b"seq=0&t=nan&nonce=n", "t"), (b"seq=0&t=inf&nonce=n", "t"),
                        (b"seq=0&t=1_0&nonce=n", "t"), (b"seq=0&t=1&nonce=", "nonce"),
                        (b"seq=0&t=1&nonce=" + b"x" * 129, "nonce")):
        with pytest.raises(ApiError) as err:
            parse_frame_query(query)
        assert err.value.code == "invalid_request" and f"query.{name}" in err.value.message, (query, err.value.message)


def test_a_frame_answer_is_what_the_openapi_schema_says(tmp_path, pipeline, jaffe):  # noqa: F811
    kl = Performer(jaffe, "KL")
    with serve(str(tmp_path / "s.db"), pipeline) as s:
        s.enroll("KL", kl.enroll_images)
        session = s.start("KL")
        r = s.send(session, 0, 0.0, session["nonce"], kl.frame(0, session["step"]))
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        answer = r.json()
        assert schemas.FrameOut.model_validate(answer).model_dump() == answer
        assert answer["face"] is not None and answer["frames"] == 1


def test_fastapi_serves_the_route_when_the_app_is_mounted_under_a_prefix(tmp_path, pipeline):  # noqa: F811
    from fastapi.testclient import TestClient
    from starlette.applications import Starlette
    from starlette.routing import Mount

    with serve(str(tmp_path / "s.db"), pipeline) as s:
        outer = Starlette(routes=[Mount("/auth", app=s.client.app)])
        with TestClient(outer, raise_server_exceptions=False) as mounted:
            r = mounted.post("/auth/v1/sessions/nope/frames", params={"seq": 0, "t": 0.0, "nonce": "n"},
                             content=BLANK, headers={**auth(s.app), "Content-Type": "image/jpeg"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_session", r.text
            r = mounted.post("/auth/v1/sessions/nope/frames", params={"seq": "x", "t": 0.0, "nonce": "n"},
                             content=BLANK, headers={**auth(s.app), "Content-Type": "image/jpeg"})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text


def test_the_state_cache_gives_back_only_the_version_it_kept():
    cache = session_state.StateCache(size=2)
    a, b, c = (object(), session_state.TrackerState()), (object(), session_state.TrackerState()), \
        (object(), session_state.TrackerState())
    cache.keep("a", 3, *a)
    assert cache.take("a", 4) is None  # another worker wrote version 4
    assert cache.take("a", 3) is None  # ... and the stale entry is gone
    cache.keep("a", 3, *a)
    assert cache.take("a", 3) == a
    assert cache.take("a", 3) is None  # taken out while its frame is judged
    cache.keep("a", 1, *a), cache.keep("b", 1, *b), cache.keep("c", 1, *c)
    assert len(cache) == 2 and cache.take("a", 1) is None and cache.take("c", 1) == c


def test_a_session_written_by_another_worker_is_read_from_the_database(tmp_path, pipeline, jaffe):  # noqa: F811
    """Frame 0 on this worker (its cache keeps the session), frame 1 written by another worker (the row moves
    on), frame 2 on this worker again: it must judge from the row, which counted two frames, not from its cache."""
    from facelivenet.server.frames import feed_served_frame

    kl = Performer(jaffe, "KL")
    db = str(tmp_path / "s.db")
    with serve(db, pipeline) as s:
        s.enroll("KL", kl.enroll_images)
        session = s.start("KL")
        nonce = s.send(session, 0, 0.0, session["nonce"], kl.frame(0, session["step"])).json()["nonce"]
        worker = s.client.app.state.worker
        assert len(worker.states) == 1
        other = type(worker)(worker.config, worker.pipeline)  # a second process: its own (empty) cache
        store = open_store(db)
        try:
            key = store.key(s.app.split("_")[1])
            s.clock.advance(0.1)
            nonce = feed_served_frame(other, store, session["session_id"], key, 1, 0.1, nonce,
                                      kl.frame(1, session["step"]), s.clock())["nonce"]
            s.clock.advance(0.1)
            r = s.send(session, 2, 0.2, nonce, kl.frame(2, session["step"]))
            assert r.status_code == 200, r.text
            state, _ = session_state.loads(store.session(session["session_id"]).state)
        finally:
            store.close()
        assert state.frames == 3

