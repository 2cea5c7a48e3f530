"""Changes and history in the evidence (issue 14, part 3): with the PagerDuty key, the change events PagerDuty relates
to the incident and its similar past incidents are read in the same budget as the record and go into the data block
with their ids; an account without the add-on they need, or a PagerDuty that fails them, still starts the session."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from local.http_server import Fault
from tests.support.events import api_event, incident
from tests.support.metrics import names

INCIDENT = "QCHANGES00001"
DATA = re.compile(r"<pagerduty-incident>\n(.*?)\n</pagerduty-incident>", re.S)
CHANGES = [
    {
        "id": "PCHG412",
        "type": "change_event",
        "summary": "Deploy 412 of checkout-service",
        "timestamp": "2026-03-14T09:05:00Z",
        "source": "github-actions",
        "services": [{"id": "PCK8V2Q", "type": "service_reference"}],  # {id, type}, as in PagerDuty's example
        "links": [{"href": "https://github.com/acme/checkout/pull/398", "text": "PR #398"}],
        "correlation_reason": {"reason": "most_recent"},
    },
    {
        "id": "PCHGFLAG",
        "type": "change_event",
        "summary": "Feature flag new-pricing on",
        "timestamp": "2026-03-14T02:50:00-06:00",
        "correlation_reason": {"reason": "related_service"},
    },
]
PAST = [  # PagerDuty's shape: incident{id, created_at, self, title} and a score that is not 0-1
    {
        "incident": {
            "id": "Q3PASTINC0001",
            "created_at": "2026-01-09T14:00:00Z",
            "self": "https://api.pagerduty.com/incidents/Q3PASTINC0001",
            "title": "Checkout API 5xx after deploy",
        },
        "score": 46.8249,
    }
]


def serve(pagerduty, **parts: Any) -> None:  # noqa: ANN001 - the PagerDutyStandIn fixture
    pagerduty.add_incident(INCIDENT, **{"change_events": CHANGES, "past_incidents": PAST, **parts})


def start(invoke, devin) -> dict[str, Any]:  # noqa: ANN001 - fixtures
    answer = invoke(api_event(incident(INCIDENT)))
    assert answer.body["status"] == "started", answer.body
    return devin.create_requests()[-1].json()


def data_block(request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(DATA.search(request["prompt"]).group(1))


def outside(request: dict[str, Any]) -> str:
    return DATA.sub("", request["prompt"])


def test_change_events_and_past_incidents_are_in_the_data_block_with_their_ids(
    pagerduty_reads, pagerduty, invoke, devin
) -> None:
    serve(pagerduty)

    request = start(invoke, devin)

    data = data_block(request)
    assert [change["id"] for change in data["changes"]] == ["PCHGFLAG", "PCHG412"]  # in time order
    assert data["changes"][1] == {
        "id": "PCHG412",
        "at": "2026-03-14T09:05:00Z",
        "summary": "Deploy 412 of checkout-service",
        "source": "github-actions",
        "services": ["PCK8V2Q"],
        "correlation": "most_recent",
        "links": ["https://github.com/acme/checkout/pull/398"],
    }
    assert data["recurrence"] == [
        {
            "id": "Q3PASTINC0001",
            "title": "Checkout API 5xx after deploy",
            "created_at": "2026-01-09T14:00:00Z",
            "api_url": "https://api.pagerduty.com/incidents/Q3PASTINC0001",
            "score": 46.8249,
        }
    ]
    past_reads = [r for r in pagerduty.requests if r.path.endswith("/past_incidents")]
    assert [r.query for r in past_reads] == [{"limit": ["5"]}]


def test_the_instructions_ask_for_a_verdict_on_each_change_and_a_look_at_earlier_postmortems(
    pagerduty_reads, pagerduty, invoke, devin
) -> None:
    serve(pagerduty)

    words = outside(start(invoke, devin))

    assert 'Give every change event in "changes" a verdict' in words
    assert 'Check the earlier postmortems under docs/postmortems/ for the past incidents in "recurrence"' in words


def test_the_prompt_says_what_pagerduty_does_not_give_of_a_past_incident_and_what_its_score_is(
    pagerduty_reads, pagerduty, invoke, devin
) -> None:
    serve(pagerduty)

    words = outside(start(invoke, devin))

    assert (
        "PagerDuty gives neither a past incident's number nor its web page: refer to one by its id and title" in words
    )
    assert '"api_url" is its address in PagerDuty\'s REST API, which needs an API key' in words
    assert "a figure on a scale PagerDuty does not document" in words


@pytest.mark.parametrize("status", [402, 403, 404])
def test_an_account_without_the_add_on_still_starts_the_session_and_is_not_counted_as_a_failure(
    pagerduty_reads, pagerduty, invoke, devin, capsys, status: int
) -> None:
    serve(pagerduty)
    pagerduty.enqueue("related_change_events", Fault.status(status))
    pagerduty.enqueue("past_incidents", Fault.status(status))

    request = start(invoke, devin)

    data = data_block(request)
    assert "changes" not in data and "recurrence" not in data
    assert "timeline" in data and "computed" in data
    assert f"the related change events (PagerDuty did not list related change events (HTTP {status})" in outside(
        request
    )
    assert "PagerDutyReadFailed" not in names(capsys.readouterr().out)


@pytest.mark.parametrize(
    "fault",
    [Fault.status(500), Fault.status(429), Fault.reset()],
    ids=["500", "429", "reset"],
)
def test_a_failing_read_of_the_history_still_starts_the_session_and_says_so(
    pagerduty_reads, pagerduty, invoke, devin, capsys, fault: Fault
) -> None:
    serve(pagerduty)
    pagerduty.enqueue("past_incidents", *[fault] * 3)

    request = start(invoke, devin)

    assert "recurrence" not in data_block(request)
    assert data_block(request)["changes"]
    assert "Part of PagerDuty's record is unavailable: the past incidents (" in outside(request)
    assert "PagerDutyReadFailed" in names(capsys.readouterr().out)


def test_the_two_extra_reads_share_the_budget_of_the_record(
    pagerduty_reads, pagerduty, invoke, devin, monkeypatch
) -> None:
    # GIVEN a 1 s budget and a PagerDuty that holds the change events far longer
    monkeypatch.setenv("PAGERDUTY_READ_SECONDS", "1")
    serve(pagerduty)
    pagerduty.enqueue("related_change_events", *[Fault.delay(30)] * 3)

    began = time.monotonic()
    request = start(invoke, devin)
    took = time.monotonic() - began

    assert took < 1.0 + 0.7, f"the delivery took {took:.2f} s with a 1 s budget"
    assert "timeline" in data_block(request) and "changes" not in data_block(request)
    assert "the related change events (PagerDuty did not answer within the 1 s budget)" in outside(request)


def test_a_message_about_what_happened_since_reads_neither(pagerduty_reads, pagerduty, invoke, devin, monkeypatch):
    monkeypatch.setenv("EVENT_TYPES", "incident.triggered,incident.resolved")
    serve(pagerduty)
    triggered = incident(INCIDENT)
    triggered["event"]["event_type"] = "incident.triggered"
    triggered["event"]["id"] = "01JPTRIGGERED0000000000000"
    assert invoke(api_event(triggered)).body["status"] == "started"
    pagerduty.requests.clear()

    assert invoke(api_event(incident(INCIDENT))).body["status"] == "messaged"

    read = {r.path.rsplit("/", 1)[-1] for r in pagerduty.requests if r.method == "GET"}
    assert read == {"log_entries", "notes", "alerts"}
