"""The built-in steps, one module per capability; importing this package registers every one of them.

It also registers the expression functions conditions may call (``steps.functions``). Hosts load it
through ``engine.plugins.load_plugins(["steps"])``; the engine never imports it.
"""

from steps import control, conversations, functions, replay, rules, secrets, sendgrid, sqs, stage, trigger, twilio

__all__ = [
    "control",
    "conversations",
    "functions",
    "replay",
    "rules",
    "secrets",
    "sendgrid",
    "sqs",
    "stage",
    "trigger",
    "twilio",
]
