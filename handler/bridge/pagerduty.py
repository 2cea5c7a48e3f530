"""Reads a verified PagerDuty v3 webhook body into plain values, defensively: fields come and go across versions."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest

# Per-field caps: incident text comes from outside and ends up in a prompt, a tag and a table item.
TITLE_LIMIT = 300
NAME_LIMIT = 200
URL_LIMIT = 500
TIME_LIMIT = 40
# DynamoDB numbers carry at most 38 significant digits; a larger incident number cannot be stored.
NUMBER_LIMIT = 10**38

# PagerDuty ids are short alphanumerics (7 or 14 characters seen); anything else is not a PagerDuty id.
_INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def clean_text(value: Any, limit: int) -> str:
    """A string field on one line, with control and format characters (bidi overrides too) removed, capped.

    Otherwise kept exactly as PagerDuty sent it: the service tag must match the service name.
    """
    if not isinstance(value, str):
        return ""
    if value.isprintable():
        # Nearly every field. isprintable() is False for every character of the C* categories (and the Z*
        # ones but " "), so there is nothing to remove; the loop below was a third of an ignored delivery's time.
        kept = value
    else:
        kept = "".join(
            " " if char in "\t\n\r" else char
            for char in value
            if char in "\t\n\r" or unicodedata.category(char) not in ("Cc", "Cf", "Cs")
        )
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    event_type: str
    occurred_at: str
    data_type: str
    data: Mapping[str, Any]


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
    )


def read_incident(event: WebhookEvent) -> Incident:
    """The incident carried directly in `event.data` (data.type == "incident")."""
    data = event.data
    incident_id = data.get("id")
    if not isinstance(incident_id, str) or not _INCIDENT_ID.fullmatch(incident_id):
        raise BadRequest("incident has no valid id")
    number = data.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or abs(number) >= NUMBER_LIMIT:
        number = None
    service = _object(data.get("service"))
    priority = clean_text(_object(data.get("priority")).get("summary"), NAME_LIMIT) or None
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
        merged=_object(data.get("resolve_reason")).get("type") == "merge_resolve_reason",
    )
