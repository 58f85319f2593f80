"""Readable text of an HTML email body, in one pass whose cost grows linearly with the HTML's length.

A tokenizer cut down to what text needs, reading markup roughly as a browser does (WHATWG HTML §13.2.5): a
``<`` starts markup only before a letter, ``!``, ``?`` or ``/``; tags, comments and declarations that are never
closed run to the end of the input. So no pattern scans ahead and then gives up to try again one character
later, which is what makes the standard library's ``HTMLParser`` quadratic on input such as ``"<a " * 10000``.
The input is cut to ``max_chars`` first, so the work is bounded too.

Text is kept outside ``script``, ``style``, ``title``, ``iframe``, ``noembed`` and ``noframes`` (raw text a
reader never sees) and outside ``template`` and ``noscript``; ``head`` is not skipped (its end tag is
optional, and a browser shows text found there). Source line breaks are spaces, as a browser shows them;
block elements (p, div, br, li...) break lines, table cells are apart; character references are decoded.
"""

from __future__ import annotations

import re
from html import unescape

__all__ = ["html_to_text"]

_MARKUP_START = re.compile(r"<[A-Za-z!?/]")
# One alternative for each way _MARKUP_START can begin; each one always matches, up to its end or the input's.
# Possessive quantifiers keep a match from backtracking into what it has already read.
_MARKUP = re.compile(
    r"""
      <!--(?:-?>|.*?-->|.*\Z)                           # a comment ("<!-->" and "<!--->" close at once)
    | <[!?][^>]*+>?                                     # a doctype, CDATA or processing instruction: to '>'
    | </(?P<end>[A-Za-z][^\s/>]*+)[^>]*+>?              # an end tag
    | <(?P<start>[A-Za-z][^\s/>]*+)                     # a start tag, whose quoted values may hold '>'
      (?:[^>=]++|=\s*+(?:"[^"]*+"?|'[^']*+'?)?)*+>?
    | </[^>]*+>?                                        # "</" without a name: dropped up to '>'
    """,
    re.DOTALL | re.VERBOSE,
)
_RAW_SKIPPED = ("script", "style", "title", "iframe", "noembed", "noframes")
_RAW_END = {name: re.compile(rf"</{name}(?=[\s/>]|\Z)", re.IGNORECASE) for name in _RAW_SKIPPED}
_HIDDEN = frozenset({"template", "noscript"})
_LINE = frozenset({"br", "li", "tr", "dt", "dd"})
# Table cells sit side by side: a space keeps one cell's words from running into the next one's.
_CELL = frozenset({"td", "th"})
_BLOCK = frozenset(
    {"p", "div", "table", "ul", "ol", "hr", "pre", "blockquote", "section", "article", "header", "footer"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "center", "caption", "dl", "address", "main", "nav", "aside"}
    | {"figure", "figcaption", "details", "summary", "fieldset", "form"}
)
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[ \xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str, max_chars: int) -> str:
    """The readable text of the first ``max_chars`` characters of ``html``: tags dropped, entities decoded."""
    html = html[:max_chars]
    parts: list[str] = []
    hidden = 0  # how many template/noscript elements are open
    pos, end = 0, len(html)
    while pos < end:
        found = _MARKUP_START.search(html, pos)
        stop = found.start() if found else end
        if stop > pos and not hidden:
            parts.append(_WHITESPACE.sub(" ", unescape(html[pos:stop])))
        if found is None:
            break
        markup = _MARKUP.match(html, stop)
        assert markup is not None, "every markup start matches an alternative"
        pos = markup.end()
        if (start := markup.group("start")) is not None:
            tag = start.lower()
            if tag in _RAW_END:
                raw_end = _RAW_END[tag].search(html, pos)
                pos = raw_end.start() if raw_end else end
            elif tag in _HIDDEN:
                hidden += 1
            elif (tag in _LINE or tag in _BLOCK) and not hidden:
                parts.append("\n")
            elif tag in _CELL and not hidden:
                parts.append(" ")
        elif (closing := markup.group("end")) is not None:
            tag = closing.lower()
            if tag in _HIDDEN:
                hidden = max(0, hidden - 1)
            elif tag in _BLOCK and not hidden:
                parts.append("\n")
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(parts).split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
