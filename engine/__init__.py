"""The generic core of a declarative, YAML-driven step runner for inbound webhooks: no step, host or AWS SDK."""
