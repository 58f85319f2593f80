"""Inbound email from SendGrid Inbound Parse: ``sendgrid.parse`` and ``sendgrid.signature``.

The building blocks (``multipart``, ``signature``, ``message``) are pure functions on the standard library
(and ``cryptography``, imported on first use); ``parse`` and ``verify`` register them as steps.
"""

from steps.sendgrid import parse, verify

__all__ = ["parse", "verify"]
