"""Where static int8 activations cost parity: the ONNX int8 file probed one region of the network at a time.

``python -m facelivenet.export.int8_scan [--checkpoint C] [--calib DIR] [--out DIR] [--json]``

The export tries static int8 first (:data:`.wrappers.INT8_LEVELS`) and keeps the
activations float when that misses the gate. This scan shows where the loss
comes from, on the faces the export uses (same calibration and held-out parity
faces, same GPTQ-rounded weights, same onnxruntime QDQ settings: U8S8 with
7-bit weights, :class:`.static_int8.StaticInt8Config`):

- the whole network static int8 (only the L2 normalisation float), once per
  calibration method;
- per region of the network (stem, each Inception-ResNet stage, the two
  branches, the expression head, and the identity tail: pooled features,
  bottleneck and its BatchNorm, which the simplifier folds into the
  bottleneck's Gemm under the BatchNorm's scope): one file with only that
  region's activations float, and one with only that region's activations
  int8. "float only identity tail" is what the export builds;
- the file the export falls back to (int8 weights, float activations);
- how close the torch model's top two expression logits are on the parity
  faces: the agreement gate can only be met by a file whose logit error is
  small against those margins.

Writes ``int8_scan.json``, ``int8_scan.md`` and ``config.json`` (the resolved
options) to ``--out``. The scan chooses nothing that ships: it reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from facelivenet.edge_runtime.cli_common import add_detector_option, add_json_flag, add_log_options, add_threads_option
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import DATA_ENV, DETECTOR_ENV, EXIT_OK

from . import parity as parity_mod
from .errors import ExportError
from .wrappers import FLOAT_TAIL, IDENTITY_TAIL

log = logging.getLogger(__name__)

PROG = "python -m facelivenet.export.int8_scan"
METHODS = ("minmax", "entropy", "percentile")
MARGINS = (0.05, 0.1, 0.2)
NET = "net"  # the FaceLiveNet inside ExportModel: ONNX node scopes start with "net."


@dataclass(frozen=True)
class ScanConfig:
    """What one scan measures (saved as ``config.json`` next to the report)."""

    out: Path
    checkpoint: Path | None = None
    calib: Path | None = None
    expression_data: Path | None = None
    detector: Path | None = None
    cache_dir: Path | None = None
    methods: tuple[str, ...] = METHODS
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ExportError(f"unknown calibration method(s) {', '.join(unknown) or '(none)'}; "
                              f"valid: {', '.join(METHODS)}")
        if self.threads < 1:
            raise ExportError(f"--threads must be >= 1, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


IDENTITY_REGION = "identity tail"


def regions(net: Any) -> dict[str, tuple[str, ...]]:
    """Region label -> the ONNX scopes it covers: each top-level module (``net.<child>``) that holds a Conv
    or Linear, except the bottleneck, which is probed with its BatchNorm and the identity branch's pooling
    as one region, :data:`IDENTITY_REGION` (the scopes the export keeps float, :data:`.wrappers.IDENTITY_TAIL`)."""
    from torch import nn

    out: dict[str, tuple[str, ...]] = {}
    for name, child in net.named_children():
        scope = f"{NET}.{name}"
        if scope in IDENTITY_TAIL:
            out[IDENTITY_REGION] = IDENTITY_TAIL
        elif any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in child.modules()):
            out[scope] = (scope,)
    return out


def top_level(net: Any) -> list[str]:
    """ONNX scope names of every top-level module of the network."""
    return [f"{NET}.{name}" for name, _ in net.named_children()]


def margin_shares(logits: np.ndarray) -> dict[str, float]:
    """Share of faces whose top two logits differ by less than each of :data:`MARGINS`."""
    top2 = np.sort(np.asarray(logits, np.float64), axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    return {f"{m:g}": float((gap < m).mean()) for m in MARGINS}


class Prober:
    """Builds one int8 ONNX file from the fp32 graph and measures it against the torch reference."""

    def __init__(self, proto: Any, scopes: dict[str, list[str]], calib: np.ndarray, parity_x: np.ndarray,
                 ref: tuple[np.ndarray, np.ndarray], threads: int, work: Path):
        self.proto, self.scopes, self.calib, self.parity_x = proto, scopes, calib, parity_x
        self.ref, self.threads, self.work = ref, threads, work

    def _measure(self, proto: Any) -> dict[str, Any]:
        from . import onnx_export
        from .runners import runner_for

        path = onnx_export.save(proto, self.work / "probe.onnx")
        emb, logits = runner_for("onnx", path, self.threads)(self.parity_x)
        m = parity_mod.measure(*self.ref, emb, logits)
        rmse = float(np.sqrt(np.mean((logits.astype(np.float64) - self.ref[1]) ** 2)))
        return {"cosine_mean": m["cosine_mean"], "cosine_min": m["cosine_min"],
                "expression_top1_agreement": m["expression_top1_agreement"],
                "expression_top1_agreement_decisive": m["expression_top1_agreement_decisive"],
                "decisive_faces": m["decisive_faces"], "logit_rmse": rmse,
                "passes_int8_gate": not parity_mod.check("int8", m),
                "quantize_nodes": sum(n.op_type == "QuantizeLinear" for n in proto.graph.node)}

    def static(self, float_modules: Sequence[str], method: str = "minmax") -> dict[str, Any]:
        """Static int8 QDQ as the export builds it, with ``float_modules`` (and the normalisation tail) float."""
        from .quantize_onnx import quantize_int8
        from .static_int8 import StaticInt8Config

        cfg = StaticInt8Config()
        proto, _ = quantize_int8(self.proto, self.scopes, self.calib, [*FLOAT_TAIL, *float_modules], method,
                                 cfg.onnx_activations, reduce_range=cfg.onnx_reduce_range)
        return self._measure(proto)

    def weights_only(self) -> dict[str, Any]:
        """int8 weights, float activations: what the export falls back to."""
        from .quantize_onnx import quantize_weights_int8

        proto, _, _ = quantize_weights_int8(self.proto, self.scopes, list(FLOAT_TAIL))
        return self._measure(proto)


def scan_network(net: Any, prober: Prober, methods: Sequence[str],
                 step: Callable[[str], Any]) -> list[dict[str, Any]]:
    """The report's rows, one per probe (see the module docstring)."""
    rows: list[dict[str, Any]] = []

    def add(kind: str, region: str | None, method: str, measure: Callable[[], dict[str, Any]]) -> None:
        label = f"{kind}{f' {region}' if region else ''} ({method})"
        with step(label):
            rows.append({"probe": kind, "region": region, "method": method, **measure()})

    for method in methods:
        add("all int8", None, method, lambda m=method: prober.static([], m))
    everything = top_level(net)
    for region, scopes in regions(net).items():
        add("float only", region, "minmax", lambda s=scopes: prober.static(list(s)))
        add("int8 only", region, "minmax", lambda s=scopes: prober.static([x for x in everything if x not in s]))
    add("weights only", None, "-", prober.weights_only)
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table, with the margins the agreement gate is up against."""
    gate = report["gate"]
    lines = [f"# Static int8 scan: {report['checkpoint']['file']} (sha256 {report['checkpoint']['sha256'][:12]})", "",
             f"{report['calibration_faces']} calibration faces, {report['parity_faces']} held-out parity faces; "
             f"int8 gate: cosine mean >= {gate['cosine_mean']}, min >= {gate['cosine_min']}, "
             f"expression top-1 agreement >= {gate['top1_agreement']} on the decisive faces (torch top-2 margin "
             f">= {parity_mod.DECISIVE_MARGIN}; the faces under it are near ties that any rounding may flip).", "",
             "| probe | region | calibration | cos mean | cos min | top-1 agreement, all faces | decisive faces "
             "| logit RMSE | QDQ nodes | gate |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        decisive = r.get("expression_top1_agreement_decisive")
        decisive_text = "-" if decisive is None else f"{100 * decisive:.1f} % of {r.get('decisive_faces')}"
        lines.append(f"| {r['probe']} | {r['region'] or 'whole network'} | {r['method']} | {r['cosine_mean']:.5f} | "
                     f"{r['cosine_min']:.4f} | {100 * r['expression_top1_agreement']:.1f} % | {decisive_text} | "
                     f"{r['logit_rmse']:.4f} | {r['quantize_nodes']} | {'pass' if r['passes_int8_gate'] else 'miss'} |")
    shares = ", ".join(f"{100 * v:.1f} % under {k}" for k, v in report["top2_margin_shares"].items())
    lines += ["", f"Torch model's top-2 expression logit margin on the parity faces: {shares}.",
              "'float only R': every activation int8 except region R's; 'int8 only R': only region R's activations "
              "int8 (a region's boundary tensors are shared with its neighbours). Weights are GPTQ-rounded int8 "
              "in every row.", ""]
    return "\n".join(lines)


def run_scan(cfg: ScanConfig, progress_enabled: bool = True) -> dict[str, Any]:
    """Collect the faces, build and measure every probe, write the report folder; returns the report."""
    from .pipeline import ExportOptions, check_face_inputs
    from .source import load_source

    import torch

    start = time.perf_counter()
    opts = ExportOptions(out=cfg.out, checkpoint=cfg.checkpoint, calib=cfg.calib, expression_data=cfg.expression_data,
                         detector=cfg.detector, cache_dir=cfg.cache_dir, seed=cfg.seed, threads=cfg.threads)
    calib_dir = check_face_inputs(opts)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _scan(cfg, opts, calib_dir, load_source(cfg.checkpoint), start, progress_enabled)
    finally:  # a library call must not leave the caller's process with another thread count
        torch.set_num_threads(saved_threads)


def _scan(cfg: ScanConfig, opts: Any, calib_dir: Path, source: Any, start: float,
          progress_enabled: bool) -> dict[str, Any]:
    from .int8_source import Int8Sources
    from .onnx_export import export_fp32, simplify
    from .pipeline import gather_faces
    from .progress import Progress
    from .wrappers import ExportModel, torch_reference

    n_regions = len(regions(source.model))
    progress = Progress(4 + (cfg.expression_data is not None) + len(cfg.methods) + 2 * n_regions + 1,
                        enabled=progress_enabled)
    calib, parity_faces = gather_faces(opts, source, calib_dir, progress)
    pre = source.preprocess
    with progress.step("torch reference on the parity faces"):
        parity_x = parity_faces.tensor(pre, pre.layout)
        ref = torch_reference(source.model, parity_faces.tensor(pre, "NCHW"))
    sources = Int8Sources(source.model, calib.tensor(pre, "NCHW"), progress.step, progress.note)
    rounded, _ = sources.rounded()
    with progress.step("onnx fp32 graph of the GPTQ-rounded model"):
        proto, scopes = export_fp32(ExportModel(rounded, pre.layout), pre.input_size)
        proto, _ = simplify(proto)
    with tempfile.TemporaryDirectory(prefix="facelive-int8-scan-") as work:
        prober = Prober(proto, scopes, calib.tensor(pre, pre.layout), parity_x, ref, cfg.threads, Path(work))
        rows = scan_network(source.model, prober, cfg.methods, progress.step)
    report = {
        "checkpoint": {"file": source.path.name, "path": str(source.path), "sha256": source.sha256},
        "calibration_faces": len(calib), "parity_faces": len(parity_faces),
        "calibration_record": calib.record(), "parity_record": parity_faces.record(),
        "gate": parity_mod.gate_dict("int8"),
        "top2_margin_shares": margin_shares(ref[1]),
        "rows": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "int8_scan.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "int8_scan.md").write_text(markdown(report))
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    report["files"] = [str(out / n) for n in ("int8_scan.json", "int8_scan.md", "config.json")]
    return report


def build_parser() -> argparse.ArgumentParser:
    from .pipeline import default_expression_data

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                epilog="example: python -m facelivenet.export.int8_scan --threads 2 "
                                       "--out reports/int8_scan")
    p.add_argument("--checkpoint", type=Path, metavar="C", help="checkpoint (default: the shipped default model)")
    p.add_argument("--calib", type=Path, metavar="DIR", help=f"face images (default: ${DATA_ENV}/lfw/images)")
    p.add_argument("--expression-data", type=Path, metavar="DIR", default=default_expression_data(),
                   help=f"FER2013-style train/ and test/ (default: ${DATA_ENV}/fer2013 when present)")
    p.add_argument("--no-expression-data", action="store_true", help="calibrate and measure on --calib faces only")
    add_detector_option(p, f"${DETECTOR_ENV}", type=Path)
    p.add_argument("--methods", default=",".join(METHODS), metavar="LIST",
                   help=f"calibration methods for the whole-network rows (default {','.join(METHODS)})")
    add_threads_option(p, 1)
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="aligned-face cache")
    p.add_argument("--out", type=Path, default=Path("reports/int8_scan"), metavar="DIR",
                   help="report folder (default reports/int8_scan)")
    add_json_flag(p)
    add_log_options(p)
    return p


def _run(args: argparse.Namespace) -> tuple:
    """The scan; its report is the one JSON object on stdout (``--json``), else its markdown table."""
    cfg = ScanConfig(out=args.out, checkpoint=args.checkpoint, calib=args.calib,
                     expression_data=None if args.no_expression_data else args.expression_data,
                     detector=args.detector, cache_dir=args.cache_dir,
                     methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
                     threads=args.threads)
    report = run_scan(cfg, progress_enabled=not args.quiet)
    return EXIT_OK, report, markdown(report).rstrip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """The module CLI, on the shared convention (ARCHITECTURE.md, "Commands"); returns the exit code."""
    return run_command(PROG, build_parser(), argv, _run)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
