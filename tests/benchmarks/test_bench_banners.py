"""The main job's console filter: known third-party banners dropped, every other line kept (issue 16)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import logging, os, sys
from facelivenet.benchmarks.banners import filtered_native_stderr, quiet_loggers
with filtered_native_stderr():
    quiet_loggers()
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1796197400.563366   11051 port.cc:153] oneDNN custom operations are on. ...\\n")
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    os.write(2, b"a native line of ours\\n")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("torchao").warning("Failed to load _C_mxfp8.so")
    logging.getLogger("facelivenet.x").warning("a warning of ours")
    subprocess_line = __import__("subprocess").run([sys.executable, "-c", "import os; os.write(2, b'INFO: Created "
        "TensorFlow Lite XNNPACK delegate for CPU.\\\\nchild line\\\\n')"])
    print("stdout untouched")
print("after", file=sys.stderr)
"""


def test_known_banners_are_dropped_and_everything_else_kept():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "stdout untouched\n"
    assert proc.stderr.splitlines() == ["a native line of ours", "WARNING:facelivenet.x:a warning of ours",
                                        "child line", "after"]
