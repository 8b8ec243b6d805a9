"""MkDocs hooks: the documentation site reads the repository it documents, without copies.

- The API reference: mkdocstrings (griffe) finds ``facelivenet.edge_runtime`` by path, but the
  distribution maps each code folder onto a subpackage (``pyproject.toml``, ``package-dir``), so
  there is no ``facelivenet/`` folder to find. A temporary folder holding ``facelivenet/<sub>``
  links to the code folders is put on the python handler's ``paths``.
- Pictures: the PNG reports under ``benchmarks/results/``, ``training/default_model/`` and the
  demo's screenshot are served as ``repo/<their repository path>`` (pages link them there), so
  the site shows the very files the commands wrote.
- ``architecture.md`` is ARCHITECTURE.md, as it is in the repository; a link of it into the repository
  (``[x](README.md)``) becomes its text and the path as code, since the site holds no such page.
- The docstrings are reStructuredText-flavoured (``:meth:`name```); mkdocstrings renders them as Markdown,
  so the role prefixes left in front of the code spans are dropped.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import tomllib
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PICTURES = ("benchmarks/results", "training/default_model", "demo_kivy")
_TREE: list[Path] = []
_REPO_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?!https?:|#|mailto:)([^)\s]+)\)")
_ROLE = re.compile(r":(?:meth|class|func|mod|attr|data|exc|obj):(?=<code>)")


def package_tree(root: Path = ROOT) -> Path:
    """A temporary folder with ``facelivenet/<sub>`` linked to each code folder of the distribution."""
    package_dir = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    tree = Path(tempfile.mkdtemp(prefix="facelivenet-docs-"))
    (tree / "facelivenet").mkdir()
    for name, folder in package_dir.items():
        parts = name.split(".")
        if len(parts) == 2 and parts[0] == "facelivenet":
            (tree / "facelivenet" / parts[1]).symlink_to(root / folder, target_is_directory=True)
    return tree


@event_priority(100)  # before mkdocstrings makes its python handler
def on_config(config, **_):
    tree = package_tree()
    _TREE.append(tree)
    python = config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})
    python["paths"] = [*python.get("paths", []), str(tree)]
    return config


def on_files(files: Files, config, **_) -> Files:
    for folder in PICTURES:
        for picture in sorted((ROOT / folder).rglob("*.png")):
            uri = "repo/" + picture.relative_to(ROOT).as_posix()
            files.append(File.generated(config, uri, abs_src_path=str(picture)))
    architecture = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    architecture = _REPO_LINK.sub(lambda m: f"{m.group(1)} (`{m.group(2)}`)", architecture)
    files.append(File.generated(config, "architecture.md", content=architecture))
    return files


def on_page_content(html: str, **_) -> str:
    return _ROLE.sub("", html)


def on_shutdown(**_):
    while _TREE:
        shutil.rmtree(_TREE.pop(), ignore_errors=True)
