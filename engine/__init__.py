"""A declarative, YAML-driven step runner for inbound webhooks on AWS Lambda."""
