"""Run one piece of work per store connection at once, as server workers racing on one database would."""

from __future__ import annotations

import threading
from typing import Callable, Sequence


def race(stores: Sequence, work: Callable[[int], None], timeout_s: float = 60.0) -> None:
    """``work(k)`` for every store ``k`` in its own thread, all released together; every store closed afterwards,
    and the first failure of any thread raised here."""
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            start.wait(timeout=10)
            work(k)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(stores))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=timeout_s)
    finally:
        for s in stores:
            s.close()
    if errors:
        raise errors[0]
