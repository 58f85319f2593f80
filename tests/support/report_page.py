"""The decision report page's data block read back: each event's record whole, as ``render_report`` was given it.

The page names each rule tried and each step of a trace by where it is in the page's tables
(``tools.dryrun.report_page``); ``records_whole`` puts them back, as the page's script does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["records_whole"]


def records_whole(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (the page's parsed data block) with each event's record holding its ``rules`` and ``trace`` again."""
    shared = data["shared"]
    names, results, steps = shared["rules"], shared["results"], shared["steps"]
    for event in data["events"]:
        record = event["record"]
        if "tried" in event:
            record["rules"] = [
                {**names[first + i], **results[result]} for first, count, result in event["tried"] for i in range(count)
            ]
        if "steps" in event:
            record["trace"] = [{**steps[step], **({"ms": ms[0]} if ms else {})} for step, *ms in event["steps"]]
    return data
