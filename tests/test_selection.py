"""Which deliveries start a postmortem: event types, data types, the severity rule, merges. All others get 2xx."""

from __future__ import annotations

import pytest

from tests.conftest import ledger_items
from tests.support.events import api_event, incident, payload

P1 = {"summary": "P1", "id": "PSO75BM", "type": "priority_reference"}


def _ignored(answer) -> str:
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "ignored"
    return answer.body["reason"]


def test_ping_is_ignored_with_2xx(invoke, devin) -> None:
    assert _ignored(invoke(api_event(payload("pagey-ping.json")))) == "ping"
    assert devin.requests == []


def test_an_event_type_not_configured_is_ignored(invoke, devin) -> None:
    reason = _ignored(invoke(api_event(payload("incident-triggered-p1.json"))))

    assert "incident.triggered" in reason
    assert devin.requests == []
    assert ledger_items() == []


def test_a_configured_event_type_whose_data_is_not_an_incident_is_ignored(invoke, monkeypatch) -> None:
    monkeypatch.setenv("EVENT_TYPES", "incident.resolved,incident.annotated")

    assert "incident_note" in _ignored(invoke(api_event(payload("incident-annotated.json"))))


def test_event_types_setting_lets_other_events_start_a_session(invoke, devin, monkeypatch) -> None:
    monkeypatch.setenv("EVENT_TYPES", "incident.resolved, incident.triggered")

    answer = invoke(api_event(payload("incident-triggered-p1.json")))

    assert answer.body["status"] == "started"
    assert "reported incident.triggered" in devin.create_requests()[0].json()["prompt"]


def test_a_merged_incident_is_ignored(invoke, devin) -> None:
    assert "merged" in _ignored(invoke(api_event(payload("incident-resolved-merged.json"))))
    assert devin.requests == []


@pytest.mark.parametrize(
    ("priority", "urgency", "starts"),
    [
        ("P1", "low", True),  # a priority decides on its own, whatever the urgency
        ("P2", "high", True),
        ("P3", "high", False),
        ("p1", "high", True),  # labels compare without regard to case
        (None, "high", True),  # no priority: the urgency decides
        (None, "low", False),
    ],
)
def test_severity_rule_with_defaults(invoke, devin, priority, urgency, starts) -> None:
    body = incident(priority={**P1, "summary": priority} if priority else None, urgency=urgency)

    answer = invoke(api_event(body))

    assert answer.status == 200
    assert answer.body["status"] == ("started" if starts else "ignored")
    assert len(devin.create_requests()) == (1 if starts else 0)


def test_priorities_setting_changes_the_threshold(invoke, monkeypatch) -> None:
    monkeypatch.setenv("PRIORITIES", "SEV-1")

    assert invoke(api_event(incident(priority={**P1, "summary": "SEV-1"}))).body["status"] == "started"
    assert invoke(api_event(incident("Q9OTHER", priority=P1))).body["status"] == "ignored"


def test_a_star_accepts_any_priority_or_urgency(invoke, monkeypatch) -> None:
    monkeypatch.setenv("PRIORITIES", "*")
    monkeypatch.setenv("URGENCIES", "*")

    assert invoke(api_event(incident("QA", priority={**P1, "summary": "P5"}))).body["status"] == "started"
    assert invoke(api_event(incident("QB", priority=None, urgency="low"))).body["status"] == "started"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"event": "incident.resolved"}',
        b'{"event": {"data": {}}}',
        b'{"messages": []}',
    ],
)
def test_an_authenticated_body_that_is_not_a_v3_envelope_gets_400(invoke, devin, body: bytes) -> None:
    answer = invoke(api_event(body))

    assert answer.status == 400
    assert devin.requests == []


@pytest.mark.parametrize("incident_id", [None, "", 42, "Q2/../../x", "x" * 65])
def test_an_incident_without_a_usable_id_gets_400(invoke, devin, incident_id) -> None:
    answer = invoke(api_event(incident(incident_id)))

    assert answer.status == 400
    assert devin.requests == []


def test_fields_of_the_wrong_type_do_not_break_a_qualifying_incident(invoke, devin) -> None:
    body = incident(title=["x"], number="1042", service="Checkout", created_at=7, html_url=None, urgency="high")
    body["event"]["data"]["priority"] = None

    answer = invoke(api_event(body))

    assert answer.body["status"] == "started"
    assert devin.create_requests()[0].json()["title"] == "Postmortem: PagerDuty incident Q2CKYRLH85UNN4"
