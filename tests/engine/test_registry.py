"""``engine.registry``: what a new step module is told when its registration cannot stand."""

from __future__ import annotations

import pytest

from engine import registry
from engine.plugins import load_plugins


def test_a_second_step_under_a_taken_name_is_refused_naming_the_module_that_holds_it() -> None:
    load_plugins()
    with pytest.raises(ValueError, match=r"step name 'sqs.send' is already registered by steps\.sqs"):

        @registry.register("sqs.send")
        class Copied:
            """A new step module reusing a built-in step's name."""

    assert registry.get("sqs.send") is not None and registry.get("sqs.send").factory.__module__ == "steps.sqs"
