"""``facelive-export``: a checkpoint in, a verified model bundle out.

Rules (ARCHITECTURE.md, "Commands"; the shared runner ``edge_runtime.cli_runner``): ``--json`` prints ONE
JSON object on stdout (the summary); progress and logs go to stderr; exit 0 on success, otherwise a
non-zero code (``edge_runtime.constants``) and one line ``facelive-export: error: <reason>``. Converters
print to stdout from C++ too, so file descriptor 1 is pointed at stderr while the export runs (the
runner's ``around`` hook) and restored for the final output.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Sequence

from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_detector_option, add_json_flag, add_log_options,
                                                 add_threads_option)
from facelivenet.edge_runtime.cli_runner import run_command, stdout_to_stderr
from facelivenet.edge_runtime.constants import CACHE_ENV, DATA_ENV, DETECTOR_ENV, EXIT_OK, FORMATS, PRECISIONS, gates_help

from .calibration import DEFAULT_EXPRESSION_FACES, DEFAULT_PARITY_FACES, MIN_CALIB_FACES, MIN_PARITY_FACES
from .errors import ParityGateError
from .parity import DECISIVE_MARGIN, MAX_INT8_BYTES, PAPER_PARAMETERS
from .task_gates import DEFAULT_FER_FACES, MAX_DELTA_POINTS, TASK_GATED

PROG = "facelive-export"
log = logging.getLogger("facelivenet.export.cli")

EPILOG = f"""examples:
  facelive-export --out bundle/ --calib ../shared/data/lfw/images
  facelive-export --checkpoint runs/default/model.pt --out bundle/ --formats onnx --precisions int8 \\
      --calib ../shared/data/lfw/images --detector ../shared/models/yunet/yunet_s_640_640.onnx
  facelive-export --out bundle/ --formats onnx,tflite,coreml --precisions fp32,fp16,int8 \\
      --calib faces/ --parity-data ../shared/data/jaffe --tflite-layout NHWC --json
  facelive inspect bundle/ --json          # the manifest the runtime reads

