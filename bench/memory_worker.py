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

__all__ = ["main", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """The peak resident set size of the current process, in MiB.

    ``VmHWM`` belongs to the process image, whereas Linux carries ``ru_maxrss`` over from the forked
    parent across ``exec``, which would report the benchmark's own size for a small child.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    """Handle ``argv[0]`` events across ``argv[1]`` conversations; write peak RSS to ``argv[2]``."""
    events, conversations, out = int(argv[0]), int(argv[1]), Path(argv[2])
    import handler
    from bench.events import Tenant, whatsapp_event

    tenant = Tenant()
    statuses: Counter[str] = Counter()
    for index in range(events):
        try:
            response = handler.handler(whatsapp_event(index % conversations, tenant, index), None)
        except Exception as exc:  # noqa: BLE001 - a transient fault raises out of the Lambda; count it
            statuses[f"raised {str(exc).split(':', 1)[0]}"] += 1
        else:
            statuses[str(response["statusCode"])] += 1
    out.write_text(json.dumps({"max_rss_mb": peak_rss_mb(), "statuses": dict(statuses)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
