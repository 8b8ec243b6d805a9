"""``facelive-bench``: latency, size and accuracy parity of a model bundle, and how it compares with peers.

Rules (the CLI convention, ARCHITECTURE.md "Commands"): ``--json`` prints ONE JSON object on stdout (the
result), logs go to stderr; exit 0 on success, otherwise a non-zero code and
one line ``facelive-bench: error: <reason>`` (with ``--json`` also
``{"error", "error_type"}`` on stdout). Libraries that print from C++ are
pointed at stderr while the benchmark runs.

Without a subcommand the benchmark runs. Subcommands are registered in
:data:`SUBCOMMANDS` by name and module: ``facelive-bench attacks ...`` hands
the arguments after ``attacks`` to ``facelivenet.benchmarks.attacks.cli.main``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_bundle_option, add_data_option, add_detector_option,
                                                 add_json_flag, add_log_options, add_threads_option)
from facelivenet.edge_runtime.cli_runner import HandlerResult, run_command, stdout_to_stderr
from facelivenet.edge_runtime.constants import CACHE_ENV, EXIT_FAILURE, EXIT_OK

from .errors import BenchError

PROG = "facelive-bench"
log = logging.getLogger("facelivenet.benchmarks.cli")

EPILOG = """examples:
  facelive-bench --quick                                 # the shipped bundle, 1 thread, < 2 min
  facelive-bench --bundle bundle/ --data ../shared/data --threads 1,2 --json > bench.json
  facelive-bench --bundle bundle/ --data ../shared/data --out report/   # + report.md, PNG plots, config.json
  OMP_NUM_THREADS=1 facelive-bench --bundle bundle/ --data ../shared/data --runs 500 --no-dlib
  facelive-bench attacks --quick --json                  # liveness attacks (its own command)

