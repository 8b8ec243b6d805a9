"""MkDocs hooks: the documentation site reads the repository it documents, without copies.

- The API reference: mkdocstrings (griffe) finds ``facelivenet.edge_runtime`` by path, but the
  distribution maps each code folder onto a subpackage (``pyproject.toml``, ``package-dir``), so
  there is no ``facelivenet/`` folder to find. A temporary folder holding ``facelivenet/<sub>``
  links to the code folders is put on the python handler's ``paths``.
- Pictures: the PNG reports under ``benchmarks/results/``, ``training/default_model/`` and the
  demo's screenshot are served as ``repo/<their repository path>`` (pages link them there), so
  the site shows the very files the commands wrote.
- A few Markdown files of the repository are pages as they are (``PAGES_FROM_REPO``: ARCHITECTURE.md, the
  demo's README and ANDROID.md). Their links are re-pointed: to each other, to the pictures above, and
  any other link into the repository becomes its text and the path as code (the site holds no such page).
- The docstrings are reStructuredText-flavoured (``:meth:`name```); mkdocstrings renders them as Markdown,
  so the role prefixes left in front of the code spans are dropped.
"""

from __future__ import annotations

import posixpath
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
PAGES_FROM_REPO = {"architecture.md": "ARCHITECTURE.md", "demo/app.md": "demo_kivy/README.md",
                   "demo/android.md": "demo_kivy/ANDROID.md"}
_REPO_LINK = re.compile(r"(!?)\[([^\]]+)\]\((?!https?:|#|mailto:)([^)\s]+)\)")
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
    for page, source in PAGES_FROM_REPO.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=relink(text, source, page)))
    return files


def relink(text: str, source: str, page: str) -> str:
    """The links of the repository file ``source``, re-pointed for the site's page ``page``."""
    pages = {repo: uri for uri, repo in PAGES_FROM_REPO.items()}
    here = posixpath.dirname(page) or "."

    def link(match: re.Match) -> str:
        picture, label, target = match.groups()
        path, _, anchor = target.partition("#")
        repo = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if picture and repo.endswith(".png") and repo.startswith(PICTURES) and (ROOT / repo).is_file():
            return f"![{label}]({posixpath.relpath('repo/' + repo, here)})"
        if repo in pages:
            return f"[{label}]({posixpath.relpath(pages[repo], here)}{'#' + anchor if anchor else ''})"
        return f"{label} (`{repo}`)"

    return _REPO_LINK.sub(link, text)


def on_page_content(html: str, **_) -> str:
    return _ROLE.sub("", html)


def on_shutdown(**_):
    while _TREE:
        shutil.rmtree(_TREE.pop(), ignore_errors=True)
