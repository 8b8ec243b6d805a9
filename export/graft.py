"""Replace one model file of a bundle by the same file of another bundle exported from the same checkpoint.

``python -m facelivenet.export.graft SOURCE_BUNDLE TARGET_BUNDLE KEY [--reason TEXT]``

For when one file's recipe changes (the static int8 ONNX file's 7-bit weights:
ARCHITECTURE.md, "CPU portability") and the rest of a shipped bundle, with every number measured on it, should stay as it is.
Export the changed format again (``facelive-export --formats onnx ...``), then graft its file: the
checkpoint, preprocessing and outputs must match, the file must have passed every gate in the source
bundle; the file, its parity record (gates, task deltas, CPU checks) and its timing rows move over, the
target's provenance records the replacement, and the manifest is written atomically after the new file
is in place and verified.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from facelivenet.edge_runtime.manifest import (MANIFEST_NAME, ModelFile, load_manifest, manifest_from_dict,
                                                save_manifest, sha256_file)

from .errors import ExportError


def _key(f: dict[str, Any]) -> str:
    """A manifest ``files`` entry's parity key (``ModelFile.parity_key``)."""
    return ModelFile(**{k: f[k] for k in ModelFile.__dataclass_fields__ if k in f}).parity_key


def graft(source: Path, target: Path, key: str, reason: str) -> dict[str, Any]:
    """Move file ``key`` (e.g. ``onnx/int8/static``) from ``source`` into ``target``; what changed."""
    src_m, dst_m = load_manifest(source), load_manifest(target)  # both verified, every file's sha256
    for field in ("checkpoint_sha256", "preprocess", "outputs"):
        if getattr(src_m, field) != getattr(dst_m, field):
            raise ExportError(f"the bundles differ in {field}: a file can only move between exports of one checkpoint")
    src = json.loads((source / MANIFEST_NAME).read_text(encoding="utf-8"))
    dst = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
    entry = next((f for f in src["files"] if _key(f) == key), None)
    if entry is None:
        raise ExportError(f"{source} has no {key} file (it has: {', '.join(_key(f) for f in src['files'])})")
    record = src["parity"].get(key) or {}
    if record.get("passed") is not True:
        raise ExportError(f"{key} did not pass its gates in {source}: {record.get('failures')}")
    old = next((f for f in dst["files"] if _key(f) == key), None)
    sha_was = old["sha256"] if old else None
    tmp_file = target / f".graft-{entry['path']}"
    shutil.copy2(source / entry["path"], tmp_file)
    if sha256_file(tmp_file) != entry["sha256"]:
        tmp_file.unlink()
        raise ExportError(f"copying {entry['path']} did not give the file its manifest describes")
    if old is None:
        dst["files"].append(dict(entry))
    else:
        old.update(sha256=entry["sha256"], size_bytes=entry["size_bytes"], path=entry["path"])
    dst["parity"][key] = record
    speed_src = (src["provenance"].get("speed") or {}).get("rows") or []
    speed_dst = dst["provenance"].get("speed") or {}
    fmt = entry["format"]
    if speed_src and speed_dst.get("rows"):  # the format's rows from one run: ratios within it stay honest
        speed_dst["rows"] = [r for r in speed_dst["rows"] if r.get("format") != fmt] + \
            [r for r in speed_src if r.get("format") == fmt]
        speed_dst.setdefault("replaced_rows", []).append({"format": fmt, "from": src["provenance"].get("exported_at")})
    if entry.get("variant") == "static" and "static_int8" in src["provenance"]:
        dst["provenance"]["static_int8"] = src["provenance"]["static_int8"]  # the recipe the new file was built with
    change = {"key": key, "path": entry["path"], "sha256_was": sha_was,
              "sha256_now": entry["sha256"], "from_export": src["provenance"].get("exported_at"),
              "grafted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reason": reason,
              "quantisation": record.get("quantisation")}
    dst["provenance"].setdefault("replaced_files", []).append(change)
    manifest = manifest_from_dict(json.loads(json.dumps(dst)))  # still a valid manifest before anything is replaced
    os.replace(tmp_file, target / entry["path"])
    save_manifest(manifest, target)
    load_manifest(target)  # every hash right after the swap
    return change


def main(argv: list[str] | None = None) -> int:
    """Graft one file; prints the change (``--json``: one object). Returns the exit code."""
    from facelivenet.edge_runtime.cli_common import add_json_flag, add_log_options
    from facelivenet.edge_runtime.cli_runner import run_command

    prog = "python -m facelivenet.export.graft"
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="the bundle exported with the new recipe")
    p.add_argument("target", type=Path, help="the bundle whose file is replaced")
    p.add_argument("key", help="the file's parity key, e.g. onnx/int8/static")
    p.add_argument("--reason", default="", help="why (recorded in the target's provenance)")
    add_json_flag(p)
    add_log_options(p)

    def run(args: argparse.Namespace):
        change = graft(args.source, args.target, args.key, args.reason)
        return 0, change, f"{change['path']}: {change['sha256_was']} -> {change['sha256_now']}"

    return run_command(prog, p, argv, run)


if __name__ == "__main__":
    sys.exit(main())
