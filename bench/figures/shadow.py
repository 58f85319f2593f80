"""Shadow evaluation's cost: the engine share of an event with a shadow candidate deployed, over one without.

Two containers over the same ports answered instantly from memory (``bench.instant``), as deployed
(INFO logs, EMF metrics): one with the shipped rules alone, one with the shipped rules live and a
candidate in shadow (``Application.deploy``). The candidate is a realistic change: VIP conversations
(an attribute the live rules never read) go to a person; the benchmark's conversations are not VIPs,
so it agrees on every event and costs only its count. An informational row uses a candidate that
disagrees on every event (each one then also writes a ``shadow_mismatch`` line). The two sides take
turns every few events, as in the overhead figure.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench.env import REPO_ROOT, lambda_environment
from bench.events import Tenant, conversation, whatsapp_event
from bench.figures.overhead import CHUNK_EVENTS, EVENT_VARIETY, alternating
from bench.instant import instant_services
from bench.model import Figure, Sizes
from bench.world import discard
from engine.config import AppConfig, load_config
from engine.context import Services
from runtime.app import Application
from runtime.layout import PIPELINES_DIR, RULES_DIR
from runtime.metrics import EmfMetrics

__all__ = ["measure"]

TARGET_US = 300.0
PIPELINE = REPO_ROOT / PIPELINES_DIR / "twilio_inbound.yaml"
ROUTING = (REPO_ROOT / RULES_DIR / "40_routing.yaml").read_text(encoding="utf-8")
AGREEING = ROUTING.replace(
    "rules:\n",
    """rules:
  - id: vip_to_human
    when: "conversation.vip == `true`"
    then: {target: handoff}
""",
    1,
)
DISAGREEING = ROUTING.replace("then: {target_from: request.channel}", "then: {target: handoff}", 1)


def _candidate(routing: str, env: dict[str, str], directory: Path) -> AppConfig:
    rules = directory / "rules"
    shutil.copytree(REPO_ROOT / RULES_DIR, rules)
    (rules / "40_routing.yaml").write_text(routing, encoding="utf-8")
    return load_config(PIPELINE, rules, env)


def _shadowed(candidate: AppConfig, services: Services, env: dict[str, str]) -> Application:
    live = load_config(PIPELINE, REPO_ROOT / RULES_DIR, env, shadow=candidate.rulesets)
    app = Application([live], services, EmfMetrics(write=discard))
    app.deploy(live, candidate)
    return app


def measure(sizes: Sizes) -> list[Figure]:
    """The shadow's added engine share per event (judged), and with a disagreeing candidate (informational)."""
    tenant = Tenant()
    items = [conversation(index, tenant) for index in range(EVENT_VARIETY)]
    services = instant_services(items, {tenant.secret_name: tenant.secret_value()})
    env = lambda_environment()
    plain = Application([load_config(PIPELINE, REPO_ROOT / RULES_DIR, env)], services, EmfMetrics(write=discard))
    events = [whatsapp_event(index, tenant) for index in range(EVENT_VARIETY)]
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as scratch:
        variants = (
            ("shadow_overhead", AGREEING, "the candidate agrees (only its count is written)", True),
            (
                "shadow_overhead_mismatch",
                DISAGREEING,
                "the candidate disagrees on every event (a log line each)",
                False,
            ),
        )
        for key, routing, title, judged in variants:
            shadowed = _shadowed(_candidate(routing, env, Path(scratch) / key), services, env)
            if shadowed.process(events[0]).result.outcome != "QUEUED":
                raise RuntimeError("shadow benchmark event did not end QUEUED")
            with_shadow, without, _ = alternating(shadowed.handle, plain.handle, events, sizes)
            added = (with_shadow - without) * 1e6
            figures.append(
                Figure(
                    key=key,
                    title=f"engine share added by a shadow candidate per event, AWS answered instantly; {title}",
                    unit="us/event",
                    measured=round(added, 1),
                    baseline_label=f"the same container without a shadow ({without * 1e6:.1f} us/event)",
                    baseline=round(without * 1e6, 1),
                    ratio=round(with_shadow / without, 3),
                    target=f"<= +{TARGET_US:.0f} us" if judged else "(informational)",
                    passed=added <= TARGET_US if judged else None,
                    note=(
                        f"measured is the difference; median of {sizes.overhead_repeats} repeats of "
                        f"{sizes.overhead_events} events a side, the sides taking turns every {CHUNK_EVENTS} events"
                    ),
                )
            )
    return figures
