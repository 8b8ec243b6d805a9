"""Run one benchmark job (:mod:`jobs`) in a fresh Python process.

``python -m facelivenet.benchmarks.worker JOB.json RESULT.json``: the child
process sets its thread counts from the job before anything heavy is imported
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` are set by
the parent), runs the job and writes the result (or ``{"error": ...}``) as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import BenchError

log = logging.getLogger(__name__)

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_TIMEOUT_S = 900.0


def thread_env(threads: int) -> dict[str, str]:
    """This process's environment with every BLAS/OpenMP thread count set to ``threads``."""
    env = dict(os.environ)
    env.update({k: str(int(threads)) for k in THREAD_ENV})
    return env


def run_isolated(job: dict[str, Any], timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Run ``job`` in a child process with the job's thread count; BenchError with its one-line reason."""
    with tempfile.TemporaryDirectory(prefix="facelive-bench-job-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(job))
        cmd = [sys.executable, "-m", "facelivenet.benchmarks.worker", str(job_file), str(result_file)]
        try:
            proc = subprocess.run(cmd, env=thread_env(int(job.get("threads", 1))), capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"benchmark job {job['kind']} ran past {timeout_s:.0f} s") from exc
        if result_file.is_file():
            result = json.loads(result_file.read_text())
            if "error" in result:
                raise BenchError(result["error"])
            return result
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"benchmark job {job['kind']} died (exit {proc.returncode}): {tail}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    args = sys.argv[1:] if argv is None else argv
    job_file, result_file = Path(args[0]), Path(args[1])
    from facelivenet.edge_runtime.errors import FaceLiveError

    from .jobs import run_job

    try:
        result = run_job(json.loads(job_file.read_text()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        message = str(exc) if isinstance(exc, FaceLiveError) else f"{type(exc).__name__}: {exc}"
        result = {"error": " ".join(message.split())}
    result_file.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
