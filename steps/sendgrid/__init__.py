"""Inbound email from SendGrid Inbound Parse: ``sendgrid.parse``, ``sendgrid.signature`` and ``sendgrid.read``.

The building blocks (``multipart``, ``ecdsa``, ``message``) are pure functions on the standard library
(and ``cryptography``, imported on first use); ``parse``, ``signature`` and ``read`` register the steps.
"""

from steps.sendgrid import parse, read, signature

__all__ = ["parse", "read", "signature"]
