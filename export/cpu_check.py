"""Every model file checked on every CPU family the project claims, emulated where this machine is not one.

An int8 file's integer kernels differ between CPU families, and a file can be right on one and wrong on
another (ARCHITECTURE.md, "CPU portability"). The families (:data:`TARGETS`):

- ``native``: this machine;
- ``x86-64 AVX2 (no VNNI)``: ``qemu-x86_64 -cpu Haswell-v4`` running this machine's own Python, so
  onnxruntime and LiteRT take their AVX2 kernel paths (CPUID says Haswell); x86 hosts only;
- ``arm64 NEON (no dot product)``: Cortex-A72, a Raspberry Pi 4's core, and
- ``arm64 dot product``: Cortex-A76, a Raspberry Pi 5's, both ``qemu-aarch64`` with the aarch64
  environment of ``make arm64-check`` (``.ci/arm64/setup.sh``: a Debian arm64 root and a venv holding
  this tree's wheel with the edge extra).

Each family runs :mod:`facelivenet.edge_runtime.file_outputs` on the same aligned crops (aligned once,
here: this compares the model files, not the alignment) and each file is gated like the export gates it
(:mod:`.parity`: cosines and the decisive faces' top-1 agreement against the torch model) plus the
bundle's self-check. Emulation gives outputs, never timings. A family whose emulator or environment is
missing is reported as not checked, with why.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelivenet.edge_runtime.cpu_features import kernel_family, machine
from facelivenet.edge_runtime.preprocess import PreprocessConfig

from . import parity as parity_mod
from .errors import ExportError

log = logging.getLogger(__name__)

ARM64_WORK_ENV = "ARM64_WORK"
WORKER = "facelivenet.edge_runtime.file_outputs"
WORKER_TIMEOUT_S = 3600


@dataclass(frozen=True)
class CpuTarget:
    """One CPU family to check on: how to start a Python there."""

    name: str  # the family, as :func:`kernel_family` names it
    emulator: str  # "" for this machine
    cpu: str = ""  # the emulated core

    def command(self, arm64_work: Path) -> list[str] | None:
        """The Python interpreter command for this target, or None when it cannot run here."""
        if not self.emulator:
            return [sys.executable]
        if self.emulator == "qemu-x86_64":
            if machine() != "x86_64" or shutil.which("qemu-x86_64") is None:
                return None
            return ["qemu-x86_64", "-cpu", self.cpu, sys.executable]
        python = arm64_work / "venv" / "bin" / "python3"  # a wrapper that runs qemu-aarch64 with $FACELIVE_QEMU_CPU
        return [str(python)] if python.is_file() and shutil.which("qemu-aarch64") else None

    def why_not(self, arm64_work: Path) -> str:
        if self.emulator == "qemu-x86_64":
            return "not an x86-64 host" if machine() != "x86_64" else "qemu-x86_64 not installed (apt-get install qemu-user)"
        return f"no aarch64 environment in {arm64_work} (run make arm64-check once, or .ci/arm64/setup.sh)"


TARGETS = (
    CpuTarget("native", ""),
    CpuTarget("x86-64 AVX2 (no VNNI)", "qemu-x86_64", "Haswell-v4"),
    CpuTarget("arm64 NEON (no dot product)", "qemu-aarch64", "cortex-a72"),
    CpuTarget("arm64 dot product", "qemu-aarch64", "cortex-a76"),
)


@dataclass(frozen=True)
class CheckFile:
    """A model file to check: its parity key, format, path, layout and precision."""

    key: str
    format: str
    path: Path
    layout: str
    precision: str


def default_arm64_work() -> Path:
    return Path(os.environ.get(ARM64_WORK_ENV) or Path.home() / ".cache" / "facelivenet-arm64")


def write_job(folder: Path, files: Sequence[CheckFile], crops: np.ndarray, self_check: dict[str, np.ndarray],
              preprocess: PreprocessConfig) -> Path:
    """The worker's job file."""
    job = {"preprocess": preprocess.to_dict(),
           "files": [{"key": f.key, "format": f.format, "path": str(Path(f.path).resolve()), "layout": f.layout}
                     for f in files]}
    path = folder / "job.npz"
    np.savez_compressed(path, job=np.array(json.dumps(job)), crops=np.ascontiguousarray(crops, np.uint8),
                        self_check_pixels=self_check["pixels"], self_check_embedding=self_check["embedding"],
                        self_check_logits=self_check["expression_logits"])
    return path


