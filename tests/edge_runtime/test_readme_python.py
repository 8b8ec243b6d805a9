"""The README's "Use it from Python" example runs as written (the code is read from README.md, so the two
cannot drift): enroll from JAFFE images, a session on a folder of frames, a decision. The documentation's
Python API page shows the same block (docs/runtime/python.md; checked here too)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest

from facelivenet.edge_runtime import Decision

from .frames import scripted

README = Path(__file__).resolve().parents[2] / "README.md"
DOCS_PAGE = README.parent / "docs" / "runtime" / "python.md"
GENUINE = ["KL.NE2.156"] * 4 + ["KL.HA2.159"] * 4 + ["KL.NE2.156"] * 4 + ["KL.SU3.166"] * 4


def readme_example() -> str:
    """The first python block of the README's "Use it from Python" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md: no python block under 'Use it from Python'"
    return match.group(1)


def test_the_docs_show_the_same_example():
    match = re.search(r"```python\n(.*?)```", DOCS_PAGE.read_text(encoding="utf-8"), re.S)
    assert match, "docs/runtime/python.md: no python block"
    assert match.group(1) == readme_example()


def test_the_example_is_short():
    assert len(readme_example().strip().splitlines()) <= 12


def test_the_readme_example_enrolls_authenticates_and_decides(data_root, tmp_path, monkeypatch, capsys):
    jaffe = data_root / "jaffe"
    if not (jaffe / "KL.NE1.155.tiff").is_file():
        pytest.skip("JAFFE is not in the data folder")
    (tmp_path / "jaffe").symlink_to(jaffe)
    (tmp_path / "frames").mkdir()
    for f in scripted([jaffe / f"{n}.tiff" for n in GENUINE]):  # the person doing neutral, happy, neutral, surprise
        cv2.imwrite(str(tmp_path / "frames" / f"{f.index:03d}.png"), f.image)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert namespace["result"].decision == Decision.ACCEPT, out
    assert namespace["enrolled"].images_used == 2
    assert "accept []" in out and "welcome KL: VerifyResult(" in out
    assert (tmp_path / "users.db").is_file()
