"""Every command of the getting-started page runs (issue 27): the `make` lines as a dry run (`make -n`: the
target exists and resolves), every other line as written, in a scratch folder, on $FACELIVE_DATA's images;
a command with --json prints one JSON object."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "getting-started.md"


def commands() -> list[str]:
    """The page's shell commands, in order: every line of its ```bash blocks, continuations joined."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", command).strip()  # a trailing comment (never inside quotes here)
            if command and not command.startswith("#"):
                found.append(command)
    return found


def test_the_page_shows_commands():
    shown = commands()
    assert shown[:2] == ["make run", "make test"], shown
    assert any(c.startswith("facelive verify") for c in shown) and any(c.startswith("facelive inspect") for c in shown)


def test_every_make_line_names_a_target():
    for command in (c for c in commands() if c.startswith("make ")):
        done = subprocess.run(["make", "-n", *command.split()[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}: {done.stderr}"


def test_every_other_command_runs_as_written(data_root, detector_path, tmp_path):
    for image in ("lfw/images/George_W_Bush/George_W_Bush_0001.jpg", "jaffe/KL.NE1.155.tiff"):
        if not (data_root / image).is_file():
            pytest.skip(f"{image} is not in the data folder")
    env = {**os.environ, "FACELIVE_DATA": str(data_root), "FACELIVE_DETECTOR": str(detector_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    ran = []
    for command in (c for c in commands() if not c.startswith("make ")):
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        if "--json" in command.split():
            json.loads(done.stdout)
        ran.append((command, done.stdout))
    assert ran
    verified = [json.loads(out) for c, out in ran if c.startswith("facelive verify")]
    assert [v["match"] for v in verified] == [True, False], "the page says: the same person matches, two do not"
    assert (tmp_path / "users.db").is_file()
