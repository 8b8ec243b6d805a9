"""``facelive-bench cpus``: every file of a bundle on every CPU family the project claims (emulated here).

Exit codes: 0 every file passes on every family checked; 1 a file fails somewhere (the table is still
printed, and with --write recorded); 2 a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_bundle_option, add_data_option,
                                                 add_detector_option, add_json_flag, add_log_options)
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import EXIT_FAILURE, EXIT_OK

from .errors import BenchError

PROG = "facelive-bench cpus"
DEFAULT_FACES = 24
log = logging.getLogger("facelivenet.benchmarks.cpus")

EPILOG = """examples:
  facelive-bench cpus                                  # the shipped bundle, 24 faces, every family it can reach
  facelive-bench cpus --bundle bundle/ --write         # ... and record the result in bundle/manifest.json
  make cpu-check                                       # set-up (qemu, the aarch64 root) + this + the CPU tests

families: native; x86-64 AVX2 without VNNI (qemu-x86_64 -cpu Haswell-v4, this machine's Python); arm64
Cortex-A72 (Raspberry Pi 4: no dot product) and Cortex-A76 (Pi 5: dot product) through qemu-aarch64 and
the aarch64 environment `make arm64-check` builds ($ARM64_WORK, default ~/.cache/facelivenet-arm64).
Each file is gated as at export (cosines, decisive top-1 agreement vs the torch model) plus the
self-check. Emulation gives outputs, never timings. With --write the manifest records, per file, where
it was checked (parity[KEY].cpu_checks), and a default file that fails anywhere is replaced by the
fastest file that passes everywhere."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=textwrap.dedent(
            """\
            Run every ONNX and TFLite file of a bundle on the same aligned real faces
            on each CPU family (native, and emulated: x86-64 AVX2, arm64 with and
            without dot product) and gate each like the export does."""
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add_bundle_option(p, type=Path)
    add_data_option(p, "the bundle's reference images (its parity_reference.npz names them)", type=Path)
    p.add_argument("--faces", type=int, default=DEFAULT_FACES, metavar="N",
                   help=f"reference faces, evenly spread (emulation runs about a second per forward pass; "
                        f"default {DEFAULT_FACES})")
    p.add_argument("--families", metavar="LIST",
                   help="a comma list of the families to check (default: all; see below)")
    p.add_argument("--arm64-work", type=Path, metavar="DIR",
                   help="the aarch64 environment (default: $ARM64_WORK, else ~/.cache/facelivenet-arm64)")
    add_detector_option(p)
    p.add_argument("--write", action="store_true", help="record the result in the bundle's manifest")
    p.add_argument("--out", type=Path, metavar="DIR", help="write cpu_check.json and cpu_check.md here")
    add_json_flag(p)
    add_log_options(p)
    return p


def _targets(text: str | None):
    from facelivenet.export.cpu_check import TARGETS

    if not text:
        return TARGETS
    names = [n.strip() for n in text.split(",") if n.strip()]
    by_name = {t.name: t for t in TARGETS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise BenchError(f"unknown CPU families {unknown}; valid: {', '.join(by_name)}")
    return tuple(by_name[n] for n in names)


def check_bundle(bundle: Path, data: Path, faces: int, targets, arm64_work: Path | None,
                 detector: str | None) -> dict[str, Any]:
    """The CPU check of ``bundle``'s ONNX and TFLite files on ``faces`` of its reference faces."""
    from facelivenet.edge_runtime.constants import FORMAT_TABLE
    from facelivenet.edge_runtime.manifest import load_manifest, sha256_file
    from facelivenet.export.cpu_check import CheckFile, check_on_cpus

    from .device_faces import load_reference_faces

    manifest = load_manifest(bundle)
    ref = load_reference_faces(bundle, manifest, data, detector, faces)
    if ref is None or not len(ref.crops):
        raise BenchError(f"none of the bundle's reference faces are under {data} (pass --data)")
    record = (manifest.provenance or {}).get("self_check")
    if not record:
        raise BenchError("the bundle has no self-check reference (self_check.npz)")
    path = bundle / record["path"]
    if sha256_file(path) != record.get("sha256"):
        raise BenchError(f"{path} does not match its sha256 in the manifest")
    with np.load(path) as npz:
        self_check = {k: npz[k] for k in ("pixels", "embedding", "expression_logits")}
    files = [CheckFile(f.parity_key, f.format, bundle / f.path, f.layout, f.precision)
             for f in manifest.files if FORMAT_TABLE[f.format].runs_anywhere]
    result = check_on_cpus(files, ref.crops, ref.embedding.astype(np.float32), ref.expression_logits, self_check,
                           manifest.preprocess, targets, arm64_work, progress=lambda m: log.info("%s", m))
    result["bundle"] = str(bundle)
    result["default_file"] = manifest.default_file
    return result


def write_into_manifest(bundle: Path, result: dict[str, Any], command: str) -> dict[str, Any]:
    """Record the check in ``bundle/manifest.json`` (atomically); a default file that fails anywhere is
    replaced by the first listed file that passes everywhere. What changed."""
    from facelivenet.edge_runtime.manifest import MANIFEST_NAME, manifest_from_dict, save_manifest
    from facelivenet.export.cpu_check import file_record, passes_everywhere, provenance

    path = bundle / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    checked = [n for n, t in result["targets"].items() if t.get("checked")]
    for key in result["files"]:
        data["parity"].setdefault(key, {}).update(file_record(result, key))
    data["provenance"]["cpu_checks"] = {**provenance(result, ""), "command": command,
                                        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    changed = {"families": checked}
    manifest = manifest_from_dict(data)
    keys = {f.path: f.parity_key for f in manifest.files}
    if manifest.default_file is not None and not passes_everywhere(result, keys[manifest.default_file]):
        new = next((p for p, k in keys.items() if k in result["files"] and passes_everywhere(result, k)), None)
        changed["default_file"] = {"was": manifest.default_file, "now": new}
        manifest = dataclasses.replace(manifest, default_file=new)
    save_manifest(manifest, bundle)
    if (bundle / "manifest.sig").is_file():
        log.warning("%s changed: its signature no longer matches; sign it again (facelive sign)", path)
    return changed


def _run(args: argparse.Namespace):
    from facelivenet.edge_runtime.bundle import resolve_bundle_dir
    from facelivenet.export.cpu_check import markdown, passes_everywhere

    from .faces import resolve_data_root

    if args.faces < 1:
        raise BenchError(f"--faces must be >= 1, got {args.faces}")
    targets = _targets(args.families)
    bundle = resolve_bundle_dir(args.bundle)
    data = resolve_data_root(args.data)
    if data is None:
        raise BenchError("no face data: pass --data or set $FACELIVE_DATA")
    result = check_bundle(bundle, data, args.faces, targets, args.arm64_work, args.detector)
    if args.write:
        command = f"facelive-bench cpus --faces {args.faces}" + (f" --families {args.families}" if args.families else "")
        result["written"] = write_into_manifest(bundle, result, command + " --write")
    text = markdown(result)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cpu_check.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "cpu_check.md").write_text(text + "\n")
    failed = [k for k in result["files"] if not passes_everywhere(result, k)]
    if failed:
        return EXIT_FAILURE, result, text, f"files failing on a CPU family: {', '.join(failed)}"
    return EXIT_OK, result, "" if args.json else text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CPU check; returns the exit code."""
    return run_command(PROG, build_parser(), argv, _run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