gates (per file, on held-out real aligned faces, vs the torch model):
{gates_help()}
        (expression agreement on the faces whose torch top-2 logit margin is
        >= {DECISIVE_MARGIN:g}; overall agreement and near-tie disagreements reported);
        int8 ONNX / TFLite files <= {MAX_INT8_BYTES / 1e6:g} MB at {PAPER_PARAMETERS / 1e6:g} M parameters,
        scaled with the model's parameter count (never below {MAX_INT8_BYTES / 1e6:g} MB)
  {", ".join(TASK_GATED)} task gates (labelled faces under --task-data, default ${DATA_ENV}):
        LFW fold-1 accuracy and TAR@FAR=1e-3, FER2013 test-subset accuracy,
        JAFFE Acc_g: none may lose more than {MAX_DELTA_POINTS:g} points against the torch model
        (--two-sided-task-gates: nor gain); 95 % paired bootstrap intervals recorded
  A miss fails the export (nothing is written) unless --allow-parity-failure.
  Parity faces: --parity-count held-out faces of --calib, plus --expression-count
  test/ faces of --expression-data (default ${DATA_ENV}/fer2013).
  Two int8 files per format (ONNX, TFLite): static int8 (int8 activations,
  integer kernels; ONNX QDQ U8S8, TFLite int8 inside with float in/out),
  model_int8_static.*, kept only when it passes every gate above; and the
  weight-only fallback model_int8.* (GPTQ-rounded int8 weights, float
  activations; then also the layers most costly for the expression logits in
  fp16). The passing files are timed side by side (1 thread, interleaved); the
  fastest int8 file of a format is listed first (the runtime's int8 file) and
  the fastest passing file is the manifest's default_file. The manifest
  records every attempt and which layers stayed float.
  Every ONNX/TFLite file must also pass the runtime's self-check on the
  bundle's synthetic self_check.npz (no face data is shipped).
  CoreML files are run only on macOS; elsewhere their spec is checked."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=textwrap.dedent(
            f"""\
            Export a FaceLiveNet checkpoint to a model bundle: ONNX, TFLite (LiteRT)
            and CoreML files in fp32, fp16 and int8, each checked against the torch
            model on real aligned faces, with manifest.json (hashes, preprocessing,
            labels, thresholds, parity, provenance). Calibration and parity faces
            come from --calib (any folder of face images, searched recursively),
            detected and aligned with YuNet (${DETECTOR_ENV} or --detector)."""
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--checkpoint", type=Path, metavar="C",
                   help="checkpoint .pt (default: the shipped model, training/default_model/model.pt)")
    p.add_argument("--out", type=Path, required=True, metavar="BUNDLE", help="bundle folder to write (must not exist)")
    p.add_argument("--formats", default=",".join(FORMATS), metavar="LIST",
                   help=f"comma-separated, of {', '.join(FORMATS)} (default: all)")
    p.add_argument("--precisions", default=",".join(PRECISIONS), metavar="LIST",
                   help=f"comma-separated, of {', '.join(PRECISIONS)} (default: all)")
    p.add_argument("--calib", type=Path, metavar="DIR",
                   help=f"folder of face images for int8 calibration and parity (default: ${DATA_ENV}/lfw/images)")
    p.add_argument("--calib-count", type=int, default=MIN_CALIB_FACES, metavar="N",
                   help=f"calibration faces to use (at least {MIN_CALIB_FACES}; default {MIN_CALIB_FACES})")
    p.add_argument("--parity-count", type=int, default=DEFAULT_PARITY_FACES, metavar="N",
                   help=f"held-out faces for the parity gates (default {DEFAULT_PARITY_FACES}, at least {MIN_PARITY_FACES})")
    p.add_argument("--parity-data", type=Path, metavar="DIR",
                   help="take the parity faces from this folder instead of the rest of --calib")
    p.add_argument("--expression-data", type=Path, metavar="DIR",
                   help="already-cropped expression faces (FER2013 layout), aligned as the checkpoint's Stage 2 "
                        "aligned them: train/ adds calibration faces, test/ parity faces "
                        f"(default: ${DATA_ENV}/fer2013 when it exists)")
    p.add_argument("--no-expression-data", action="store_true", help="calibrate and check on --calib faces only")
    p.add_argument("--expression-count", type=int, default=DEFAULT_EXPRESSION_FACES, metavar="N",
                   help=f"expression faces for calibration and again for parity (default {DEFAULT_EXPRESSION_FACES})")
    add_detector_option(p, f"${DETECTOR_ENV}, which aligns but is not copied", type=Path,
                        note="used for alignment AND copied into the bundle with its hash and licence")
    p.add_argument("--tflite-layout", choices=("NCHW", "NHWC"), type=str.upper,
                   help="TFLite input layout (default: the checkpoint's, NCHW); NHWC suits phone camera buffers")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18)")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip ONNX graph simplification")
    p.add_argument("--onnx-calibration", choices=("minmax", "percentile", "entropy"), default="percentile",
                   help="static int8 ONNX: how activation ranges are calibrated (default percentile: with the 7-bit "
                        "weights every CPU needs, it lost least; see export/static_int8.py)")
    p.add_argument("--thresholds", type=Path, metavar="FILE",
                   help="JSON with verification_cosine, target_far, expression_probability, calibrated_on")
    p.add_argument("--evaluation", type=Path, metavar="FILE",
                   help="facelive-train evaluate result for this checkpoint (default: evaluation.json beside it)")
    p.add_argument("--task-data", type=Path, metavar="DIR",
                   help="labelled faces for the task gates: lfw/ (pairs.txt), fer2013/test, jaffe/ "
                        f"(default: ${DATA_ENV})")
    p.add_argument("--task-fer-count", type=int, default=DEFAULT_FER_FACES, metavar="N",
                   help=f"FER2013 test faces for the task gates, evenly spaced (default {DEFAULT_FER_FACES})")
    p.add_argument("--two-sided-task-gates", action="store_true",
                   help="task gates fail on a gain beyond 0.5 points too (default: only on a loss)")
    p.add_argument("--no-task-gates", dest="task_gates", action="store_false",
                   help="skip the task gates (then no static int8 file is built)")
    p.add_argument("--no-static-int8", dest="static_int8", action="store_false",
                   help="build only the weight-only int8 files")
    p.add_argument("--cpu-check", choices=("auto", "native", "off"), default="auto",
                   help="run every ONNX/TFLite file on each CPU family and gate it there: auto = this machine plus "
                        "the emulated ones it reaches (x86-64 AVX2 through qemu-x86_64; arm64 Cortex-A72/A76 through "
                        "qemu-aarch64 and the environment of make arm64-check); a file failing anywhere is never the "
                        "default file (default auto)")
    p.add_argument("--allow-parity-failure", action="store_true",
                   help="write the bundle even when a gate fails (the manifest records the failure)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help=f"aligned-face cache (default ${CACHE_ENV} or ~/.cache)")
    p.add_argument("--seed", type=int, default=0, help="which images of --calib are used (default 0)")
    add_threads_option(p, 0, default_text="0: all cores")
    add_json_flag(p, "the summary")
    add_log_options(p)
    return p


def _quiet_converters(args: argparse.Namespace) -> None:
    """Converters are chatty: below -vv their warnings and logs are dropped (the runner's prepare hook)."""
    if args.verbose < 2:
        warnings.filterwarnings("ignore")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for name in ("coremltools", "torch", "torch.onnx", "onnxscript", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


def options_from_args(args: argparse.Namespace):
    from .pipeline import ExportOptions, default_expression_data

    expression = None if args.no_expression_data else (args.expression_data or default_expression_data())
    return ExportOptions(
        out=args.out, checkpoint=args.checkpoint, formats=args.formats, precisions=args.precisions,
        calib=args.calib, parity_data=args.parity_data, expression_data=expression,
        expression_count=args.expression_count, detector=args.detector, calib_count=args.calib_count,
        parity_count=args.parity_count, tflite_layout=args.tflite_layout, opset=args.opset, simplify=args.simplify,
        onnx_calibration=args.onnx_calibration, allow_parity_failure=args.allow_parity_failure, force=args.force,
        thresholds=args.thresholds, evaluation=args.evaluation, cache_dir=args.cache_dir, seed=args.seed,
        threads=args.threads, progress=not args.quiet, verbose=args.verbose >= 2, task_data=args.task_data,
        task_gates=args.task_gates, task_fer_faces=args.task_fer_count, static_int8=args.static_int8,
        cpu_check=args.cpu_check,
        task_two_sided=args.two_sided_task_gates,
    )


def _run(args: argparse.Namespace) -> tuple:
    """Export the bundle; the summary is the JSON object, its table and one line the text."""
    from .pipeline import export_bundle

    try:
        summary = export_bundle(options_from_args(args))
    except ParityGateError as exc:
        if exc.table:
            print(exc.table, file=sys.stderr)
        raise
    table = summary.pop("table")
    text = (f"{table}\nbundle {summary['bundle']} ({len(summary['files'])} files, {summary['seconds']} s)"
            + ("" if summary["gates_passed"] else "  WARNING: some gates failed (--allow-parity-failure)"))
    if not summary["gates_passed"]:
        return EXIT_OK, summary, text, "written with failed gates (--allow-parity-failure)"
    return EXIT_OK, summary, text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``facelive-export``; returns the exit code (ARCHITECTURE.md, "Commands")."""
    return run_command(PROG, build_parser(), argv, _run, prepare=_quiet_converters, around=stdout_to_stderr,
                       interrupted="interrupted (no bundle written)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
