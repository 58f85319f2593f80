"""Inbound email from SendGrid Inbound Parse: ``sendgrid.parse`` and ``sendgrid.signature``.

The building blocks (``multipart``, ``ecdsa``, ``message``) are pure functions on the standard library
(and ``cryptography``, imported on first use); ``parse`` and ``signature`` register the steps.
"""

from steps.sendgrid import parse, signature

__all__ = ["parse", "signature"]
