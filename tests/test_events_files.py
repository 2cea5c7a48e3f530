"""Checks that the sample events in events/ are current, correctly signed, well-formed and real-shaped.

The handler's tests invoke every event with the answer in scripts.make_events.EXPECTED; these tests make sure
the files they read are what the generator produces and what PagerDuty and API Gateway would really send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from scripts.make_events import (
    EVENTS_DIR,
    EXPECTED,
    LIFECYCLE,
    PAYLOADS_DIR,
    TEST_SIGNING_SECRET,
    build_events,
    render,
    sign,
)

GENERATED = build_events()
# Events that carry a deliberately wrong or no signature; every other one must verify.
FORGED = {"bad-signature-unauthorized.json", "missing-signature-unauthorized.json"}
PAYLOAD_FILES = sorted(PAYLOADS_DIR.glob("*.json"))
REGENERATE = "events/ are stale: run `python scripts/make_events.py` and commit the result"


def _load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def _raw_body(event: dict[str, Any]) -> bytes:
    # What PagerDuty put on the wire: API Gateway base64-encodes it when isBase64Encoded is true.
    body = event["body"]
    return base64.b64decode(body, validate=True) if event["isBase64Encoded"] else body.encode("utf-8")


def _expected_signature(raw: bytes) -> str:
    # Computed here rather than with make_events.sign, so a bug in sign() cannot hide itself.
    return hmac.new(TEST_SIGNING_SECRET.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def _signatures(event: dict[str, Any]) -> list[str]:
    header = event["headers"].get("x-pagerduty-signature", "")
    return [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]


# (a) no drift


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_committed_event_matches_generator(name: str) -> None:
    path = EVENTS_DIR / name
    assert path.is_file(), f"events/{name} is missing: {REGENERATE}"
    # Byte comparison: the files are what the handler tests and `sam local invoke` read.
    assert path.read_bytes() == render(GENERATED[name]).encode("utf-8"), f"events/{name} differs: {REGENERATE}"


def test_generator_is_deterministic() -> None:
    assert build_events() == GENERATED


def test_sign_matches_pagerduty_scheme() -> None:
    # Known answer computed independently (RFC 2104 HMAC-SHA256, hex), not by the code under test.
    body = b'{"event":{}}'
    want = "v1=" + hmac.new(b"pd-test-signing-secret", body, hashlib.sha256).hexdigest()
    assert sign(body, TEST_SIGNING_SECRET) == want
    assert len(want) == 3 + 64


# (b) signatures


@pytest.mark.parametrize("name", sorted(set(GENERATED) - FORGED))
def test_signature_verifies_with_test_secret(name: str) -> None:
    event = _load(name)
    sigs = _signatures(event)
    assert sigs, f"{name} has no v1 signature"
    assert any(hmac.compare_digest(_expected_signature(_raw_body(event)), sig) for sig in sigs)


def test_bad_signature_event_is_signed_but_not_with_test_secret() -> None:
    event = _load("bad-signature-unauthorized.json")
    sigs = _signatures(event)
    # A forged signature must still look like a real one, so only its value can cause the 401.
    assert len(sigs) == 1
    assert len(sigs[0]) == 64
    assert not hmac.compare_digest(_expected_signature(_raw_body(event)), sigs[0])
    # Same body as the event that starts a session: only the signature can explain a different answer.
    assert event["body"] == _load("resolved-p1-starts-session.json")["body"]


def test_missing_signature_event_has_no_signature_header() -> None:
    event = _load("missing-signature-unauthorized.json")
    assert "x-pagerduty-signature" not in event["headers"]
    assert event["body"] == _load("resolved-p1-starts-session.json")["body"]


def test_base64_event_carries_the_same_delivery_as_the_plain_one() -> None:
    plain = _load("resolved-p1-starts-session.json")
    encoded = _load("resolved-p1-base64-body.json")
    assert encoded["isBase64Encoded"] is True
    assert plain["isBase64Encoded"] is False
    assert _raw_body(encoded) == _raw_body(plain)
    assert encoded["headers"]["x-pagerduty-signature"] == plain["headers"]["x-pagerduty-signature"]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_body_is_the_payload_file_bytes_or_a_deliberately_broken_body(name: str) -> None:
    raw = _raw_body(_load(name))
    assert _load(name)["headers"]["content-length"] == str(len(raw))
    if name.endswith("-bad-request.json"):
        return
    # The body must be a payload file byte for byte (not re-serialised), or the signature would be over
    # something PagerDuty never sends.
    assert raw in {path.read_bytes() for path in PAYLOAD_FILES}


def test_bad_request_bodies_are_unreadable_envelopes() -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(_raw_body(_load("malformed-body-bad-request.json")))
    parsed = json.loads(_raw_body(_load("no-event-object-bad-request.json")))
    assert not isinstance(parsed.get("event"), dict)


# (c) well-formed HTTP API payload 2.0 events


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_event_is_http_api_v2(name: str) -> None:
    event = _load(name)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /pagerduty"
    assert event["rawPath"] == "/pagerduty"
    assert event["rawQueryString"] == ""
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["stage"] == "$default"
    assert isinstance(event["requestContext"]["timeEpoch"], int)
    assert isinstance(event["body"], str)
    assert isinstance(event["isBase64Encoded"], bool)
    # HTTP API lowercases header names; a handler that only works with lowercase names must still be tested
    # against what API Gateway really sends, and nothing else.
    assert all(key == key.lower() for key in event["headers"])
    assert all(isinstance(value, str) for value in event["headers"].values())
    assert event["headers"]["user-agent"] == "PagerDuty-Webhook/V3.0"
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-webhook-subscription"]
    assert event["headers"]["x-webhook-id"]

    parsed = APIGatewayProxyEventV2(event)
    assert parsed.raw_path == "/pagerduty"
    assert parsed.route_key == "POST /pagerduty"
    assert parsed.request_context.http.method == "POST"
    assert parsed.request_context.http.source_ip == event["headers"]["x-forwarded-for"]
    assert parsed.request_context.stage == "$default"
    assert parsed.is_base64_encoded is event["isBase64Encoded"]
    assert parsed.decoded_body == _raw_body(event).decode("utf-8")


def test_every_event_is_a_distinct_delivery() -> None:
    events = [_load(name) for name in GENERATED]
    assert len({event["headers"]["x-webhook-id"] for event in events}) == len(events)
    assert len({event["requestContext"]["requestId"] for event in events}) == len(events)


# (d) real-shaped PagerDuty v3 payloads

INCIDENT_REFERENCE_KEYS = {"id", "type", "self", "html_url", "summary"}


def _check_reference(ref: Any, kind: str) -> None:
    assert isinstance(ref, dict), ref
    assert ref.keys() >= INCIDENT_REFERENCE_KEYS, ref
    assert ref["type"] == f"{kind}_reference"


def test_payload_directory_has_the_documented_files() -> None:
    assert {path.name for path in PAYLOAD_FILES} >= {
        "incident-resolved-p1.json",
        "incident-resolved-low-urgency.json",
        "incident-resolved-merged.json",
        "incident-triggered-p1.json",
        "incident-annotated.json",
        "pagey-ping.json",
        *(name for name, _ in LIFECYCLE),
    }


@pytest.mark.parametrize("path", PAYLOAD_FILES, ids=lambda path: path.name)
def test_payload_is_a_v3_envelope(path: Path) -> None:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    doc = json.loads(raw.decode("utf-8"))
    assert set(doc) == {"event"}, "a v3 delivery holds exactly one event"
    event = doc["event"]
    for key in ("id", "event_type", "resource_type", "occurred_at"):
        assert isinstance(event[key], str), key
        assert event[key], key
    assert event["event_type"].split(".")[0] == event["resource_type"]
    # occurred_at carries milliseconds, e.g. 2026-03-14T10:03:18.412Z.
    assert len(event["occurred_at"]) == 24
    assert event["occurred_at"].endswith("Z")
    assert "agent" in event
    assert "client" in event
    assert isinstance(event["data"]["type"], str)

    data = event["data"]
    if data["type"] == "incident":
        assert isinstance(data["id"], str)
        assert len(data["id"]) == 14
        assert isinstance(data["number"], int)
        assert not isinstance(data["number"], bool)
        assert isinstance(data["title"], str)
        assert data["title"]
        _check_reference(data["service"], "service")
        assert data["service"]["summary"] == "Checkout API"
        assert data["urgency"] in {"high", "low"}
        assert data["status"] in {"triggered", "acknowledged", "resolved"}
        # Set once the incident has been reopened, and then on every later event.
        assert data["reopened_at"] is None or (data["reopened_at"].endswith("Z") and len(data["reopened_at"]) == 20)
        assert data["html_url"] == f"https://acme.pagerduty.com/incidents/{data['id']}"
        assert data["self"] == f"https://api.pagerduty.com/incidents/{data['id']}"
        assert isinstance(data["created_at"], str)
        assert data["created_at"].endswith("Z")
        assert data["priority"] is None or data["priority"]["type"] == "priority_reference"
        # v3 incident data has no resolved_at: the resolution time is event.occurred_at.
        assert "resolved_at" not in data
        if data["status"] == "resolved":
            assert data["assignees"] == []
        if data["resolve_reason"] is not None:
            assert data["resolve_reason"]["type"] == "merge_resolve_reason"
            _check_reference(data["resolve_reason"]["incident"], "incident")
    elif data["type"] == "incident_note":
        _check_reference(data["incident"], "incident")
        assert isinstance(data["content"], str)
        assert data["trimmed"] is False
    elif data["type"] == "ping":
        assert event["event_type"] == "pagey.ping"
        assert event["resource_type"] == "pagey"
        assert data["message"] == "Hello from your friend Pagey!"


def test_payloads_tell_a_consistent_story() -> None:
    def load(name: str) -> dict[str, Any]:
        return json.loads((PAYLOADS_DIR / name).read_text(encoding="utf-8"))["event"]

    resolved = load("incident-resolved-p1.json")
    triggered = load("incident-triggered-p1.json")
    low = load("incident-resolved-low-urgency.json")
    merged = load("incident-resolved-merged.json")
    note = load("incident-annotated.json")
    assert resolved["data"]["priority"]["summary"] == "P1"
    assert resolved["data"]["urgency"] == "high"
    assert resolved["data"]["status"] == "resolved"
    assert resolved["data"]["resolve_reason"] is None
    assert triggered["data"]["id"] == resolved["data"]["id"]
    assert triggered["data"]["status"] == "triggered"
    assert triggered["data"]["assignees"], "a triggered incident is assigned"
    assert low["data"]["priority"] is None
    assert low["data"]["urgency"] == "low"
    assert low["data"]["id"] != resolved["data"]["id"]
    assert merged["data"]["priority"]["summary"] == "P2"
    assert merged["data"]["urgency"] == "high"
    assert merged["data"]["resolve_reason"]["incident"]["id"] == resolved["data"]["id"]
    assert merged["data"]["id"] not in {resolved["data"]["id"], low["data"]["id"]}
    assert note["data"]["incident"]["id"] == resolved["data"]["id"]
    event_ids = [event["id"] for event in (resolved, triggered, low, merged, note)]
    assert len(set(event_ids)) == len(event_ids)
    # The trigger is the incident's creation.
    assert triggered["occurred_at"][:19] == triggered["data"]["created_at"][:19]


def _incident_of(event: dict[str, Any]) -> str:
    data = event["data"]
    return data["id"] if data["type"] == "incident" else data["incident"]["id"]


def test_the_lifecycle_samples_are_one_incident_of_its_own_in_the_order_it_happened() -> None:
    every = {path.name: json.loads(path.read_text(encoding="utf-8"))["event"] for path in PAYLOAD_FILES}
    story = [every[name] for name, _ in LIFECYCLE]

    # One incident, and no other sample is about it (nor merged into it)
    [incident_id] = {_incident_of(event) for event in story}
    others = [e for name, e in every.items() if e not in story and e["data"]["type"] in ("incident", "incident_note")]
    assert incident_id not in {_incident_of(e) for e in others}
    assert incident_id not in {(e["data"].get("resolve_reason") or {}).get("incident", {}).get("id") for e in others}
    # In the order LIFECYCLE lists it, each later than the one before, all after the incident was created
    assert [e["event_type"] for e in story] == [
        "incident.acknowledged",
        "incident.annotated",
        "incident.resolved",
        "incident.reopened",
        "incident.resolved",
    ]
    instants = [datetime.fromisoformat(e["occurred_at"]) for e in story]
    assert instants == sorted(instants) and len(set(instants)) == len(instants)
    incidents = [e["data"] for e in story if e["data"]["type"] == "incident"]
    assert {d["created_at"] for d in incidents} == {incidents[0]["created_at"]}
    assert datetime.fromisoformat(incidents[0]["created_at"]) < instants[0]
    assert [d["status"] for d in incidents] == ["acknowledged", "resolved", "triggered", "resolved"]
    # The reopening is in every event after it, and in none before
    reopened_at = story[3]["occurred_at"][:19] + "Z"
    assert [d["reopened_at"] for d in incidents] == [None, None, reopened_at, reopened_at]
    # The same incident every time: its number, title, key, service and priority do not change
    facts = {(d["number"], d["title"], d["incident_key"], d["service"]["id"], d["priority"]["id"]) for d in incidents}
    assert len(facts) == 1
    # Every event of every sample is a delivery of its own
    assert len({e["id"] for e in every.values()}) == len(every)


# (e) one expected answer per generated event


def test_expected_has_exactly_one_entry_per_generated_event() -> None:
    assert set(EXPECTED) == set(GENERATED)
    for name, (status, answer) in EXPECTED.items():
        assert status in {200, 400, 401}, name
        # Only forged or unreadable requests may get a 4xx: PagerDuty drops those and may disable the hook.
        assert (answer is None) == (status >= 400), name
        assert answer in {None, "started", "ignored"}, name


def test_every_event_file_name_says_what_it_shows() -> None:
    suffixes = {
        "-starts-session.json": (200, "started"),
        "-ignored.json": (200, "ignored"),
        "-unauthorized.json": (401, None),
        "-bad-request.json": (400, None),
    }
    for name, expected in EXPECTED.items():
        matching = [want for suffix, want in suffixes.items() if name.endswith(suffix)]
        if matching:
            assert matching == [expected], name
        else:
            assert name == "resolved-p1-base64-body.json"
            assert expected == (200, "started")
