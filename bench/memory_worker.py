"""A warm Lambda container in its own process: ``import handler``, handle N events, report peak memory.

Run by ``bench.figures.memory`` with ``AWS_ENDPOINT_URL`` pointing at a moto server that holds the
world; arguments: events, conversations, and the file the JSON result is written to.
"""

from __future__ import annotations

import json
import resource
import sys
from collections import Counter
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Handle ``argv[0]`` events across ``argv[1]`` conversations; write peak RSS to ``argv[2]``."""
    events, conversations, out = int(argv[0]), int(argv[1]), Path(argv[2])
    import handler
    from bench.events import Tenant, whatsapp_event

    tenant = Tenant()
    statuses: Counter[int] = Counter()
    for index in range(events):
        response = handler.handler(whatsapp_event(index % conversations, tenant, index), None)
        statuses[int(response["statusCode"])] += 1
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.write_text(json.dumps({"max_rss_mb": peak_kib / 1024, "statuses": dict(statuses)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
