"""The documentation site (docs/, mkdocs.yml; issue 27): it builds with --strict (a broken link, anchor or
page left out of the nav fails), every page is in the nav, and the README stays a page a newcomer reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = {"architecture.md", "demo/app.md", "demo/android.md"}  # docs/_hooks/repository.py, PAGES_FROM_REPO


def nav_pages(nav) -> list[str]:
    """Every page the nav of mkdocs.yml names, in order."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def docs_pages() -> set[str]:
    return {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_hooks" not in p.parts}


def config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    listed = nav_pages(config()["nav"])
    assert len(listed) == len(set(listed)), "a page is listed twice in the nav"
    pages = docs_pages()
    assert not pages - set(listed), f"pages no nav entry reaches: {sorted(pages - set(listed))}"
    assert not set(listed) - pages - GENERATED, f"nav entries without a page: {sorted(set(listed) - pages - GENERATED)}"


def test_the_build_is_strict_about_links_anchors_and_the_nav():
    cfg = config()
    assert cfg["strict"] is True
    validation = cfg["validation"]
    assert validation["nav"]["omitted_files"] == "warn"  # warn + strict: a page left out of the nav fails
    assert validation["links"]["not_found"] == "warn" and validation["links"]["anchors"] == "warn"


def test_no_page_uses_raw_html_pictures():
    """mkdocs checks Markdown links and pictures, not the src of an <img> tag: pictures are Markdown."""
    raw = [page for page in docs_pages() if "<img" in (DOCS / page).read_text(encoding="utf-8")]
    assert not raw, raw


def test_the_site_builds_strict(tmp_path):
    """`mkdocs build --strict` (what `make docs` runs): broken links, anchors, API references fail it."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert not re.search(r"^(WARNING|ERROR)", done.stderr, re.M), done.stderr[-4000:]
    for page in docs_pages() | GENERATED:
        html = site / (page[: -len(".md")] + "/index.html").replace("index/index.html", "index.html")
        assert html.is_file(), f"{page} was not rendered ({html})"
    api = (site / "runtime" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("api.Authenticator", "api.Authenticator.enroll", "options.RuntimeOptions", "options.SessionSettings",
                 "session.SessionResult", "verification.VerifyResult", "reasons.Decision"):
        assert f'id="facelivenet.edge_runtime.{name}"' in api, f"the API reference lacks {name}"
    assert (site / "repo" / "benchmarks" / "results" / "latency.png").is_file()
    assert 'src="../../repo/demo_kivy/screenshot_auth.png"' in (site / "demo" / "app" / "index.html").read_text()


def test_the_readme_is_short_and_points_at_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    head = readme.split("\n## ", 1)[0]
    assert "make run" in head and "make test" in head, "the two commands lead the README"
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), f"README links a missing page: {link}"
