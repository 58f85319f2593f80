"""Whether the mail system that received an email vouches for its sender's domain (SPF or DKIM, aligned).

Anyone can write any ``From``, and the ``From`` address picks the conversation, so a forged one would speak in
another user's conversation. SendGrid reports what the receiving mail server found in two fields:

- ``SPF``: the SPF result (``pass``, ``fail``, ``softfail``, ``neutral``, ``none``…) for the envelope sender's
  domain (``MAIL FROM``, the ``envelope`` field's ``from``);
- ``dkim``: each DKIM signature's signing domain and result, ``{@example.net : pass}`` (not JSON).

The sender is vouched for when a domain that passed is aligned with the domain of its address, as DMARC's
relaxed alignment has it, approximated without a public-suffix list: the same domain, or one a subdomain of the
other (a registry never signs for ``co.uk``, so a shared suffix alone never aligns two domains).
"""

from __future__ import annotations

import re

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
        found.lower().rstrip(".") for found, result in _DKIM_RESULT.findall(dkim or "") if result.lower() == "pass"
    }
    envelope_domain = _domain(envelope_sender)
    if (spf or "").lower().split()[:1] == ["pass"] and envelope_domain is not None:  # a comment may follow
        passed.add(envelope_domain)
    return any(_aligned(domain, other) for other in passed)


def _domain(address: str | None) -> str | None:
    """The domain of a bare address, lower case, or None when it has none."""
    domain = (address or "").rpartition("@")[2].strip().lower().rstrip(".")
    return domain or None


def _aligned(one: str, other: str) -> bool:
    """The same domain, or one a subdomain of the other that has a dot itself (``net`` aligns with nothing else)."""
    return one == other or any(a.endswith("." + b) and "." in b for a, b in ((one, other), (other, one)))
