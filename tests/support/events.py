"""Builds HTTP API (payload 2.0) events around PagerDuty bodies, signed like PagerDuty signs them."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from scripts.make_events import TEST_SIGNING_SECRET, sign

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
PAYLOADS = EVENTS / "payloads"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def payload(name: str = "incident-resolved-p1.json") -> dict[str, Any]:
    """A copy of a sample PagerDuty body, to change before sending."""
    return copy.deepcopy(json.loads((PAYLOADS / name).read_text(encoding="utf-8")))


def incident(incident_id: str = "Q2CKYRLH85UNN4", **data: Any) -> dict[str, Any]:
    """The P1 resolve sample for another incident id, with `data` fields replaced."""
    body = payload()
    body["event"]["data"]["id"] = incident_id
    body["event"]["data"].update(data)
    return body


def api_event(
    body: dict[str, Any] | bytes | str,
    *,
    secret: str | None = TEST_SIGNING_SECRET,
    headers: dict[str, str] | None = None,
    base64_encoded: bool = False,
    webhook_id: str = "3a9b6f0e-6c2d-4a8e-9b1f-0d2c4e6a8b10",
) -> dict[str, Any]:
    """An API Gateway event for `body`, signed with `secret` (None: unsigned), with extra `headers`."""
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body
    all_headers = {
        "content-type": "application/json",
        "user-agent": "PagerDuty-Webhook/V3.0",
        "x-webhook-id": webhook_id,
        "x-webhook-subscription": "PXSUIZH",
    }
    if secret is not None:
        all_headers["x-pagerduty-signature"] = sign(raw, secret)
    all_headers.update(headers or {})
    return {
        "version": "2.0",
        "routeKey": "POST /pagerduty",
        "rawPath": "/pagerduty",
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": "POST",
                "path": "/pagerduty",
                "protocol": "HTTP/1.1",
                "sourceIp": "44.242.69.192",
                "userAgent": "PagerDuty-Webhook/V3.0",
            },
            "requestId": "test-request",
            "routeKey": "POST /pagerduty",
            "stage": "$default",
            "time": "14/Mar/2026:10:30:00 +0000",
            "timeEpoch": 1773484200000,
        },
        "isBase64Encoded": base64_encoded,
        "body": base64.b64encode(raw).decode() if base64_encoded else raw.decode(),
    }


def incident_event(
    event_type: str,
    event_id: str,
    occurred_at: str,
    incident_id: str = "Q2CKYRLH85UNN4",
    **data: Any,
) -> dict[str, Any]:
    """Another event in the life of the P1 sample incident (acknowledged, reopened, priority_updated…): the same
    incident data with `data` fields replaced (pass `status=` for an open incident), its own event id and time."""
    body = incident(incident_id, **data)
    body["event"].update({"id": event_id, "event_type": event_type, "occurred_at": occurred_at})
    return body


def note_event(event_id: str, occurred_at: str, content: str, incident_id: str = "Q2CKYRLH85UNN4") -> dict[str, Any]:
    """incident.annotated for `incident_id`: data.type incident_note, the incident by reference."""
    body = payload("incident-annotated.json")
    body["event"].update({"id": event_id, "occurred_at": occurred_at})
    body["event"]["data"]["incident"]["id"] = incident_id
    body["event"]["data"]["content"] = content
    return body
