"""``facelive-bench device``: the torch-free part of the benchmark, for a Raspberry Pi or a phone-class board.

Exit codes: 0 success; 1 a failure (bad bundle, a file failing its parity gate
on this device: the numbers are still printed); 2 a usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_bundle_option, add_data_option,
                                                 add_detector_option, add_json_flag, add_log_options)
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import EXIT_FAILURE, EXIT_OK

from .errors import BenchError

PROG = "facelive-bench device"
EXIT_PARITY = EXIT_FAILURE  # a file failing its parity gate on this device
log = logging.getLogger("facelivenet.benchmarks.device")

EPILOG = """examples (on the board: pip install "facelivenet[edge]", copy the bundle folder over):
  facelive-bench device --bundle bundle/ --threads 1,4 --json > device.json
  facelive-bench device --bundle bundle/ --threads 1,4 --data faces/ --out report/   # + 640x480 pipeline
  facelive-bench device --quick                        # the shipped bundle, 30 timed runs per row

what is measured: each model file of the bundle (sha256-verified) in a child process of its own: load ms,
median / p95 / p99 ms at batch 1 after warm-up, RSS, threads, achieved GFLOP/s against the fp32 GEMM
peak measured in the same run (the best of numpy's BLAS, onnxruntime and LiteRT); parity on this device against the torch outputs the export saved in the
bundle, gated like the export: with --data on the export's held-out real faces (parity_reference.npz:
image hashes + torch outputs; the images are re-read and re-aligned here), always on its synthetic
self-check inputs (self_check.npz); the export's own parity from the manifest beside it.
No torch, onnx or converter is imported."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=textwrap.dedent(
            """\
            Latency and parity of a bundle on this machine with only the edge runtime
            installed (numpy, OpenCV, onnxruntime, LiteRT): what to run on the device
            the bundle is meant for."""
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add_bundle_option(p, type=Path)
    p.add_argument("--threads", default="1", metavar="LIST", help="thread counts to time, e.g. 1,4 (default 1)")
    p.add_argument("--quick", action="store_true", help="30 timed runs after 5 warm-up per row")
    p.add_argument("--runs", type=int, metavar="N", help="timed runs per row (default 200; 30 with --quick)")
    p.add_argument("--warmup", type=int, metavar="N", help="untimed warm-up runs (default 20; 5 with --quick)")
    add_data_option(p, "the faces copied to the device (lfw/images, fer2013/test, jaffe)", type=Path,
                    note="real-face parity against the bundle's parity_reference.npz and the 640x480 pipeline")
    p.add_argument("--faces", type=int, metavar="N",
                   help="at most N of the reference faces, evenly spread (a slow board or an emulator; default all)")
    p.add_argument("--gemm-n", type=int, metavar="N",
                   help="size of the float32 GEMM that measures the peak through numpy, onnxruntime and LiteRT "
                        "(default 2048; 1536 with --quick)")
    add_detector_option(p)
    p.add_argument("--out", type=Path, metavar="REPORT_DIR", help="write result.json, report.md, config.json here")
    add_json_flag(p)
    add_log_options(p)
    return p


def config_from_args(args: argparse.Namespace):
    """The resolved :class:`~.device.DeviceConfig`."""
    from facelivenet.edge_runtime.bundle import resolve_bundle_dir

    from .config import parse_threads
    from .device import DeviceConfig
    from .faces import resolve_data_root

    for name, low in (("runs", 1), ("warmup", 0), ("faces", 1), ("gemm_n", 16)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise BenchError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    return DeviceConfig(bundle=resolve_bundle_dir(args.bundle), threads=parse_threads(args.threads),
                        quick=args.quick, runs=args.runs, warmup=args.warmup, data=resolve_data_root(args.data),
                        detector=args.detector, out=args.out, faces=args.faces,
                        gemm_n=args.gemm_n)


def _run(args: argparse.Namespace):
    from .device import run_device_benchmark
    from .report import markdown

    cfg = config_from_args(args)
    result = run_device_benchmark(cfg)
    if cfg.out is not None:
        from .report_files import write_report

        result["report_files"] = write_report(result, cfg.out)
    text = "" if args.json else markdown(result)
    if result["parity_failed"]:
        return EXIT_PARITY, result, text, f"parity gate failed on this device for {', '.join(result['parity_failed'])}"
    return EXIT_OK, result, text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the edge-only benchmark; returns the exit code."""
    return run_command(PROG, build_parser(), argv, _run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