what is measured (each timed row runs in its own process: its load time, RSS and threads are its own):
  rows    every file of the bundle (sha256-verified; opened by the runtime's backend) and the torch
          model: load ms; median, p95, p99 ms of batch-1 forward passes after warm-up; RSS; achieved
          GFLOP/s as a fraction of the machine's fp32 GEMM peak measured in the same run
  parity  with --data: embedding cosine mean/min and expression top-1 agreement vs the torch model on
          held-out real aligned faces (the export's gates); accuracy: LFW View 2 (unseen folds) and
          FER2013 test. Without --data (or $FACELIVE_DATA): latency only
  peers   MobileFaceNet (112 px), FaceNet Inception-ResNet-v1 (160 px), a two-model pipeline
          (MobileFaceNet + a separate 7-way expression CNN), fp32 and (with --data) int8 ONNX by the
          bundle's own quantiser, same onnxruntime options and threads; dlib's ResNet recogniser with
          its LFW accuracy. ratio_vs_ours = our int8 ONNX median / the peer's median
  targets ours int8 <= 1.0 x MobileFaceNet int8; <= 0.5 x the two-model pipeline

--quick: 30 timed runs after 5 warm-up, a smaller GEMM, the evaluation's LFW/FER2013 subsets with task
accuracy for the torch model and the int8 ONNX file only (parity for every file), int8 peers only;
the output says so. The first run on a machine also exports, quantises and caches the peers and
aligns the faces (a few minutes); later runs reuse the cache."""


# Subcommands: name -> (module whose ``main(argv)`` takes the arguments after the name and returns the exit
# code, one-line help). ``facelive-bench NAME ...`` hands over to it; without a name the benchmark runs.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "attacks": ("facelivenet.benchmarks.attacks.cli", "liveness attacks: APCER per attack type, BPCER"),
    "device": ("facelivenet.benchmarks.device_cli", "latency + parity with only the edge extra (no torch)"),
    "cpus": ("facelivenet.benchmarks.cpus_cli", "every file on every CPU family (native, emulated AVX2 and arm64)"),
    "serve": ("facelivenet.benchmarks.serve", "the verification server under load on loopback + decision equality"),
}


def _subcommand_help() -> str:
    return "\n".join(f"  {name:<10} {text} (facelive-bench {name} --help)" for name, (_, text) in SUBCOMMANDS.items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [options] | {PROG} COMMAND ...",
        description=textwrap.dedent(
            """\
            Benchmark a FaceLiveNet bundle on this machine: latency, size, memory and,
            with real faces, parity and accuracy of every model file against the
            torch model; then compare our fused int8 model with peer networks."""
        ),
        epilog=EPILOG + "\n\ncommands (instead of the benchmark):\n" + _subcommand_help(),
        formatter_class=HelpFormatter,
    )
    add_bundle_option(p, type=Path)
    p.add_argument("--checkpoint", type=Path, metavar="C",
                   help="the checkpoint the bundle came from (default: the shipped model)")
    add_data_option(p, "lfw/ and fer2013/", type=Path, note="enables parity, accuracy and int8 peers")
    add_detector_option(p)
    add_threads_option(p, "1", many=True)
    p.add_argument("--quick", action="store_true", help="fewer runs and evaluation subsets (< 2 min)")
    p.add_argument("--runs", type=int, metavar="N", help="timed runs per row (default 200; 30 with --quick)")
    p.add_argument("--warmup", type=int, metavar="N", help="untimed warm-up runs (default 20; 5 with --quick)")
    p.add_argument("--out", type=Path, metavar="REPORT_DIR",
                   help="write result.json, report.md, config.json and PNG plots into this folder")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help=f"face and peer-model cache (default ${CACHE_ENV} or ~/.cache/facelivenet)")
    p.add_argument("--seed", type=int, default=0, help="which LFW images calibrate and check parity (default 0)")
    p.add_argument("--peers", dest="peer_names", metavar="LIST",
                   help="peer networks to compare, comma-separated (default: all: mobilefacenet, mobilefacenet_relu, "
                        "facenet_irv1, two_model_pipeline)")
    p.add_argument("--no-peers", dest="peers", action="store_false", help="skip the peer networks and dlib")
    p.add_argument("--no-dlib", dest="dlib", action="store_false", help="skip dlib's ResNet")
    p.add_argument("--no-accuracy", dest="accuracy", action="store_false",
                   help="skip parity and accuracy even with --data")
    p.add_argument("--in-process", dest="isolate", action="store_false",
                   help="time every row in this process (faster; RSS and load times then include earlier rows)")
    add_json_flag(p)
    add_log_options(p)
    return p


def config_from_args(args: argparse.Namespace):
    """The resolved :class:`~.config.BenchConfig` (bundle, data folder and threads checked)."""
    from facelivenet.edge_runtime.bundle import resolve_bundle_dir

    from .config import BenchConfig, parse_peers, parse_threads
    from .faces import resolve_data_root
    from .peers import PEERS

    for name in ("runs", "warmup"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "runs" else 0):
            raise BenchError(f"--{name} must be >= {1 if name == 'runs' else 0}, got {value}")
    return BenchConfig(
        bundle=resolve_bundle_dir(args.bundle), checkpoint=args.checkpoint, data=resolve_data_root(args.data),
        detector=args.detector, threads=parse_threads(args.threads), quick=args.quick, runs=args.runs,
        warmup=args.warmup, out=args.out, cache_dir=args.cache_dir, seed=args.seed, isolate=args.isolate,
        peers=args.peers, dlib=args.dlib, accuracy=args.accuracy,
        peer_names=parse_peers(args.peer_names, tuple(p.name for p in PEERS)) if args.peer_names else None,
    )


def _cmd_bench(args: argparse.Namespace) -> HandlerResult:
    from .report import markdown
    from .run import run_benchmark

    cfg = config_from_args(args)
    with stdout_to_stderr():
        result = run_benchmark(cfg)
        if cfg.out is not None:
            from .report_files import write_report

            result["report_files"] = write_report(result, cfg.out)
    return EXIT_OK, result, markdown(result)


def _torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# The flags that ``facelive-bench device`` shares with the full benchmark (True: takes a value).
DEVICE_FLAGS = {"--bundle": True, "--detector": True, "--threads": True, "--runs": True, "--warmup": True, "--data": True,
                "--out": True, "--quick": False, "--json": False, "-q": False, "--quiet": False, "-v": False,
                "--verbose": False}


def _device_argv(argv: list[str]) -> list[str]:
    """``argv`` less the flags only the full benchmark knows (each dropped one is logged)."""
    out, i = [], 0
    while i < len(argv):
        flag = argv[i].split("=", 1)[0]
        takes = DEVICE_FLAGS.get(flag)
        if takes is None:
            print(f"{PROG}: ignoring {argv[i]} (not used by the edge-only benchmark)", file=sys.stderr)
            i += 1
            continue
        out.append(argv[i])
        if takes and "=" not in argv[i] and i + 1 < len(argv):
            out.append(argv[i + 1])
            i += 1
        i += 1
    return out


def _subcommand(name: str, argv: list[str]) -> int:
    module_name, _ = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"{PROG}: error: the {name} command is not available: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return module.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facelive-bench`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv[0], argv[1:])
    if not _torch_importable() and not {"-h", "--help"} & set(argv):
        print(f"{PROG}: torch is not installed: running the edge-only benchmark ({PROG} device); "
              "the torch row, real-face accuracy and peers need the full install", file=sys.stderr)
        return _subcommand("device", _device_argv(argv))
    return run_command(PROG, build_parser(), argv, _cmd_bench, prepare=_quiet_root_logger)


def _quiet_root_logger(args: argparse.Namespace) -> None:
    # onnxruntime's quantiser configures the root logger: keep our lines from printing twice
    logging.getLogger("facelivenet").propagate = False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
