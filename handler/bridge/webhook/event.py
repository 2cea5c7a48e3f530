"""Reads a verified PagerDuty v3 webhook body into plain values, defensively: fields come and go across versions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest
from ..text import clean_text

# Per-field caps: incident text comes from outside and ends up in a prompt, a tag and a table item.
TITLE_LIMIT = 300
NAME_LIMIT = 200
URL_LIMIT = 500
TIME_LIMIT = 40
# A responder's note (incident.annotated): longer than a title, still bounded.
NOTE_LIMIT = 1000
# Teams and assignees read from an incident; PagerDuty incidents rarely carry more than a few.
REFERENCES_LIMIT = 20
# DynamoDB numbers carry at most 38 significant digits; a larger incident number cannot be stored.
NUMBER_LIMIT = 10**38

# PagerDuty ids are short alphanumerics (7 or 14 characters seen); anything else is not a PagerDuty id.
_INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    event_type: str
    occurred_at: str
    data_type: str
    data: Mapping[str, Any]
    agent: str = ""  # who or what caused the event (`agent.summary`); empty when PagerDuty sends none


@dataclass(frozen=True)
class Note:
    """A responder's note, as incident.annotated carries it (data.type "incident_note")."""

    incident_id: str
    content: str


@dataclass(frozen=True)
class Incident:
    id: str
    number: int | None
    title: str
    status: str
    urgency: str
    priority: str | None
    service_id: str
    service_name: str
    html_url: str
    created_at: str
    merged: bool
    team_ids: tuple[str, ...] = ()
    team_names: tuple[str, ...] = ()
    merged_into: str = ""  # the incident it was merged into, when `merged`
    assignees: tuple[str, ...] = ()  # who it is assigned to now (names)


def parse_event(raw_body: bytes) -> WebhookEvent:
    """The v3 envelope `{"event": {...}}`; anything else is a 400."""
    try:
        document = json.loads(raw_body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise BadRequest("body is not JSON") from error
    event = document.get("event") if isinstance(document, dict) else None
    if not isinstance(event, dict):
        raise BadRequest("body is not a PagerDuty v3 webhook: no event object")
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise BadRequest("event has no event_type")
    data = _object(event.get("data"))
    return WebhookEvent(
        id=clean_text(event.get("id"), NAME_LIMIT),
        event_type=clean_text(event_type, NAME_LIMIT),
        occurred_at=clean_text(event.get("occurred_at"), TIME_LIMIT),
        data_type=clean_text(data.get("type"), NAME_LIMIT),
        data=data,
        agent=clean_text(_object(event.get("agent")).get("summary"), NAME_LIMIT),
    )


def _valid_id(value: Any) -> str:
    if not isinstance(value, str) or not _INCIDENT_ID.fullmatch(value):
        raise BadRequest("incident has no valid id")
    return value


def incident_id_of(event: WebhookEvent) -> str:
    """The incident an event is about: `data.id` for incident data, `data.incident.id` for what hangs off one."""
    if event.data_type == "incident":
        return _valid_id(event.data.get("id"))
    return _valid_id(_object(event.data.get("incident")).get("id"))


def read_note(event: WebhookEvent) -> Note:
    """The note of an incident.annotated event."""
    return Note(incident_id=incident_id_of(event), content=clean_text(event.data.get("content"), NOTE_LIMIT))


def _references(value: Any) -> list[Mapping[str, Any]]:
    return [_object(item) for item in value[:REFERENCES_LIMIT]] if isinstance(value, list) else []


def read_incident(event: WebhookEvent) -> Incident:
    """The incident carried directly in `event.data` (data.type == "incident")."""
    data = event.data
    incident_id = _valid_id(data.get("id"))
    number = data.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or abs(number) >= NUMBER_LIMIT:
        number = None
    service = _object(data.get("service"))
    priority = clean_text(_object(data.get("priority")).get("summary"), NAME_LIMIT) or None
    teams = _references(data.get("teams"))
    resolve_reason = _object(data.get("resolve_reason"))
    merged = resolve_reason.get("type") == "merge_resolve_reason"
    return Incident(
        id=incident_id,
        number=number,
        title=clean_text(data.get("title"), TITLE_LIMIT),
        status=clean_text(data.get("status"), NAME_LIMIT),
        urgency=clean_text(data.get("urgency"), NAME_LIMIT),
        priority=priority,
        service_id=clean_text(service.get("id"), NAME_LIMIT),
        service_name=clean_text(service.get("summary"), NAME_LIMIT),
        html_url=clean_text(data.get("html_url"), URL_LIMIT),
        created_at=clean_text(data.get("created_at"), TIME_LIMIT),
        merged=merged,
        team_ids=tuple(filter(None, (clean_text(team.get("id"), NAME_LIMIT) for team in teams))),
        team_names=tuple(filter(None, (clean_text(team.get("summary"), NAME_LIMIT) for team in teams))),
        merged_into=clean_text(_object(resolve_reason.get("incident")).get("id"), NAME_LIMIT) if merged else "",
        assignees=tuple(
            filter(None, (clean_text(user.get("summary"), NAME_LIMIT) for user in _references(data.get("assignees"))))
        ),
    )
