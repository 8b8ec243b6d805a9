"""Known third-party banners kept off the main job's console (``make run``): notices about the libraries,
never about our results.

- Python loggers of libraries that announce themselves at import (torchao's CUDA-only
  kernels on a CPU machine, coremltools' untested torch version and macOS-only
  proxies, torch's exporter skipping torchvision ops and pytree deprecations):
  errors only;
- native lines written straight to file descriptor 2 by C++ code (absl's pre-init
  notice and TensorFlow's oneDNN notice when the TFLite converter loads, LiteRT's
  XNNPACK delegate notice): a pipe on fd 2 forwards every other line unchanged.

Every other warning and error still reaches the console.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from typing import Iterator

QUIET_LOGGERS = ("torchao", "coremltools", "torch.utils._pytree", "torch.onnx._internal.exporter._registration")
NATIVE_BANNERS = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)")
PY_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)


def quiet_loggers() -> None:
    """Errors only from the libraries' import-time notices; known deprecation chatter of theirs ignored."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in PY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextlib.contextmanager
def filtered_native_stderr(pattern: re.Pattern[str] = NATIVE_BANNERS) -> Iterator[None]:
    """Route fd 2 (this process and its children) through a pipe that drops lines matching ``pattern``."""
    sys.stderr.flush()
    saved = os.dup(2)
    out_fd = os.dup(saved)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def forward() -> None:
        with os.fdopen(read_fd, "rb") as src, os.fdopen(out_fd, "wb", buffering=0) as dst:
            for line in src:
                if not pattern.match(line.decode("utf-8", "replace")):
                    dst.write(line)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end held by fd 2: the thread drains and ends
        os.close(saved)
        thread.join(timeout=5)
