"""Export errors: each message names the problem and the fix, on one line."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from facelivenet.edge_runtime.constants import FORMAT_TABLE, FORMATS
from facelivenet.edge_runtime.errors import FaceLiveError

EXTRA_HINT = 'pip install "facelivenet[export]"'


class ExportError(FaceLiveError):
    """Bad export input (checkpoint, calibration folder, format...) or a failed conversion."""


class ConverterMissingError(ExportError):
    """A converter package (onnx, litert-torch, coremltools...) is not installed."""


class ParityGateError(ExportError):
    """An exported file does not match the torch model closely enough (or is too large)."""

    def __init__(self, message: str, table: str = ""):
        super().__init__(message)
        self.table = table


# Per format (``constants.FORMATS``), as (module, distribution): the converter packages, then the runtime that
# runs the files for the parity gates (:mod:`.runners`); what each format needs is both.
CONVERTERS: dict[str, tuple[tuple[str, str], ...]] = {f: spec.converters for f, spec in FORMAT_TABLE.items()}
RUNTIMES: dict[str, tuple[str, str]] = {f: spec.runtime for f, spec in FORMAT_TABLE.items()}
REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    fmt: tuple(dict.fromkeys((*CONVERTERS[fmt], RUNTIMES[fmt]))) for fmt in FORMATS
}


def require(module: str, distribution: str | None = None, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise ConverterMissingError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" ({purpose})" if purpose else ""
        raise ConverterMissingError(
            f"{distribution or module} is not installed{what}: {EXTRA_HINT} ({exc})"
        ) from exc


def check_format_available(fmt: str) -> None:
    """Fail early, before any work, when a requested format's converter is missing."""
    for module, dist in REQUIREMENTS[fmt]:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise ConverterMissingError(
                f"the {fmt} converter needs {dist}, which is not installed: {EXTRA_HINT}"
            )

