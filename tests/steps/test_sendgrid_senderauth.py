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
