"""The real ``facelive serve`` as a subprocess of the load test: started on loopback, keys made with
``facelive keys add``, health awaited, its CPU time read, killed with ``kill -9`` (the fault trial) or stopped.

The server runs in its own process group (uvicorn's worker processes included), so a kill reaches every
process of it at once, as a crash of the machine's service would.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BenchError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # loopback only: the load test never listens on another address
START_TIMEOUT_S = 120.0


def facelive_command() -> list[str]:
    """The ``facelive`` console script of this interpreter's environment (or the module behind it)."""
    script = Path(sys.executable).with_name("facelive")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facelivenet.edge_runtime.cli"]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ServerSpec:
    """How the server under test is started: the flags, and the settings written to its YAML config."""

    db: str  # a SQLite file or a postgresql:// URL
    workers: int = 1
    bundle: str | None = None
    public_key: str | None = None
    max_failures: int = 1_000_000  # lock-out high: the attack sessions fail many times per subject
    rate_sessions_per_min: float = 1e6  # rate limits high: the whole load comes from one key and one address
    rate_frames_per_s: float = 1e6
    rate_admin_per_min: float = 1e6
    extra_args: tuple[str, ...] = ()

    def settings(self) -> dict:
        """The server settings (ServerConfig field names) this run changes from the defaults."""
        return {"session": {"max_failures": self.max_failures}, "rate_sessions_per_min": self.rate_sessions_per_min,
                "rate_frames_per_s": self.rate_frames_per_s, "rate_admin_per_min": self.rate_admin_per_min}

    def serve_args(self, port: int, config: Path) -> list[str]:
        args = ["serve", "--host", HOST, "--port", str(port), "--db", self.db, "--workers", str(self.workers),
                "--config", str(config)]
        if self.bundle:
            args += ["--bundle", self.bundle]
        if self.public_key:
            args += ["--public-key", self.public_key]
        return args + list(self.extra_args)

    def to_dict(self) -> dict:
        from facelivenet.server.store import redact_url

        return {"db": redact_url(self.db), "workers": self.workers, "bundle": self.bundle,
                "public_key": self.public_key, "settings": self.settings(), "extra_args": list(self.extra_args)}


def add_key(db: str, name: str, scope: str) -> str:
    """A new API key (``facelive keys add``), the full ``flk_...`` string."""
    cmd = [*facelive_command(), "keys", "add", name, "--scope", scope, "--db", db, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"facelive keys add failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    try:
        payload = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"facelive keys add --json printed no JSON: {done.stdout[:200]!r}") from exc
    keys = [v for v in payload.values() if isinstance(v, str) and v.startswith("flk_")]
    if len(keys) != 1:
        raise BenchError(f"facelive keys add --json printed no single flk_ key: {sorted(payload)}")
    return keys[0]


def health(port: int, timeout: float = 2.0) -> dict | None:
    """``GET /v1/health``'s JSON when the server answers 200, else None."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/v1/health")
        resp = conn.getresponse()
        body = resp.read()
        return json.loads(body) if resp.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def _end_with_parent() -> None:
    """In the server's process (Linux): SIGTERM it when the bench dies, so a killed bench leaves no server."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class ServerProcess:
    """One run of ``facelive serve`` (start it with :meth:`start`; a context manager stops it)."""

    spec: ServerSpec
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    started_at: float | None = None
    health_info: dict | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = START_TIMEOUT_S) -> "ServerProcess":
        """Start the server and wait for ``/v1/health``; BenchError with its log's tail when it does not come up."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        config = self.log_path.with_suffix(".config.yaml")
        config.write_text(json.dumps(self.spec.settings(), indent=1) + "\n")  # JSON is YAML
        cmd = [*facelive_command(), *self.spec.serve_args(self.port, config)]
        with open(self.log_path, "ab") as out:
            out.write(f"\n# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {' '.join(cmd)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_end_with_parent)
        self.started_at = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"facelive serve exited with {self.proc.returncode}: {self._log_tail()}")
            self.health_info = health(self.port)
            if self.health_info is not None:
                log.info("server up on %s (pid %d, %d worker(s)) after %.1f s", self.url, self.proc.pid,
                         self.spec.workers, time.time() - self.started_at)
                return self
            time.sleep(0.2)
        self.stop()
        raise BenchError(f"facelive serve did not answer /v1/health within {timeout:.0f} s: {self._log_tail()}")

    def _log_tail(self, chars: int = 600) -> str:
        try:
            return " ".join(self.log_path.read_text(errors="replace")[-chars:].split())
        except OSError:
            return "(no log)"

    def pids(self) -> list[int]:
        """Every live process of the server's process group."""
        if self.proc is None:
            return []
        pgid = self.proc.pid
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == pgid:
                        out.append(int(entry.name))
                except OSError:
                    continue
        return sorted(out)

    def cpu_seconds_by_process(self) -> dict[int, float]:
        """User + system CPU seconds of each live process of the group (with the children it reaped)."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[pid] = sum(int(v) for v in fields[11:15]) / tick  # utime, stime, cutime, cstime
        return out

    def kill9(self) -> list[int]:
        """``kill -9`` the whole process group at once (a crash); the pids killed."""
        pids = self.pids()
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        return pids

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the group, then SIGKILL what is left after ``grace_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