def run_target(target: CpuTarget, command: list[str], job: Path, out: Path) -> dict[str, Any]:
    """Run the worker on one target; its report (the outputs stay in ``out``)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if target.emulator == "qemu-aarch64":
        env["FACELIVE_QEMU_CPU"] = target.cpu
        env.pop("PYTHONPATH", None)  # the aarch64 side runs its installed wheel, never this tree
    start = time.perf_counter()
    proc = subprocess.run([*command, "-m", WORKER, str(job), str(out)], env=env, capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise ExportError(f"CPU check on {target.name}: the worker exited {proc.returncode}: {tail}")
    with np.load(out) as npz:
        report = json.loads(str(npz["report"]))
    report["wall_s"] = round(time.perf_counter() - start, 1)
    return report


def gate_file(f: CheckFile, outputs: Path, entry: dict[str, Any], ref_emb: np.ndarray,
              ref_logits: np.ndarray) -> dict[str, Any]:
    """One file on one target, gated like the export (precision's parity gate) plus the self-check."""
    if "error" in entry:
        return {"passed": False, "failures": [entry["error"]]}
    with np.load(outputs) as npz:
        emb, logits = npz[f"{f.key}/embedding"], npz[f"{f.key}/logits"]
    metrics = parity_mod.measure(ref_emb, ref_logits, emb, logits)
    failures = parity_mod.check(f.precision, metrics)
    check = entry.get("self_check", {})
    if not check.get("passed"):
        failures.append(f"self-check: {check.get('error', 'not run')}")
    keep = ("faces", "cosine_mean", "cosine_min", "expression_top1_agreement", "decisive_faces",
            "expression_top1_agreement_decisive")
    return {**{k: metrics[k] for k in keep}, "self_check_cosine_min": check.get("cosine_min"),
            "runtime": entry.get("runtime"), "passed": not failures, "failures": failures}


def check_on_cpus(files: Sequence[CheckFile], crops: np.ndarray, ref_emb: np.ndarray, ref_logits: np.ndarray,
                  self_check: dict[str, np.ndarray], preprocess: PreprocessConfig,
                  targets: Sequence[CpuTarget] = TARGETS, arm64_work: Path | None = None,
                  progress=None) -> dict[str, Any]:
    """Every file on every target that can run here. ``{"targets": {name: {...}}, "files": {key: {name: gate}}}``;
    a target that cannot run here is listed with ``checked: false`` and why."""
    work = arm64_work or default_arm64_work()
    result: dict[str, Any] = {"faces": int(len(crops)), "targets": {}, "files": {f.key: {} for f in files}}
    with tempfile.TemporaryDirectory(prefix="facelive-cpus-") as tmp:
        job = write_job(Path(tmp), files, crops, self_check, preprocess)
        for target in targets:
            command = target.command(work)
            if command is None:
                result["targets"][target.name] = {"checked": False, "why": target.why_not(work)}
                continue
            if progress is not None:
                progress(f"CPU check: {target.name}" + (f" ({target.emulator} -cpu {target.cpu})" if target.emulator else ""))
            out = Path(tmp) / f"out-{len(result['targets'])}.npz"
            report = run_target(target, command, job, out)
            seen = report["cpu"]["family"]
            expected = kernel_family() if not target.emulator else target.name
            if seen != expected:
                raise ExportError(f"CPU check on {target.name}: the worker reports a {seen} CPU; the emulator did not "
                                  "give the CPU asked for")
            result["targets"][target.name] = {"checked": True, "emulated": bool(target.emulator),
                                              "emulator": f"{target.emulator} -cpu {target.cpu}" if target.emulator else "",
                                              "cpu": report["cpu"], "wall_s": report["wall_s"]}
            for f in files:
                result["files"][f.key][target.name] = gate_file(f, out, report["files"].get(f.key, {"error": "not run"}),
                                                                ref_emb, ref_logits)
    return result


def passes_everywhere(result: dict[str, Any], key: str) -> bool:
    """True when the file passed on every target that was checked."""
    return all(g["passed"] for g in result["files"].get(key, {}).values())


GATE_FIELDS = ("passed", "cosine_mean", "cosine_min", "expression_top1_agreement_decisive", "self_check_cosine_min",
               "runtime", "failures")


def file_record(result: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """A file's ``cpu_checks`` entry for its manifest parity record: per family, passed and the numbers."""
    if result is None or key not in result["files"]:
        return {}
    return {"cpu_checks": {n: {k: g.get(k) for k in GATE_FIELDS} for n, g in result["files"][key].items()}}


def provenance(result: dict[str, Any] | None, why_not: str) -> dict[str, Any]:
    """The manifest's ``provenance.cpu_checks``: where the files were checked, and which families were not,
    with why (``why_not``: why there was no check at all)."""
    if result is None:
        return {"checked": False, "why": why_not}
    return {"faces": result["faces"], "rule": "the default file passes on every family checked",
            "families": {n: ({"emulated": t["emulated"], "emulator": t["emulator"], "features": t["cpu"]["features"]}
                             if t.get("checked") else {"checked": False, "why": t["why"]})
                         for n, t in result["targets"].items()}}


def markdown(result: dict[str, Any]) -> str:
    """The parity table: one row per file, one column per CPU family."""
    names = list(result["targets"])
    head = "| file | " + " | ".join(names) + " |"
    lines = [head, "|---|" + "---|" * len(names)]
    for key, per in result["files"].items():
        cells = []
        for n in names:
            g = per.get(n)
            if g is None:
                cells.append("not checked")
            elif "cosine_mean" not in g:
                cells.append("FAIL: " + "; ".join(g["failures"]))
            else:
                cells.append(f"{g['cosine_mean']:.4f} / {g['cosine_min']:.4f}, top-1 "
                             f"{g['expression_top1_agreement_decisive']:.2f} {'pass' if g['passed'] else '**FAIL**'}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    skipped = {n: t["why"] for n, t in result["targets"].items() if not t.get("checked")}
    lines.append("")
    lines.append(f"Cells: embedding cosine mean / min vs the torch model on {result['faces']} faces, top-1 agreement on "
                 "the decisive faces, the export's gate for the file's precision plus the self-check. Emulated "
                 "targets give outputs only, no timings.")
    for n, why in skipped.items():
        lines.append(f"- {n}: not checked ({why})")
    return "\n".join(lines)
