"""The metrics a function printed: Powertools writes them to stdout as CloudWatch embedded metric format (EMF)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple


class Metric(NamedTuple):
    name: str
    dimensions: dict[str, str]
    values: list[float]
    namespace: str


def emitted(stdout: str) -> list[Metric]:
    """Every metric in `stdout` (EMF lines among others), in the order printed."""
    found = []
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        blob: dict[str, Any] = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dimensions = {name: blob[name] for group in directive["Dimensions"] for name in group}
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                found.append(Metric(metric["Name"], dimensions, values, directive["Namespace"]))
    return found


def names(stdout: str) -> list[str]:
    return [metric.name for metric in emitted(stdout)]
