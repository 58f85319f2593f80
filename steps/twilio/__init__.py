"""Twilio messaging webhooks: ``twilio.parse``, ``twilio.signature``, the ``twiml`` format, ``e164()``."""

from steps.twilio import functions, parse, signature, twiml

__all__ = ["functions", "parse", "signature", "twiml"]
