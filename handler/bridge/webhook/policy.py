"""Decides what a delivery may do: start the incident's session (the event type, the kind of data, the severity
rule), be forwarded to a session that exists (FOLLOW_UP_EVENT_TYPES), or nothing (answered 2xx all the same)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ..config import Settings
from .event import Incident, WebhookEvent, incident_id_of, read_incident

RESOLVED = "incident.resolved"

# Why a delivery was ignored, as a bounded set (a metric dimension): the reason itself is free text.
PING = "ping"
EVENT_TYPE = "event_type"
DATA_TYPE = "data_type"
MERGED = "merged"
SEVERITY = "severity"
ROUTING = "routing"
STALE = "stale"
NO_SESSION = "no_session"
SESSION_GONE = "session_gone"


@dataclass(frozen=True)
class Ignored:
    reason: str
    kind: str = EVENT_TYPE


@dataclass(frozen=True)
class Delivery:
    """A delivery about an incident that may start its session, be forwarded to the session, or both."""

    event: WebhookEvent
    incident_id: str
    incident: Incident | None  # the incident's own data; None for what hangs off one (a note)
    # None when the delivery may start a session; else why it may not (its answer when there is no session).
    start: Ignored | None
    # Forwarded to the incident's session as a message: its type is in FOLLOW_UP_EVENT_TYPES.
    forward: bool = False
    # Forwarded only to a session that started early (before the incident resolved): incident.resolved always is.
    forward_if_early: bool = False

    @property
    def forwardable(self) -> bool:
        return self.forward or self.forward_if_early

    def without_start(self, why: Ignored) -> Delivery:
        return replace(self, start=why)


def _allowed(value: str | None, allowed: frozenset[str] | None) -> bool:
    return allowed is None or (value or "").casefold() in allowed


def _severity(incident: Incident, settings: Settings) -> Ignored | None:
    if incident.merged:
        return Ignored("incident was merged into another incident", MERGED)
    if incident.priority is not None:
        if not _allowed(incident.priority, settings.priorities):
            return Ignored(f"priority {incident.priority} is below the postmortem threshold", SEVERITY)
    elif not _allowed(incident.urgency, settings.urgencies):
        return Ignored(
            f"{incident.urgency or 'unknown'} urgency without a priority is below the postmortem threshold", SEVERITY
        )
    return None


def starts_early(settings: Settings) -> bool:
    """Sessions may start before the incident resolves (EVENT_TYPES names another type than incident.resolved)."""
    return any(event_type != RESOLVED for event_type in settings.event_types)


def _age_hours(occurred_at: str, now: float) -> float | None:
    """How long ago the event occurred, or None when its time cannot be read."""
    try:
        instant = datetime.fromisoformat(occurred_at)
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return (now - instant.timestamp()) / 3600


def select(event: WebhookEvent, settings: Settings, now: float | None = None) -> Delivery | Ignored:
    """What this delivery may do, or why it is ignored (answered 2xx all the same). `now` (epoch seconds) judges
    the event's age; without it, or with MAX_EVENT_AGE_HOURS 0, no delivery is stale."""
    if event.event_type == "pagey.ping":
        return Ignored("ping", PING)
    starts = event.event_type in settings.event_types
    forward = event.event_type in settings.follow_up_event_types
    forward_if_early = event.event_type == RESOLVED and starts_early(settings)
    if not (starts or forward or forward_if_early):
        return Ignored(f"event type {event.event_type} is not configured to start a postmortem", EVENT_TYPE)
    limit = settings.max_event_age_hours
    if limit and now is not None and (age := _age_hours(event.occurred_at, now)) is not None and age > limit:
        # A v3 signature has no timestamp: a captured delivery stays valid for ever, and once the incident's ledger
        # item has expired a replay would start a new session. PagerDuty itself retries for 48 hours at most.
        return Ignored(
            f"event occurred {age:.0f} hours ago, more than MAX_EVENT_AGE_HOURS ({limit:g}): a stale or replayed"
            " delivery",
            STALE,
        )
    not_an_incident = Ignored(f"data type {event.data_type or '(none)'} is not an incident", DATA_TYPE)
    if event.data_type == "incident":
        incident: Incident | None = read_incident(event)
        incident_id = incident.id
    elif forward or forward_if_early:
        # A note, a status update, a responder…: it hangs off an incident, and only a session can take it.
        if not isinstance(event.data.get("incident"), dict):
            return not_an_incident
        incident, incident_id = None, incident_id_of(event)
    else:
        return not_an_incident
    if not starts:
        why: Ignored | None = Ignored(f"event type {event.event_type} does not start a postmortem", EVENT_TYPE)
    elif incident is None:
        why = not_an_incident
    else:
        why = _severity(incident, settings)
    if why is not None and not (forward or forward_if_early):
        return why
    return Delivery(event, incident_id, incident, why, forward, forward_if_early)
