"""Every relative link of README.md and docs/*.md reaches a file of the repository, and every anchor a heading.

Anchors are GitHub's: the heading in lower case, its punctuation dropped but ``-`` and ``_``, spaces as ``-``,
``-1``, ``-2``… after a repeated heading. Links inside code (fenced blocks, inline code) are text, not links.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from tests.support.expect import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose(text: str) -> str:
    """The text without its code: fenced blocks and inline code spans blanked out."""
    return _INLINE_CODE.sub(" ", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors a page defines: one per heading (numbered when repeated), and HTML ``<a id>``/``<a name>``."""
    text = page.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    found = set(_HTML_ANCHOR.findall(text))
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(text: str) -> list[str]:
    """The relative link targets of a page's text, in order."""
    return [target for target in _LINK.findall(prose(text)) if not _SCHEME.match(target)]


def broken(page: Path, target: str) -> str | None:
    """Why ``target`` (a link of ``page``) reaches nothing, or None."""
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    if not destination.is_relative_to(ROOT):
        return f"{target}: outside the repository"
    if not destination.exists():
        return f"{target}: no such file"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{target}: no heading of {destination.relative_to(ROOT)} has the anchor #{anchor}"
    return None


def test_the_pages_link_somewhere() -> None:
    assert len(PAGES) > 5
    assert any("#" in target for page in PAGES for target in links(page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    problems = [problem for target in links(page.read_text(encoding="utf-8")) if (problem := broken(page, target))]
    assert not problems, problems


def test_a_broken_link_or_anchor_is_caught() -> None:
    page = ROOT / "docs" / "deploy.md"
    assert broken(page, "observability.md#logs") is None
    assert broken(page, "dry-run.md#live-data-read-only---backend-live") is None
    assert broken(page, "#alarms") is None
    assert broken(page, "observability.md#no-such-heading") is not None
    assert broken(page, "no-such-page.md") is not None
    assert broken(page, "#no-such-heading") is not None
    assert slug("Live data, read-only (`--backend live`)") == "live-data-read-only---backend-live"
    assert links("See [a](a.md#b), `[not](a link)`, ![img](i.png) and [web](https://x.example/).") == [
        "a.md#b",
        "i.png",
    ]
