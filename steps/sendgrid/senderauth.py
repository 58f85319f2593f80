"""Whether the mail system that received an email vouches for its sender's domain (SPF or DKIM, aligned).

Anyone can write any ``From``, and the ``From`` address picks the conversation, so a forged one would speak in
another user's conversation. SendGrid reports what the receiving mail server found in two fields:

- ``SPF``: the SPF result (``pass``, ``fail``, ``softfail``, ``neutral``, ``none``…) for the envelope sender's
  domain (``MAIL FROM``, the ``envelope`` field's ``from``);
- ``dkim``: each DKIM signature's signing domain and result, ``{@example.net : pass}`` (not JSON).

The sender is vouched for when a domain that passed is aligned with the domain of its address, as DMARC's
relaxed alignment has it, approximated without a public-suffix list: the same domain, or one a subdomain of the
other (a registry never signs for ``co.uk``, so a shared suffix alone never aligns two domains). Domains are
compared by their Unicode labels: DKIM's ``d=`` and an envelope name an internationalized domain by its A-labels
(``xn--bcher-kva.de``), a ``From`` written in UTF-8 by its U-labels (``bücher.de``).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["DKIM_FIELD", "SPF_FIELD", "sender_authenticated"]

SPF_FIELD = "SPF"
DKIM_FIELD = "dkim"
# One ``@domain : result`` entry of the dkim field.
_DKIM_RESULT = re.compile(r"@([^\s:,{}@]+)\s*:\s*([A-Za-z]+)")


def sender_authenticated(
    sender: str | None, envelope_sender: str | None, spf: str | None, dkim: str | None
) -> bool | None:
    """Whether SPF or DKIM passed for a domain aligned with ``sender``'s; None when SendGrid gave neither result."""
    if spf is None and dkim is None:
        return None
    domain = _domain(sender)
    if domain is None:
        return False
    passed = {
        signed
        for found, result in _DKIM_RESULT.findall(dkim or "")
        if result.lower() == "pass" and (signed := _unicode_domain(found)) is not None
    }
    envelope_domain = _domain(envelope_sender)
    if (spf or "").lower().split()[:1] == ["pass"] and envelope_domain is not None:  # a comment may follow
        passed.add(envelope_domain)
    return any(_aligned(domain, other) for other in passed)


def _domain(address: str | None) -> str | None:
    """The text after the last @ of ``address`` (the domain of a checked address), as ``_unicode_domain`` reads it."""
    return _unicode_domain((address or "").rpartition("@")[2])


def _unicode_domain(domain: str) -> str | None:
    """``domain`` lower case, its A-labels (``xn--…``) read as the U-labels they stand for, or None when empty."""
    labels = unicodedata.normalize("NFC", domain.strip().lower().rstrip(".")).split(".")
    return ".".join(map(_u_label, labels)) or None


def _u_label(label: str) -> str:
    """An A-label as its Unicode label (one that is no valid U-label's stays as it is); any other label unchanged."""
    if not label.startswith("xn--") or not label.isascii():
        return label
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return label
    # A U-label holds a non-ASCII letter and is in NFC: xn--example- (decoding to "example") and an A-label of a
    # decomposed é name other domains, which whoever registers them may sign for.
    return decoded if not decoded.isascii() and unicodedata.is_normalized("NFC", decoded) else label


def _aligned(one: str, other: str) -> bool:
    """The same domain, or one a subdomain of the other that has a dot itself (``net`` aligns with nothing else)."""
    return one == other or any(a.endswith("." + b) and "." in b for a, b in ((one, other), (other, one)))
