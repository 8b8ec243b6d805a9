import threading
import time

import pytest

from facelivenet.server.fair_lock import FifoLock


def _wait_until(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


def test_waiters_get_the_lock_in_the_order_they_asked():
    lock = FifoLock()
    order: list[int] = []
    lock.acquire()
    threads = []
    for i in range(6):
        t = threading.Thread(target=lambda i=i: (lock.acquire(), order.append(i), lock.release()))
        t.start()
        threads.append(t)
        _wait_until(lambda n=i + 1: len(lock._waiters) == n)  # queued before the next one asks
    lock.release()
    for t in threads:
        t.join(5)
    assert order == list(range(6))
    assert not lock.locked()


def test_a_newcomer_does_not_overtake_a_waiter():
    lock = FifoLock()
    got: list[str] = []
    lock.acquire()
    waiter = threading.Thread(target=lambda: (lock.acquire(), got.append("waiter"), lock.release()))
    waiter.start()
    _wait_until(lambda: len(lock._waiters) == 1)
    lock.release()  # handed to the waiter: the lock is never free in between
    assert lock.locked() or got == ["waiter"]
    with lock:
        got.append("newcomer")
    waiter.join(5)
    assert got == ["waiter", "newcomer"]


def test_mutual_exclusion_under_contention():
    lock = FifoLock()
    inside = 0
    worst = 0

    def work():
        nonlocal inside, worst
        for _ in range(200):
            with lock:
                inside += 1
                worst = max(worst, inside)
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert worst == 1 and not lock.locked()


def test_releasing_an_unheld_lock_is_an_error():
    with pytest.raises(RuntimeError, match="unheld"):
        FifoLock().release()
