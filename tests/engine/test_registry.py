"""``engine.registry``: what a new step module is told when its registration cannot stand."""

from __future__ import annotations

import pytest

from engine import registry
from runtime.plugins import load_plugins


def test_a_second_step_under_a_taken_name_is_refused_naming_the_module_that_holds_it() -> None:
    load_plugins()
    with pytest.raises(ValueError, match=r"step name 'sqs.send' is already registered by steps\.sqs"):

        @registry.register("sqs.send")
        class Copied:
            """A new step module reusing a built-in step's name."""

    assert registry.get("sqs.send") is not None and registry.get("sqs.send").factory.__module__ == "steps.sqs"


def test_an_iam_resource_of_a_kind_the_grants_cannot_resolve_is_refused_at_registration() -> None:
    # The template test and tools.iam resolve table, index, queue and secret resources only: anything else used to
    # register quietly, then fail there with a bare KeyError.
    grant = registry.IamGrant(("s3:PutObject",), (registry.Resource("bucket", param="bucket", default="archive"),))
    with pytest.raises(ValueError, match=r"step 'archive.put': IAM resource kind 'bucket' is not one of index, queue"):

        @registry.register("archive.put", iam=(grant,))
        class ArchivePut:
            """Archive the request (a step needing a resource kind the grants do not know)."""

    assert registry.get("archive.put") is None
