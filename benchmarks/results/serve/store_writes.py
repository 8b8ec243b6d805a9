"""Time per ServerStore.update_session (a pending frame's state, ~20 KB blob): median of N, SQLite and PostgreSQL.

Run from the repository root: .venv/bin/python benchmarks/results/serve/store_writes.py [--n 200] (output: store_writes.txt)
PostgreSQL: a throwaway cluster with PostgreSQL's default settings (fsync on), started like the tests' fixture.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.getcwd(), "tests", "server"))
from conftest import PostgresCluster, find_pg_bin  # noqa: E402

from facelivenet.server.store import SessionRow, open_store  # noqa: E402


def bench(store, n: int, durable: bool) -> float:
    row = SessionRow("s-" + str(durable), "alice", "k", "fp", "pending", [], time.time(), time.time() + 90, "n")
    store.create_session(row)
    times = []
    for i in range(n):
        row.seq, row.nonce_sha256, row.state = i + 1, f"{i:064x}", os.urandom(20_000)
        row.last_server_t = time.time()
        t0 = time.perf_counter()
        if durable:  # the deciding frame: status + the attempt in the same transaction, FULL / synchronous commit
            row.status = "reject"
            ok = store.update_session(row, row.version, attempt=(False, ["IDENTITY_MISMATCH"], time.time()))
            row.status = "pending"
            store.update_session(row, row.version)  # back to pending (not timed)
        else:
            ok = store.update_session(row, row.version)
        times.append(time.perf_counter() - t0)
        assert ok
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    n = ap.parse_args().n
    with tempfile.TemporaryDirectory() as d:
        with open_store(os.path.join(d, "bench.db")) as s:
            print(f"sqlite      pending (synchronous=NORMAL): median {bench(s, n, False):.3f} ms  (n={n})")
            print(f"sqlite      decision+attempt (FULL)     : median {bench(s, n, True):.3f} ms  (n={n})")
    cluster = PostgresCluster(find_pg_bin(), settings={})
    try:
        cluster.start()
        with open_store(cluster.new_database()) as s:
            print(f"postgresql  pending (synchronous_commit=off): median {bench(s, n, False):.3f} ms  (n={n})")
            print(f"postgresql  decision+attempt (synchronous)  : median {bench(s, n, True):.3f} ms  (n={n})")
    finally:
        cluster.stop()
        cluster.remove()


if __name__ == "__main__":
    main()
