"""Progress lines for the slow steps (on stderr) and the summary table at the end."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, TextIO


log = logging.getLogger(__name__)


class Progress:
    """``[3/11] tflite int8: converting ... 12 s`` lines on stderr; a live timer on a terminal.

    With ``capture`` (the default) whatever the converters print inside a step
    (progress bars, "Model name: ..." banners) is kept out of the terminal; it
    is logged at debug level when the step fails.
    """

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None, capture: bool = True):
        self.total = total
        self.enabled = enabled
        self.stream: TextIO = stream or sys.stderr  # bound now: steps redirect sys.stderr
        self.capture = capture
        self.index = 0

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text)
            self.stream.flush()

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.index += 1
        prefix = f"[{self.index}/{self.total}] {label}"
        start = time.perf_counter()
        live = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        stop = threading.Event()
        ticker = None
        if live:
            def tick() -> None:
                while not stop.wait(1.0):
                    self._write(f"\r{prefix} ... {time.perf_counter() - start:4.0f} s")

            self._write(f"{prefix} ...")
            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        else:
            self._write(f"{prefix} ...\n")
        ok = False
        buf = io.StringIO()
        try:
            with contextlib.ExitStack() as stack:
                if self.capture:
                    stack.enter_context(contextlib.redirect_stdout(buf))
                    stack.enter_context(contextlib.redirect_stderr(buf))
                yield
            ok = True
        finally:
            if not ok and buf.getvalue():
                log.debug("output of the failed step %r:\n%s", label, buf.getvalue()[-4000:])
            stop.set()
            if ticker is not None:
                ticker.join()
            elapsed = time.perf_counter() - start
            end = "done" if ok else "FAILED"
            lead = "\r" if live else ""
            self._write(f"{lead}{prefix}: {end} in {elapsed:.1f} s\n")

    def note(self, text: str) -> None:
        self._write(f"      {text}\n")


def human_size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


TASK_COLUMNS = (("lfw_accuracy", "LFW acc"), ("lfw_tar_at_far_1e-3", "LFW TAR"), ("fer2013_accuracy", "FER acc"),
                ("jaffe_acc_g", "JAFFE Acc_g"))


def summary_table(rows: list[dict[str, Any]]) -> str:
    """One line per exported file: size, parity numbers, task deltas in points [95 % CI], gate."""
    from .task_gates import summary_cells

    header = ("file", "size", "cos mean", "cos min", "top-1 all", "top-1 decisive",
              *(f"d {name}" for _, name in TASK_COLUMNS), "gate", "int8 level / float layers")
    lines = []
    for r in rows:
        p = r.get("parity", {})
        if p.get("measured", True) and "cosine_mean" in p:
            cos_mean, cos_min = f"{p['cosine_mean']:.6f}", f"{p['cosine_min']:.6f}"
            top1 = f"{100 * p['expression_top1_agreement']:.1f}%"
            decisive = (f"{100 * p['expression_top1_agreement_decisive']:.1f}% (>= {p['decisive_margin']:g})"
                        if "expression_top1_agreement_decisive" in p else "-")
        else:
            cos_mean = cos_min = top1 = decisive = "-"
        cells = summary_cells(p.get("task_gates"))
        tasks = [cells[key] for key, _ in TASK_COLUMNS]
        if p.get("passed") is True:
            gate = "pass"
        elif p.get("passed") is False:
            gate = "FAIL: " + "; ".join(p.get("failures", []))
        else:
            gate = p.get("reason", "not measured")
        floats = ", ".join(p.get("float_layers", []))
        level = f"{p['int8_level']}; float: {floats or '-'}" if p.get("int8_level") else floats or "-"
        lines.append((r["path"], human_size(r["size_bytes"]), cos_mean, cos_min, top1, decisive, *tasks, gate, level))
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header) - 2)]
    out = []
    for row in [header, *lines]:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells + [str(row[-2]), str(row[-1])]))
    return "\n".join(out)
