"""One small object per export format: how it converts the model and writes each precision's file.

The order of the steps and the gated builds are written once, in :class:`GatedFormat`
(ONNX and TFLite): the float file(s), then the static int8 file and the
weight-only int8 file, each gated by the exporter (:meth:`.pipeline._Exporter.gated`,
:meth:`.pipeline._Exporter.static`). A format says only how to convert a model
(:meth:`~GatedFormat.convert`) and how to write each file from what it converted.
Core ML is measured only on macOS, so it is built without the gated loop
(:class:`CoremlFormat`).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from facelivenet.edge_runtime.constants import FORMAT_TABLE, model_file_name

from . import parity as parity_mod
from .progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import _Exporter

ONNX_DOC = "FaceLiveNet: inputs 'input', outputs 'embedding', 'expression_logits'"


@contextlib.contextmanager
def noted(progress: Progress, label: str) -> Iterator[None]:
    """A slow sub-step inside a progress step: one note when it ends."""
    start = time.perf_counter()
    yield
    progress.note(f"{label}: done in {time.perf_counter() - start:.1f} s")


class GatedFormat:
    """A format whose every file is gated, and whose int8 file is rebuilt until it passes.

    Sources are what :meth:`convert` returns (an ONNX graph, a float TFLite file); ``key`` names the
    source (``fp32``, ``rounded``: the GPTQ-rounded model, ``fp16layers``: its fp16-sensitive variant).
    """

    fmt = ""
    converter = ""  # what converts, in the progress labels
    fp16_label = ""  # what the fp16 step does, in its progress label

    def __init__(self, ex: "_Exporter"):
        self.ex = ex
        self.opts = ex.opts
        self.pre = ex.pre
        self.progress = ex.progress
        self.layout = self.pre.layout

    # ------------------------------------------------------------------ what a format says

    def convert(self, model: Any, key: str) -> Any:
        raise NotImplementedError

    def fp32(self, src: Any) -> tuple[Path, dict[str, Any]]:
        raise NotImplementedError

    def fp16(self, src: Any) -> tuple[Path, dict[str, Any]]:
        raise NotImplementedError

    def int8(self, level: Any, model: Any, src: Any, fp16: list[str], calib: Any) -> tuple[Path, dict[str, Any]]:
        """The weight-only int8 file at ``level`` (``model``: its int8 source model, ``src`` converted)."""
        raise NotImplementedError

    def static(self, src: Any, path: Path, calib: Any) -> dict[str, Any]:
        """The static int8 file at ``path`` from the float source; its manifest extras."""
        raise NotImplementedError

    # ------------------------------------------------------------------ written once

    @classmethod
    def steps(cls, precisions: Sequence[str], static: bool) -> int:
        """The progress steps :meth:`run` takes: the float conversion and one per float file; the rounded
        model's conversion and the int8 file; with ``static``, the static file (and the float conversion
        when no float file is built)."""
        fp = len({"fp32", "fp16"} & set(precisions))
        int8 = "int8" in precisions
        static = static and FORMAT_TABLE[cls.fmt].runs_anywhere  # a static int8 file too
        return (fp > 0) + fp + 2 * int8 + (static * int8 if fp else 2 * static * int8)

    def converted(self, model: Any, what: str, key: str, step: bool = True) -> Any:
        label = f"{self.fmt} {what}: {self.converter}"
        with self.progress.step(label) if step else noted(self.progress, label):
            return self.convert(model, key)

    def run(self, precisions: Sequence[str]) -> None:
        ex, fmt, layout = self.ex, self.fmt, self.layout
        float_src = None
        if {"fp32", "fp16"} & set(precisions):
            float_src = self.converted(ex.source.model, "fp32", "fp32")
            if "fp32" in precisions:
                with self.progress.step(f"{fmt} fp32: parity"):
                    ex.gated(fmt, "fp32", layout, lambda _: self.fp32(float_src))
            if "fp16" in precisions:
                with self.progress.step(f"{fmt} fp16: {self.fp16_label}"):
                    ex.gated(fmt, "fp16", layout, lambda _: self.fp16(float_src))
        if "int8" not in precisions:
            return
        rounded, _ = ex.int8.rounded()
        sources = {id(rounded): self.converted(rounded, "int8 (GPTQ-rounded weights)", "rounded")}
        calib = ex.calib.tensor(self.pre, layout)

        def build(level: Any) -> tuple[Path, dict[str, Any]]:
            model, _, fp16 = ex.int8.source(level)
            if id(model) not in sources:  # one conversion per distinct int8 source model
                sources[id(model)] = self.converted(model, "int8 (fp16 sensitive layers)", "fp16layers", step=False)
            return self.int8(level, model, sources[id(model)], fp16, calib)

        if FORMAT_TABLE[self.fmt].runs_anywhere and self.opts.static_int8:
            if float_src is None:
                float_src = self.converted(ex.source.model, "fp32 (for static int8)", "fp32")
            with self.progress.step(f"{fmt} int8 static: quantise ({len(ex.calib)} calibration faces) + gates"):
                ex.static(fmt, layout, lambda path: self.static(float_src, path, calib))
        with self.progress.step(f"{fmt} int8: quantise ({len(ex.calib)} calibration faces) + parity"):
            ex.gated(fmt, "int8", layout, build)


class OnnxFormat(GatedFormat):
    """torch.onnx.export (dynamo), simplified; int8: GPTQ-rounded int8 weight initialisers, or static QDQ."""

    fmt = "onnx"
    converter = "torch.onnx.export (dynamo)"
    fp16_label = "convert + parity"

    def convert(self, model: Any, key: str) -> tuple[Any, dict[str, list[str]], str | None]:
        from . import onnx_export
        from .wrappers import ExportModel

        proto, scopes = onnx_export.export_fp32(ExportModel(model, self.layout), self.pre.input_size, self.opts.opset)
        simplifier = None
        if self.opts.simplify:
            proto, simplifier = onnx_export.simplify(proto)
        return proto, scopes, simplifier

    def write(self, proto: Any, precision: str, float_layers: list[str] | None = None,
              quantisation: str | None = None, path: Path | None = None) -> Path:
        from . import onnx_export

        onnx_export.set_metadata(proto, self.ex.fields("onnx", precision, self.layout, float_layers, quantisation),
                                 doc=ONNX_DOC)
        return onnx_export.save(proto, path or self.ex.writer.path(model_file_name("onnx", precision)))

    def info(self, simplifier: str | None) -> dict[str, Any]:
        return {"opset": self.opts.opset, "simplified_with": simplifier}

    def fp32(self, src: Any) -> tuple[Path, dict[str, Any]]:
        proto, _, simplifier = src
        return self.write(proto, "fp32"), self.info(simplifier)

    def fp16(self, src: Any) -> tuple[Path, dict[str, Any]]:
        from . import onnx_export

        proto, _, simplifier = src
        return self.write(onnx_export.to_fp16(proto), "fp16"), {**self.info(simplifier), "io": "float32"}

    def int8(self, level: Any, model: Any, src: Any, fp16: list[str], calib: Any) -> tuple[Path, dict[str, Any]]:
        from . import onnx_export, quantize_onnx

        fp32_r, scopes, simplifier = src
        float_modules = list(level.float_modules)
        proto, kept, off_grid = quantize_onnx.quantize_weights_int8(fp32_r, scopes, float_modules, fp16)
        quant = self.ex.int8_record(level, "int8 weight initializers, Cast + Mul per-channel scale "
                                    "(constant-folded by onnxruntime at load)", "float32 (not quantised)")
        quant["weights_off_grid_steps_max"] = off_grid
        onnx_export.compact_names(proto)
        kept_set = set(kept)
        layers = float_modules + fp16
        return self.write(proto, "int8", layers, level.name), {
            **self.info(simplifier), "quantisation": quant, "float_layers": layers,
            "float_op_types": sorted({n.op_type for n in fp32_r.graph.node if n.name in kept_set})}

    def static(self, src: Any, path: Path, calib: Any) -> dict[str, Any]:
        from . import onnx_export, static_int8

        cfg = self.ex.static_cfg
        fp32_f, scopes_f, simplifier_f = src
        proto, kept = static_int8.onnx_static(fp32_f, scopes_f, calib, cfg)
        onnx_export.compact_names(proto)
        quant = cfg.record("onnx", len(self.ex.calib))
        self.write(proto, "int8", list(cfg.float_modules), "static int8", path)
        kept_set = set(kept)
        return {**self.info(simplifier_f), "quantisation": quant, "float_layers": list(cfg.float_modules),
                "float_op_types": sorted({n.op_type for n in fp32_f.graph.node if n.name in kept_set})}


class TfliteFormat(GatedFormat):
    """litert-torch conversion (batch 1, ``--tflite-layout``); ai-edge-quantizer for fp16 and int8."""

    fmt = "tflite"
    fp16_label = "weights + parity"

    def __init__(self, ex: "_Exporter"):
        super().__init__(ex)
        from . import tflite_export

        self.layout = self.opts.tflite_layout or self.pre.layout
        self.converter = f"litert-torch convert ({self.layout})"
        self.base = {"layout": self.layout, "batch": 1, "signature": tflite_export.SIGNATURE}

    def convert(self, model: Any, key: str) -> Path:
        from . import tflite_export
        from .wrappers import ExportModel

        return tflite_export.convert_fp32(ExportModel(model, self.layout, as_dict=True), self.pre.input_size,
                                          self.ex.work / f"{key}.tflite", verbose=self.opts.verbose)

    def place(self, src: Path, precision: str, float_layers: list[str] | None = None,
              quantisation: str | None = None) -> Path:
        """``src`` as the bundle's file (copied in when it is a work file), with the key fields embedded."""
        from . import tflite_export

        writer = self.ex.writer
        dst = src if src.parent == writer.tmp else writer.path(model_file_name("tflite", precision))
        if src != dst:
            dst.write_bytes(src.read_bytes())
        return tflite_export.finalize(dst, self.ex.fields("tflite", precision, self.layout, float_layers,
                                                          quantisation))

    def fp32(self, src: Any) -> tuple[Path, dict[str, Any]]:
        return self.place(src, "fp32"), dict(self.base)

    def fp16(self, src: Any) -> tuple[Path, dict[str, Any]]:
        from . import tflite_export

        dst = self.ex.writer.path(model_file_name("tflite", "fp16"))
        tflite_export.quantize_fp16(src, dst)
        return self.place(dst, "fp16"), {**self.base, "quantisation": "fp16 weights (float casting), float compute"}

    def int8(self, level: Any, model: Any, src: Any, fp16: list[str], calib: Any) -> tuple[Path, dict[str, Any]]:
        from . import tflite_export

        ex = self.ex
        dst = ex.writer.path(model_file_name("tflite", "int8"))
        float_modules = list(level.float_modules)
        weights = ex.int8.fp16_weights(model) if fp16 else []
        regexes = tflite_export.quantize_int8(src, dst, calib, float_modules, level.activations, weights)
        quant = ex.int8_record(level, "ai-edge-quantizer weight_only_wi8_afp32 (explicit DEQUANTIZE)"
                               + (", fp16 float casting for the sensitive layers" if fp16 else ""),
                               "float32 (not quantised)")
        layers = float_modules + fp16
        return self.place(dst, "int8", layers, level.name), {
            **self.base, "quantisation": quant, "float_layers": layers, "float_scopes": regexes}

    def static(self, src: Any, path: Path, calib: Any) -> dict[str, Any]:
        from . import static_int8

        cfg = self.ex.static_cfg
        regexes = static_int8.tflite_static(src, path, calib, cfg)
        self.place(path, "int8", list(cfg.float_modules), "static int8")
        return {**self.base, "quantisation": cfg.record("tflite", len(self.ex.calib)),
                "float_layers": list(cfg.float_modules), "float_scopes": regexes}


