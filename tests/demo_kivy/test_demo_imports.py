"""The demo depends on facelivenet.edge_runtime only (ARCHITECTURE.md, "Layers"), and in server mode on the
server's stdlib client: it imports and runs its Kivy-free parts with torch blocked, and never loads training,
export, benchmarks or server-side code."""

from __future__ import annotations

import subprocess
import sys

from .conftest import demo_env, needs_kivy

SCRIPT = r"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import importlib, pkgutil
import facelivenet.demo_kivy as demo
names = sorted(m.name for m in pkgutil.iter_modules(demo.__path__, demo.__name__ + "."))
assert {"facelivenet.demo_kivy.app", "facelivenet.demo_kivy.ui", "facelivenet.demo_kivy.headless"} <= set(names), names
for name in names:
    if not name.endswith("__main__"):
        importlib.import_module(name)
from facelivenet.demo_kivy.app import main
assert main(["--headless", "--bundle", sys.argv[1], "--source", "x"]) == 1  # a one-line error, no crash
loaded = sorted(m for m in sys.modules if m.startswith("facelivenet.") and not m.startswith(
    ("facelivenet.edge_runtime", "facelivenet.demo_kivy")) and m not in ("facelivenet.server",
                                                                           "facelivenet.server.client"))
assert not loaded, loaded
print("ok", len(names))
"""

pytestmark = needs_kivy


def test_demo_imports_only_the_edge_runtime_and_no_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "no_bundle")], capture_output=True, text=True,
                          timeout=120, env=demo_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok"), proc.stdout
