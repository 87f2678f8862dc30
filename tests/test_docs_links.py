"""README.md and docs/*.md: every relative link resolves (file and #anchor), every docs page is linked
from the README, every `make X` they name is a Makefile target."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pipeline_copy import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")


def _prose(path: Path) -> list[str]:
    """The page's lines outside code fences."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    slugs = set()
    for line in _prose(path):
        if match := re.match(r"#{1,6}\s+(.*)", line):
            slugs.add(re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-"))
    return slugs


def _links(path: Path) -> list[str]:
    return [target for line in _prose(path) for target in LINK.findall(line)]


def test_the_pages_exist_and_link_somewhere():
    assert len(PAGES) > 1 and _links(REPO / "README.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in _links(REPO / "README.md")}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_every_make_command_the_pages_name_is_a_makefile_target():
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    named = set()
    for page in PAGES:
        text = page.read_text()
        named |= set(re.findall(r"`(?:time )?make ([a-z][\w-]*)", text))
        named |= set(re.findall(r"^\s*(?:time )?make ([a-z][\w-]*)", text, re.M))
    assert {"run", "test", "run-synthetic"} <= named
    assert sorted(named - targets) == []
