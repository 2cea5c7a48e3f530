"""The figures the bridge computes from an incident's log entries, so that the model never does time arithmetic on
raw timestamps: response times, counts and who responded. Pure: no I/O.

Names follow PagerDuty Analytics where it has one (`seconds_to_first_ack`, `seconds_to_resolve`,
`escalation_count`, `reassignment_count`; docs: GET /analytics/raw/incidents/{id}); Analytics itself is not read,
because its data is "generally" ready only within 24 hours, long after the resolve that starts a session. A figure
whose inputs are missing is left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .record import TimelineEntry, parse_instant

# In the order the data block shows them.
FIELDS = (
    "seconds_to_first_ack",
    "seconds_to_resolve",
    "escalation_count",
    "reassignment_count",
    "notification_count",
    "acknowledged_by",
    "resolved_by",
    "alert_count",
)


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None or end < start:
        # An end before the start means the inputs disagree: no figure rather than a wrong one.
        return None
    return round((end - start).total_seconds())


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(name for name in names if name))


def compute(
    entries: Sequence[TimelineEntry],
    *,
    complete: bool,
    created_at: str | None = None,
    resolved_at: str | None = None,
    alert_count: int | None = None,
) -> dict[str, Any]:
    """The figures, from `entries` (every log entry read, chronological: record.timeline) and what the webhook says.

    `complete` is False when the listing stopped short (time budget, PagerDuty's limit, an error): then nothing is
    counted and no first acknowledgement is claimed, since the missing entries could hold an earlier one; only
    the time to resolve stays, from the trigger to this resolve event. The trigger is the first trigger entry, else
    the incident's `created_at` (the same instant in PagerDuty); the resolution is the last resolve entry, else
    `resolved_at` (the resolve event's own time, given for an incident.resolved delivery).
    """
    timed = [(entry, parse_instant(entry.at)) for entry in entries]
    by_kind: dict[str, list[tuple[TimelineEntry, datetime | None]]] = {}
    for entry, instant in timed:
        by_kind.setdefault(entry.kind, []).append((entry, instant))
    triggers = [instant for _, instant in by_kind.get("trigger", []) if instant is not None]
    trigger = triggers[0] if triggers else parse_instant(created_at)
    figures: dict[str, Any] = {}

    resolves = [instant for _, instant in by_kind.get("resolve", []) if instant is not None]
    resolution = parse_instant(resolved_at)
    if complete and resolves:
        resolution = resolves[-1]
    if (seconds := _seconds(trigger, resolution)) is not None:
        figures["seconds_to_resolve"] = seconds
    if alert_count is not None:
        figures["alert_count"] = alert_count
    if not complete:
        return _ordered(figures)

    acks = [instant for _, instant in by_kind.get("acknowledge", []) if instant is not None]
    if acks and (seconds := _seconds(trigger, acks[0])) is not None:
        figures["seconds_to_first_ack"] = seconds
    figures["escalation_count"] = len(by_kind.get("escalate", []))
    # The first assignment is the escalation policy's own, at the trigger; each later one, and each delegation to
    # another escalation policy, reassigns the incident. (How Analytics counts reassignments is UNCONFIRMED.)
    figures["reassignment_count"] = max(len(by_kind.get("assign", [])) - 1, 0) + len(by_kind.get("delegate", []))
    figures["notification_count"] = len(by_kind.get("notify", []))
    acknowledged_by = _unique(entry.who for entry, _ in by_kind.get("acknowledge", []))
    if acknowledged_by:
        figures["acknowledged_by"] = acknowledged_by
    resolved_by = _unique(entry.who for entry, _ in by_kind.get("resolve", []))
    if resolved_by:
        figures["resolved_by"] = resolved_by
    return _ordered(figures)


def _ordered(figures: dict[str, Any]) -> dict[str, Any]:
    return {name: figures[name] for name in FIELDS if name in figures}