class CoremlFormat:
    """coremltools mlprogram per precision (int8: the fp16 model's weights quantised); gated only where Core ML
    predicts (macOS), elsewhere its spec is checked."""

    fmt = "coreml"

    @classmethod
    def steps(cls, precisions: Sequence[str], static: bool) -> int:
        return len(precisions)  # one per file

    def __init__(self, ex: "_Exporter"):
        self.ex = ex
        self.layout = ex.pre.layout

    def run(self, precisions: Sequence[str]) -> None:
        from . import coreml_export
        from .wrappers import ExportModel

        ex, layout, pre = self.ex, self.layout, self.ex.pre
        model = ExportModel(ex.source.model, layout)
        fp16 = None
        for precision in precisions:
            with ex.progress.step(f"coreml {precision}: coremltools mlprogram"):
                if precision == "int8" and fp16 is not None:
                    ml = coreml_export.quantize_weights_int8(fp16)
                else:
                    ml = coreml_export.convert(model, pre.input_size, precision)
                    if precision == "fp16":
                        fp16 = ml
                coreml_export.set_metadata(ml, ex.fields("coreml", precision, layout))
                path = coreml_export.save(ml, ex.writer.path(model_file_name("coreml", precision)))
                spec = coreml_export.check_spec(path, pre.input_size, ex.source.embedding_dim, precision, layout)
                extra = {"spec_check": "passed", "spec": spec,
                         "quantisation": "int8 weights (linear symmetric, per channel), fp16 compute"
                         if precision == "int8" else f"{precision} compute"}
                if coreml_export.can_predict():
                    result = ex.measure("coreml", precision, path, layout)
                    result.update(extra)
                else:
                    result = {"measured": False, "passed": None,
                              "reason": "not measured: CoreML prediction needs macOS",
                              "gate": parity_mod.gate_dict(precision), **extra}
                ex.finish("coreml", precision, layout, result)


# One object per format of ``constants.FORMATS``.
FORMAT_BUILDS: dict[str, type] = {cls.fmt: cls for cls in (OnnxFormat, TfliteFormat, CoremlFormat)}
