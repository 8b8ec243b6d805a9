"""Run model files on given aligned crops, here, and save what they output: the worker of the CPU check.

``python -m facelivenet.edge_runtime.file_outputs JOB.npz OUT.npz``

``JOB.npz`` (written by :mod:`facelivenet.export.cpu_check`) holds ``crops`` (uint8 N x S x S x 3, in the
model's colour mode), ``self_check_pixels`` / ``self_check_embedding`` / ``self_check_logits`` (the
bundle's self-check reference) and ``job`` (JSON: the files to run, each ``{key, format, path, layout}``,
and the preprocessing). ``OUT.npz`` gets each file's ``KEY/embedding`` and ``KEY/logits`` on the crops
and ``report`` (JSON: this CPU as the runtimes see it, the runtime of each file, its self-check result or
error). Torch-free, so it runs wherever the edge extra installs, emulated CPUs included (user-mode qemu
has no ``/proc/cpuinfo`` of its own: :mod:`.cpu_features` asks the CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path

import numpy as np

from .backends import BackendError, open_backend, parity_self_check
from .cpu_features import cpu_identity
from .preprocess import PreprocessConfig, normalize


def run_job(job_path: Path, out_path: Path) -> dict:
    """Run every file of the job; write ``out_path``; return the report."""
    with np.load(job_path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    job = json.loads(str(arrays["job"]))
    pre = PreprocessConfig.from_dict(job["preprocess"])
    report: dict = {"cpu": cpu_identity(), "python": platform.python_version(), "files": {}}
    outputs: dict[str, np.ndarray] = {}
    for f in job["files"]:
        cfg = dataclasses.replace(pre, layout=f["layout"])
        entry: dict = {}
        try:
            backend = open_backend(f["format"], Path(f["path"]), 1)
            entry["runtime"] = backend.name
            emb, logits = backend.run(normalize(arrays["crops"], cfg))
            outputs[f"{f['key']}/embedding"], outputs[f"{f['key']}/logits"] = emb, logits
            try:
                entry["self_check"] = {**parity_self_check(backend, normalize(arrays["self_check_pixels"], cfg),
                                                           arrays["self_check_embedding"], arrays["self_check_logits"]),
                                       "passed": True}
            except BackendError as exc:
                entry["self_check"] = {"passed": False, "error": str(exc)}
        except BackendError as exc:
            entry["error"] = str(exc)
        report["files"][f["key"]] = entry
    np.savez_compressed(out_path, report=np.array(json.dumps(report)), **outputs)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the job; prints this CPU and what ran (``--json``: one object). Returns the exit code."""
    from .cli_common import add_json_flag, add_log_options
    from .cli_runner import run_command

    prog = "python -m facelivenet.edge_runtime.file_outputs"
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("job", type=Path, help="the job (.npz) written by the CPU check")
    p.add_argument("out", type=Path, help="where to write the outputs (.npz)")
    add_json_flag(p)
    add_log_options(p)

    def run(args: argparse.Namespace):
        report = run_job(args.job, args.out)
        summary = {"cpu": report["cpu"], "files": {k: sorted(v) for k, v in report["files"].items()}}
        return 0, summary, f"{report['cpu']['family']}: {len(report['files'])} file(s) run into {args.out}"

    return run_command(prog, p, argv, run)


if __name__ == "__main__":
    sys.exit(main())
