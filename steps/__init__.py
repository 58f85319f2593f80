"""The built-in steps. Importing this package registers every one of them."""

from steps import conversations, credentials, dispatch, rules, send, signature, twilio_parse

__all__ = ["conversations", "credentials", "dispatch", "rules", "send", "signature", "twilio_parse"]
