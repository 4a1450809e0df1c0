"""README.md and docs/: every relative link and image resolves inside the repository, every
anchor names a heading of its page (as GitHub makes its ids), and the README stays a front
door that starts with the two commands a newcomer runs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The ids of a page's headings; a repeated one gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    ids = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            ids.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return ids


def links(page: Path) -> list[str]:
    return [
        m.group(1) for line in _prose(page.read_text(encoding="utf-8")) for m in LINK.finditer(line)
    ]


def test_the_slugs_are_githubs() -> None:
    assert slug("`GET /images/{imageId}/renditions/{name}.{ext}`") == (
        "get-imagesimageidrenditionsnameext"
    )
    assert slug("Failures, retries and dead letters") == "failures-retries-and-dead-letters"
    assert slug("A second core for one image's encodes") == "a-second-core-for-one-images-encodes"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:: not ours to check offline
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor in {resolved.name}")
    assert broken == [], f"{page.relative_to(ROOT)}: {broken}"


def test_the_docs_are_linked_from_the_readme() -> None:
    readme = set(links(ROOT / "README.md"))
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"README links to no docs/{page.name}"
    assert "docs/dashboard.png" in readme


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[:5] == [
        "# imgpipe",
        "",
        "```sh",
        "make serve   # installs into .venv, then runs imgpipe on http://127.0.0.1:8080",
        "make test    # installs into .venv, then runs the whole test suite",
    ]
    assert len(lines) <= 200, "README.md is the front door: move the detail to docs/"
