"""A moto world in this process: the contract's tables and queues, conversations, secrets and an Application."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import boto3

from bench.env import REPO_ROOT, lambda_environment, use_fake_aws
from bench.events import Tenant
from engine.config import AppConfig, load_config
from runtime.app import Application, live_services
from runtime.layout import PIPELINES_DIR, RULES_DIR
from runtime.metrics import EmfMetrics
from runtime.plugins import load_plugins, plugin_modules
from tools.localaws import LocalResources, provision, put_items, put_secrets

__all__ = ["Instrument", "MotoWorld", "application", "discard", "load_app_config", "moto_world"]


def discard(text: str) -> None:
    """A sink for the EMF documents a Lambda container writes to stdout (their cost stays in the figures)."""


class Instrument(Protocol):
    """Something that hooks a boto3 session's events (a call recorder, canned answers)."""

    def attach(self, session: Any) -> None:
        """Register on ``session`` before its clients are created."""
        ...


def load_app_config(env: Mapping[str, str]) -> AppConfig:
    """The shipped Twilio pipeline and its rules, loaded with ``env`` (the project's plugins registered first)."""
    load_plugins(plugin_modules(env, REPO_ROOT))
    return load_config(REPO_ROOT / PIPELINES_DIR / "twilio_inbound.yaml", REPO_ROOT / RULES_DIR, env)


def application(env: Mapping[str, str], *instruments: Instrument) -> Application:
    """A new container: configuration loaded with ``env``, boto3 clients on a session the instruments watch."""
    session = boto3.session.Session()
    for instrument in instruments:
        instrument.attach(session)
    config = load_app_config(env)
    return Application([config], live_services(config.aws, session=session), EmfMetrics(write=discard))


@dataclass
class MotoWorld:
    """Provisioned resources, plain clients for setup, and the environment the Lambda would see."""

    resources: LocalResources
    dynamodb: Any
    sqs: Any
    secretsmanager: Any

    @property
    def environment(self) -> dict[str, str]:
        """The Lambda environment pointing at this world."""
        return lambda_environment(self.resources.environment())

    def add(self, conversations: Iterable[Mapping[str, Any]], tenant: Tenant) -> None:
        """Store conversations and the tenant's secret."""
        put_items(self.dynamodb, self.resources.conversations_table, conversations)
        put_secrets(self.secretsmanager, {tenant.secret_name: tenant.secret_value()})

    def application(self, *instruments: Instrument) -> Application:
        """A new container in this world (see ``application``)."""
        return application(self.environment, *instruments)


@contextmanager
def moto_world() -> Iterator[MotoWorld]:
    """An empty in-process moto world with the contract's resources, reset on exit."""
    from moto import mock_aws

    use_fake_aws()
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        secretsmanager = boto3.client("secretsmanager")
        yield MotoWorld(provision(dynamodb, sqs), dynamodb, sqs, secretsmanager)
