"""Fixtures for the server's tests: a real PostgreSQL started by the test run, and both stores.

Fixtures (use them from any test below tests/server/):

- ``pg_cluster`` (session): a throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary folder, on a free
  loopback port; run as the ``postgres`` user when the tests run as root). Skips, with the reason, when the
  server binaries are absent or it cannot start. ``pg_cluster.stop()`` / ``.start()`` take it down and up
  again on the same port (for database-down tests). Binaries: ``$FACELIVE_PG_BIN``, else PATH, else
  ``/usr/lib/postgresql/<newest>/bin``. Stopped and removed at the end of the run.
- ``pg_url``: a ``postgresql://`` URL of a fresh, empty database (one per test) in that cluster.
- ``any_store_url``: parametrised over ``sqlite`` (a path in ``tmp_path``) and ``postgresql`` (``pg_url``).
- ``any_store``: ``open_store(any_store_url)``, closed after the test. Open a second store object on the same
  database with ``open_store(any_store_url)`` (e.g. to race two instances).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from itertools import count
from pathlib import Path

import pytest

from facelivenet.server.store import open_store

# A test cluster trades durability for speed; a cluster for timings passes settings={} (PostgreSQL's defaults).
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def find_pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: $FACELIVE_PG_BIN, PATH, or the newest /usr/lib/postgresql/*/bin."""
    env = os.environ.get("FACELIVE_PG_BIN")
    candidates = [Path(env)] if env else []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0)
    candidates += [Path(p) for p in reversed(versions)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:<port> and a unix socket in the folder."""

    def __init__(self, bin_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.settings = FAST_SETTINGS if settings is None else settings
        self.root = Path(tempfile.mkdtemp(prefix="facelive-pg-"))  # under /tmp: the postgres user can reach it
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._as_user: list[str] = []
        self._databases = count()
        if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres user
            try:
                import pwd
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                self.remove()
                raise RuntimeError("the tests run as root and there is no 'postgres' user to run it as") from exc
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as_user = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
        try:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        except BaseException:
            self.remove()
            raise

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._as_user, str(self.bin_dir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-1000:]}"
                               f"{' | server log: ' + log if log else ''}")

    def start(self) -> None:
        """Start the server (waits until it accepts connections)."""
        options = [f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"]
        options += [f"-c {k}={v}" for k, v in self.settings.items()]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", " ".join(options),
                  "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; its URL."""
        import psycopg
        name = f"facelive_test_{next(self._databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_cluster():
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in $FACELIVE_PG_BIN, PATH or "
                    "/usr/lib/postgresql/*/bin: install Debian's postgresql package (.ci/run does)")
    failures = (RuntimeError, OSError, subprocess.SubprocessError)
    try:
        cluster = PostgresCluster(bin_dir)
    except failures as exc:
        pytest.skip(f"PostgreSQL could not be set up from {bin_dir}: {exc}")
    try:
        cluster.start()
    except failures as exc:
        cluster.remove()
        pytest.skip(f"PostgreSQL could not be started from {bin_dir}: {exc}")
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except RuntimeError:
            pass  # stopped already (a test's stop without start) or dead
        cluster.remove()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    return pg_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store_url(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "server.db")


@pytest.fixture
def any_store(any_store_url):
    store = open_store(any_store_url)
    try:
        yield store
    finally:
        store.close()
