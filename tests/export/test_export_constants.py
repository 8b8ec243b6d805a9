"""The export takes its shared values from edge_runtime.constants (formats, precisions, file names, exit codes,
environment variables, parity gates), generates its help from them, and cites ARCHITECTURE.md, not the
DESIGN.md that is not in the repository (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

from facelivenet.edge_runtime import constants

ROOT = Path(__file__).resolve().parents[2]
CITATION = re.compile(r'ARCHITECTURE\.md,?\s+"([^"]+)"')


def _sources() -> list[Path]:
    return sorted((ROOT / "export").rglob("*.py")) + [ROOT / "benchmarks" / "accuracy.py"]


def test_export_cites_architecture_sections_that_exist():
    sections = set(re.findall(r"^#+\s+(.+?)\s*$", (ROOT / "ARCHITECTURE.md").read_text(), re.M))
    stale = [str(p.relative_to(ROOT)) for p in _sources() if "DESIGN.md" in p.read_text()]
    assert not stale, f"DESIGN.md is not in the repository; cite ARCHITECTURE.md instead: {stale}"
    cited = {(str(p.relative_to(ROOT)), name) for p in _sources() for name in CITATION.findall(p.read_text())}
    assert cited
    missing = sorted((f, name) for f, name in cited if name not in sections)
    assert not missing, f"sections cited but absent from ARCHITECTURE.md: {missing}"


def test_parity_gates_are_the_runtime_table():
    from facelivenet.export import parity

    assert parity.GATES is constants.PARITY_GATES
    assert parity.gate_dict("int8") == {"cosine_mean": 0.995, "cosine_min": 0.98, "top1_agreement": 0.99}
    assert parity.gate_dict("fp32") == {"cosine_mean": constants.PARITY_GATES["fp32"].cosine_mean}
    assert parity.check("fp16", {"cosine_mean": 0.5, "cosine_min": 0.5, "expression_top1_agreement": 1.0}) == \
        ["cosine mean 0.500000 < 0.999"]


def test_every_format_table_covers_the_formats():
    from facelivenet.export.errors import CONVERTERS, REQUIREMENTS, RUNTIMES
    from facelivenet.export.formats import FORMAT_BUILDS
    from facelivenet.export.runners import BACKENDS, RUNNERS

    for table in (CONVERTERS, REQUIREMENTS, RUNTIMES, FORMAT_BUILDS, BACKENDS, RUNNERS):
        assert tuple(table) == constants.FORMATS
    assert all(FORMAT_BUILDS[f].fmt == f for f in constants.FORMATS)
    assert REQUIREMENTS["onnx"] == (("onnx", "onnx"), ("onnxscript", "onnxscript"), ("onnxruntime", "onnxruntime"))
    assert REQUIREMENTS["coreml"] == (("coremltools", "coremltools"),)


def test_every_per_format_fact_comes_from_the_one_table():
    """constants.FORMAT_TABLE is the only place a format's facts are written (issue 27, point 4)."""
    from facelivenet.benchmarks.machine import ENGINE_OF_FORMAT
    from facelivenet.edge_runtime.backends import BACKEND_CLASSES
    from facelivenet.export.errors import CONVERTERS, RUNTIMES
    from facelivenet.export.pipeline import CPU_CHECKED, STATIC_FORMATS, TIMED_FORMATS
    from facelivenet.export.runners import BACKENDS

    for fmt, spec in constants.FORMAT_TABLE.items():
        assert BACKEND_CLASSES[fmt].__name__ == spec.backend_class and BACKENDS[fmt][0] is BACKEND_CLASSES[fmt]
        assert CONVERTERS[fmt] == spec.converters and RUNTIMES[fmt] == BACKENDS[fmt][1:] == spec.runtime
        assert ENGINE_OF_FORMAT.get(fmt) == spec.engine
        assert (fmt in STATIC_FORMATS) == (fmt in TIMED_FORMATS) == (fmt in CPU_CHECKED) == spec.runs_anywhere


def test_help_is_generated_from_the_constants(capsys):
    from facelivenet.edge_runtime import cli_runner  # facelive-export's failure path is the shared runner's
    from facelivenet.export import cli

    assert (cli_runner.EXIT_OK, cli_runner.EXIT_FAILURE, cli_runner.EXIT_USAGE, cli_runner.EXIT_INTERNAL,
            cli_runner.EXIT_INTERRUPTED) == \
        (constants.EXIT_OK, constants.EXIT_FAILURE, constants.EXIT_USAGE, constants.EXIT_INTERNAL,
         constants.EXIT_INTERRUPTED)
    text = cli.build_parser().format_help()
    for precision, gate in constants.PARITY_GATES.items():
        assert f"{precision:<5} {gate.describe()}" in text
    assert f"${constants.DATA_ENV}" in text and f"${constants.DETECTOR_ENV}" in text
    assert f"${constants.CACHE_ENV}" in text
    assert ", ".join(constants.FORMATS) in text and ", ".join(constants.PRECISIONS) in text
