"""Whether SendGrid's SPF and DKIM results vouch for the sender's domain (``steps.sendgrid.senderauth``)."""

from __future__ import annotations

import pytest

from steps.sendgrid.senderauth import sender_authenticated

SENDER = "jane@example.net"


@pytest.mark.parametrize(
    ("sender", "envelope", "spf", "dkim", "expected"),
    [
        # No results at all (not a SendGrid post as it sends them): nothing to judge by.
        (SENDER, "jane@example.net", None, None, None),
        # SPF speaks for the envelope sender's domain: it vouches for the From only when the two align.
        (SENDER, "bounces+jane@example.net", "pass", None, True),
        (SENDER, "bounces@mail.example.net", "Pass", "", True),
        (SENDER, "bounces@example.net", "pass (example.net designates 192.0.2.25 as permitted sender)", None, True),
        (SENDER, "bounces@example.net", "passed", None, False),
        (SENDER, "bounces@example.net", " ", None, False),
        (SENDER, "bounces@attacker.example", "pass", None, False),
        (SENDER, "jane@example.net", "softfail", None, False),
        (SENDER, None, "pass", None, False),
        # DKIM: a passing signature of the sender's domain, a parent or a subdomain of it.
        (SENDER, None, "none", "{@example.net : pass}", True),
        (SENDER, None, None, "{@EXAMPLE.NET. : PASS}", True),
        ("jane@eu.example.net", None, None, "{@example.net : pass}", True),
        (SENDER, None, None, "{@mail.example.net : pass}", True),
        (SENDER, None, None, "{@attacker.example : pass, @example.net : fail}", False),
        (SENDER, None, None, "{@attacker.example : pass, @example.net : pass}", True),
        # A lookalike or a shared suffix never aligns; nor does a one-label domain.
        (SENDER, None, None, "{@badexample.net : pass}", False),
        (SENDER, None, None, "{@net : pass}", False),
        ("jane@net", None, None, "{@attacker.net : pass}", False),
        ("jane@example.co.uk", None, None, "{@attacker.co.uk : pass}", False),
        # Results, but no sender address to hold them against.
        (None, "jane@example.net", "pass", None, False),
        (SENDER, None, "pass", "not the dkim format", False),
    ],
)
def test_spf_or_dkim_vouch_for_the_sender_only_when_aligned_with_its_domain(sender, envelope, spf, dkim, expected):
    assert sender_authenticated(sender, envelope, spf, dkim) is expected


@pytest.mark.parametrize(
    ("sender", "envelope", "spf", "dkim"),
    [
        # DKIM's d= and the envelope's domain are A-labels (punycode); a From written in UTF-8 names the U-labels.
        ("jane@bücher.de", None, None, "{@xn--bcher-kva.de : pass}"),
        ("jane@mail.bücher.de", None, None, "{@XN--BCHER-KVA.DE : pass}"),
        ("jane@bücher.de", "bounces@xn--bcher-kva.de", "pass", None),
        ("jane@xn--bcher-kva.de", None, None, "{@bücher.de : pass}"),
    ],
)
def test_an_internationalized_domain_aligns_with_its_punycode_form(sender, envelope, spf, dkim):
    assert sender_authenticated(sender, envelope, spf, dkim) is True


@pytest.mark.parametrize(
    "dkim",
    [
        "{@xn--bcher-kva.com : pass}",  # bücher.com: another domain
        "{@xn--bcher-kva.de : fail}",
        "{@xn--zz-invalid.de : pass}",
        "{@xn--bcher-.de : pass}",  # decodes to the ASCII bcher.de: no U-label
    ],
)
def test_a_punycode_domain_vouches_only_for_its_own_name(dkim):
    assert sender_authenticated("jane@bücher.de", None, None, dkim) is False


def test_an_a_label_no_u_label_has_is_not_the_domain_it_decodes_to():
    """xn--example- decodes to "example", xn--becher-jxd to b, e and a combining accent: neither is the domain
    spelt so (U-labels hold a non-ASCII letter and are in NFC), and whoever registers it may sign for it."""
    assert sender_authenticated("jane@example.net", None, None, "{@xn--example-.net : pass}") is False
    assert sender_authenticated("jane@b\u00e9cher.de", None, None, "{@xn--becher-jxd.de : pass}") is False
    assert sender_authenticated("jane@b\u00e9cher.de", None, None, "{@xn--bcher-bsa.de : pass}") is True
