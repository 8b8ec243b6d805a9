"""The worker's draw of each session's challenge and plan (server/sessions.py)."""

from __future__ import annotations

import numpy as np

from facelivenet.server.config import ServerConfig
from facelivenet.server.sessions import Worker


def draws(worker: Worker, n: int) -> list[tuple[tuple[str, ...], dict]]:
    return [(challenge, plan.to_dict()) for challenge, plan in (worker.draw() for _ in range(n))]


def test_a_test_seed_repeats_the_sequence_and_each_session_still_draws_its_own(tmp_path):
    config = ServerConfig(db=str(tmp_path / "s.db"))
    first = draws(Worker(config, pipeline=None, draw_rng=np.random.default_rng(0)), 12)
    again = draws(Worker(config, pipeline=None, draw_rng=np.random.default_rng(0)), 12)
    other = draws(Worker(config, pipeline=None, draw_rng=np.random.default_rng(1)), 12)
    assert first == again and first != other
    assert len({str(d) for d in first}) > 1, "sessions of one seeded server differ from each other"
    for challenge, plan in first:
        assert len(plan["targets"]) == len(plan["holds"]) == 2 * len(challenge)  # a rest before each expression


def test_a_served_worker_draws_unseen(tmp_path):
    unseen = draws(Worker(ServerConfig(db=str(tmp_path / "s.db")), pipeline=None), 12)
    assert len({str(d) for d in unseen}) > 1
