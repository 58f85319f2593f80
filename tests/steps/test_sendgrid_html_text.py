"""The text of an HTML-only email: what is kept, and that reading it costs time linear in a bounded input."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steps.sendgrid.html_text import html_to_text

BIG = 1 << 20


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("Line<br>break<br/>again", "Line\nbreak\nagain"),
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
        ("a\n   b\t\tc", "a b c"),
        ("&lt;tag&gt; &eacute; &#8364; a&nbsp;&nbsp;b", "<tag> \u00e9 \u20ac a b"),
        ("<![foo[ x ]]>after", "after"),
        ("<!DOCTYPE html><?xml version='1.0'?>text", "text"),
        ("<!-- a <p>comment</p> -->x <!--> y <!---> z", "x y z"),
        ("<title>T</title><noscript>n</noscript><template>t</template>body", "body"),
        ("<template><template>a</template>b</template>c", "c"),
        ("<div>unclosed <b>bold", "unclosed bold"),
        ("a < b and c > d, 1 </ 2> 3", "a < b and c > d, 1 3"),
        ("<a href=\"/x>y\" title='1>2'>link</a> after", "link after"),
        ("<script>if (a<b) document.write('</p>')</script>ok", "ok"),
        ("<STYLE type=text/css>p > a {}</STYLE >ok", "ok"),
        ("<script>never closed <p>hidden", ""),
        ("<p>Hi</p><!-- never closed <p>hidden", "Hi"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html, BIG) == text


@pytest.mark.parametrize(
    "html",
    [
        '<html><head><meta charset="utf-8"><title>Order</title><body><p>My order never arrived.</p></body></html>',
        "<html><head><style>p {color: red}</style><p>My order never arrived.</p>",
        "<head><title>Order</title></head><body><p>My order never arrived.</p>",
        "<html><head>My order never arrived.",
    ],
    ids=["no-head-end-tag", "no-body-tag", "whole", "text-in-head"],
)
def test_text_after_a_head_without_its_optional_end_tag_is_kept(html: str) -> None:
    assert html_to_text(html, BIG) == "My order never arrived."


@pytest.mark.parametrize("unit", ["<p>Hello</p>\n", "<a ", "<", '<a x="', "<!--", "&amp;"])
def test_only_the_first_max_chars_are_read(unit: str) -> None:
    html = unit * (BIG // len(unit))
    assert html_to_text(html * 8, 1000) == html_to_text(html[:1000], BIG)


def _best_time(html: str, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        html_to_text(html, len(html))
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize(
    "unit",
    ["<a ", "<", "<p>", "<a>x", "<!--", '<a x="', "<a b=", "<!", "</", "<script>", "&", "<p x='>"],
)
def test_reading_time_grows_linearly_with_the_html(unit: str) -> None:
    """Eight times the HTML takes about eight times as long; the standard library's parser took 64 times."""
    small = unit * (8 * 1024 // len(unit))
    large = unit * (64 * 1024 // len(unit))
    # Generous: 3x the linear ratio, plus 30 ms for a loaded machine's noise on sub-millisecond timings.
    assert _best_time(large) <= 24 * _best_time(small) + 0.03


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="<>/!?-'\"= abp&;#x\n", max_size=300))
def test_any_html_reads_as_trimmed_text_without_raising(html: str) -> None:
    text = html_to_text(html, BIG)
    assert text == text.strip()
    assert "\n\n\n" not in text
