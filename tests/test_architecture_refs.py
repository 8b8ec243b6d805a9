"""Every citation of a section of ARCHITECTURE.md (``ARCHITECTURE.md, "Metrics"``) names a section that
exists, and no source file still cites the DESIGN.md that is not in the repository (issue 18, point 5)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r'ARCHITECTURE\.md,?\s+"([^"]+)"')
SEARCHED = ("edge_runtime", "training", "export", "benchmarks", "demo_kivy", ".ci", "tests", "docs")
SUFFIXES = {".py", ".md", ".toml", ".yaml"}


def _files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "ARCHITECTURE.md"]
    for folder in SEARCHED:
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in SUFFIXES and "default_model" not in p.parts
                  and "default_bundle" not in p.parts and p.is_file()]
    return files


def test_every_cited_section_exists():
    sections = set(re.findall(r"^#+\s+(.+?)\s*$", (ROOT / "ARCHITECTURE.md").read_text(), re.M))
    cited = {(str(p.relative_to(ROOT)), name) for p in _files() for name in CITATION.findall(p.read_text())}
    assert cited, "no citation found: has the citation form changed?"
    missing = sorted((f, name) for f, name in cited if name not in sections)
    assert not missing, f"sections cited but absent from ARCHITECTURE.md: {missing}"


def test_no_source_cites_design_md():
    stale = [str(p.relative_to(ROOT)) for p in _files() if p.parts[len(ROOT.parts)] != "tests"
             and "DESIGN.md" in p.read_text()]
    assert not stale, stale
