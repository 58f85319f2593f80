"""The built-in steps, one module per capability; importing this package registers every one of them.

Hosts load it through ``engine.plugins.load_plugins(["steps"])``; the engine never imports it.
"""

from steps import control, conversations, replay, rules, secrets, sqs, stage, trigger, twilio

__all__ = ["control", "conversations", "replay", "rules", "secrets", "sqs", "stage", "trigger", "twilio"]
