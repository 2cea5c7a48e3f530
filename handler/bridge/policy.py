"""Decides which deliveries deserve a postmortem: the event type, the kind of data, and the severity rule."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .pagerduty import Incident, WebhookEvent, read_incident


@dataclass(frozen=True)
class Ignored:
    reason: str


def _allowed(value: str | None, allowed: frozenset[str] | None) -> bool:
    return allowed is None or (value or "").casefold() in allowed


def select(event: WebhookEvent, settings: Settings) -> Incident | Ignored:
    """The incident to write a postmortem for, or why this delivery is ignored (answered 2xx all the same)."""
    if event.event_type == "pagey.ping":
        return Ignored("ping")
    if event.event_type not in settings.event_types:
        return Ignored(f"event type {event.event_type} is not configured to start a postmortem")
    if event.data_type != "incident":
        return Ignored(f"data type {event.data_type or '(none)'} is not an incident")
    incident = read_incident(event)
    if incident.merged:
        return Ignored("incident was merged into another incident")
    if incident.priority is not None:
        if not _allowed(incident.priority, settings.priorities):
            return Ignored(f"priority {incident.priority} is below the postmortem threshold")
    elif not _allowed(incident.urgency, settings.urgencies):
        return Ignored(f"{incident.urgency or 'unknown'} urgency without a priority is below the postmortem threshold")
    return incident
