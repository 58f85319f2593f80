"""Masking reads a part's parameters as the pipeline does: the two copies of RFC 2231 decoding agree on any header.

``runtime.masking._param`` is a copy of ``steps.sendgrid.multipart._param`` (runtime may not import steps, the
engine may not grow, and the standard library's ``collapse_rfc2231_value`` unquotes twice). If they ever read a
name differently, a recording would mask one field and the pipeline read another: this keeps them one reading.
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import Message

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import runtime.masking
from steps.sendgrid import multipart

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
_ERRORS = (LookupError, ValueError, TypeError, IndexError)  # what both callers catch
CHARSETS = ["utf-8", "UTF-8", "us-ascii", "iso-8859-1", "x-unknown", "base64", "idna", "utf-16", ""]
ATOMS = ['"', "\\", "<", ">", "'", ";", "=", "*", "%", "%3C", "%22", "%FF", "%C3%A9", "\u00e9", " ", "\t", "x", "0"]
pieces = st.lists(st.sampled_from(ATOMS) | st.text(max_size=3), max_size=8).map("".join)


@st.composite
def parameters(draw: st.DrawFn) -> str:
    """One parameter: a token, a quoted string, or RFC 2231 (``name*``, with or without continuations)."""
    key = draw(st.sampled_from(["name", "filename", "boundary", "NAME", "other"]))
    value = draw(pieces)
    form = draw(st.sampled_from(["token", "quoted", "extended", "continued", "raw"]))
    if form == "token":
        return f"{key}={value}"
    if form == "quoted":
        return f'{key}="{value}"'
    charset = draw(st.sampled_from(CHARSETS))
    language = draw(st.sampled_from(["", "en", "'"]))
    if form == "extended":
        return f"{key}*={charset}'{language}'{value}"
    if form == "continued":
        rest = draw(pieces)
        return f"{key}*0*={charset}'{language}'{value}; {key}*1{draw(st.sampled_from(['', '*']))}=\"{rest}\""
    return f"{key}{value}"


headers = st.builds(
    lambda kind, params: "; ".join([kind, *params]),
    st.sampled_from(["form-data", "multipart/form-data", "attachment", ""]),
    st.lists(parameters(), max_size=4),
) | st.text(max_size=60)


def _reading(read: Callable[..., object], *args: object) -> tuple[str, object]:
    """What ``read(*args)`` gives: its value, or the kind of error the callers catch."""
    try:
        return ("value", read(*args))
    except _ERRORS as exc:
        return ("raises", type(exc))


def _picked(header: Message, name: str, field: str) -> str | None:
    """The parameter as ``multipart.parse`` picks it: every parameter read once, then the first named ``name``."""
    return multipart._named(header.get_params(header=field), name)


@FUZZ
@given(value=headers, name=st.sampled_from(["name", "filename", "boundary"]))
@example(value="form-data; name=\"<to>\"; filename*=x-unknown''%3Cb%3E", name="filename")
@example(value="form-data; name*=utf-8''caf%C3%A9", name="name")
@example(value='form-data; name="a\\"b"; name="second"', name="name")
@example(value="multipart/form-data; boundary*0*=us-ascii''a; boundary*1=\"b\"", name="boundary")
def test_masking_and_the_pipeline_read_every_parameter_alike(value: str, name: str) -> None:
    for field in ("Content-Disposition", "Content-Type"):
        header = Message()
        header[field] = value
        pipeline = _reading(multipart._param, header, name, field)
        assert _reading(runtime.masking._param, header, name, field) == pipeline
        # The parser reads a part's parameters once (get_params) and picks them out: the same reading again.
        if field == "Content-Disposition":
            assert _reading(_picked, header, name, field) == pipeline
