"""Lay out the source folder buildozer packages: ``python -m facelivenet.demo_kivy.android_stage OUT``.

OUT gets ``main.py``, ``buildozer.spec``, and a ``facelivenet`` package holding
``edge_runtime`` (with the bundle as its default bundle, TFLite model files
only: the ONNX ones stay out of the APK; the YuNet detector stays in),
``demo_kivy``, and of ``server`` only its client (``__init__.py``, ``client.py``:
the standard library, for ``--server``). Nothing else of the repository goes in:
no torch, no training or export code, no server. Then
``cd OUT && buildozer android debug`` (see ANDROID.md).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from facelivenet import edge_runtime, server
from facelivenet.edge_runtime.bundle import resolve_bundle_dir
from facelivenet.edge_runtime.cli_common import HelpFormatter, add_bundle_option, add_json_flag, add_log_options, epilog
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import EXIT_OK
from facelivenet.edge_runtime.errors import FaceLiveError

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent
EDGE_DIR = Path(edge_runtime.__file__).resolve().parent
SERVER_DIR = Path(server.__file__).resolve().parent
SERVER_CLIENT = ("__init__.py", "client.py")  # the demo's server mode; the rest of server/ is the server itself
MAIN_PY = '"""FaceLiveNet demo (Android entry point, written by android_stage)."""\n' \
          "from facelivenet.demo_kivy.android_main import run\n\nrun()\n"
KEEP_OUT = ("__pycache__", "*.pyc", "default_bundle", "buildozer.spec", "*.md", "*.png")


def _copy_bundle(bundle: Path, dest: Path) -> list[str]:
    """The bundle without its ONNX model files (the detector's ONNX file is kept)."""
    def skip(folder: str, names: list[str]) -> list[str]:
        top = Path(folder).resolve() == bundle.resolve()
        return [n for n in names if n == "__pycache__" or (top and n.endswith(".onnx"))]

    shutil.copytree(bundle, dest, ignore=skip)
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def stage(out: Path, bundle: str | None = None, force: bool = False) -> list[str]:
    """Write the buildozer source folder; returns the bundle files that went in."""
    if out.exists():
        if not force:
            raise FaceLiveError(f"{out} exists; pass --force to replace it")
        shutil.rmtree(out)
    package = out / "facelivenet"
    shutil.copytree(EDGE_DIR, package / "edge_runtime", ignore=shutil.ignore_patterns(*KEEP_OUT))
    shutil.copytree(DEMO_DIR, package / "demo_kivy", ignore=shutil.ignore_patterns(*KEEP_OUT))
    (package / "server").mkdir()
    for name in SERVER_CLIENT:
        shutil.copy2(SERVER_DIR / name, package / "server" / name)
    (package / "__init__.py").write_text('"""facelivenet, as packaged for Android."""\n', encoding="utf-8")
    files = _copy_bundle(resolve_bundle_dir(bundle), package / "edge_runtime" / "default_bundle")
    if not any(f.endswith(".tflite") for f in files):
        raise FaceLiveError("the bundle has no .tflite model: export one with facelive-export --formats tflite")
    (out / "main.py").write_text(MAIN_PY, encoding="utf-8")
    shutil.copy2(DEMO_DIR / "buildozer.spec", out / "buildozer.spec")
    log.info("staged %s (bundle: %s)", out, ", ".join(files))
    return files


PROG = "python -m facelivenet.demo_kivy.android_stage"


def build_parser() -> argparse.ArgumentParser:
    """The staging step's parser (the shared CLI convention: --json, -v/-q, exit codes)."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=HelpFormatter,
                                epilog=epilog(f"{PROG} build/android", f"{PROG} build/android --bundle bundle/ --force"))
    p.add_argument("out", type=Path, help="folder to write (buildozer's source.dir)")
    add_bundle_option(p, "model bundle to ship")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    add_json_flag(p)
    add_log_options(p)
    return p


def _run(args: argparse.Namespace):
    files = stage(args.out, args.bundle, args.force)
    return EXIT_OK, {"out": str(args.out), "bundle_files": files}, f"staged {args.out} (bundle: {', '.join(files)})"


def main(argv: list[str] | None = None) -> int:
    """Command line of the staging step; returns the exit code."""
    return run_command(PROG, build_parser(), argv, _run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
