"""PagerDuty's own record in the prompt: what Devin reads when the deployment has a PagerDuty key, how the reads keep
to their budget, what the prompt says when PagerDuty fails, and that nothing changes without the key."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from local.devin_standin import Fault
from local.pagerduty_standin import sample_record
from tests.conftest import PAGERDUTY_KEY, FakeContext
from tests.support.events import api_event, incident, payload
from tests.support.metrics import names as metric_names

INCIDENT = "Q2CKYRLH85UNN4"
DATA = re.compile(r"<pagerduty-incident>\n(.*?)\n</pagerduty-incident>", re.S)


def start(invoke, devin, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = invoke(api_event(body or payload()))
    assert (answer.status, answer.body["status"]) == (200, "started"), answer.body
    return devin.create_requests()[-1].json()


def data_block(request: dict[str, Any]) -> dict[str, Any]:
    (block,) = DATA.findall(request["prompt"])
    return json.loads(block)


def pagerduty_calls(pagerduty) -> list[tuple[str, str]]:  # noqa: ANN001 - the PagerDutyStandIn fixture
    return [(r.method, r.path.rsplit("/", 1)[-1]) for r in pagerduty.requests]


def entry(at: str, kind: str, summary: str, who: str = "Dana Whitfield", channel: str = "website") -> dict[str, Any]:
    return {
        "id": f"R{abs(hash((at, kind))) % 10**12:012d}",
        "type": f"{kind}_log_entry",
        "summary": summary,
        "created_at": at,
        "agent": {"id": "PUSER01", "type": "user_reference", "summary": who},
        "channel": {"type": channel},
    }


def test_the_prompt_carries_the_timeline_alerts_and_notes_in_time_order(
    pagerduty_reads, pagerduty, invoke, devin
) -> None:
    # GIVEN PagerDuty answers newest first, with one pair out of order and mixed offsets
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))

    data = data_block(start(invoke, devin))

    times = [item["at"] for item in data["timeline"]]
    assert times == sorted(times)
    assert all(at.endswith("Z") for at in times)
    assert [item["kind"] for item in data["timeline"]][0] == "trigger"
    assert data["timeline"][-1]["kind"] == "resolve"
    assert {"id", "at", "what", "who", "channel", "kind"} == set(data["timeline"][0])
    assert len(data["alerts"]) == 2
    assert [alert["at"] for alert in data["alerts"]] == sorted(alert["at"] for alert in data["alerts"])
    assert {"id", "at", "severity", "status", "summary", "details"} == set(data["alerts"][0])
    assert len(data["notes"]) == 2
    assert {"id", "at", "author", "content"} == set(data["notes"][0])
    # Each entry is cited by PagerDuty's own id.
    assert data["timeline"][0]["id"] == sample_record(INCIDENT)["log_entries"][-1]["id"]
    # The webhook's facts are still there, unchanged.
    assert data["incident_id"] == INCIDENT
    assert data["title"] == "Checkout API 5xx error rate above 5% — payments failing"


def test_the_prompt_asks_to_ground_the_timeline_in_the_record_and_cite_it(pagerduty_reads, pagerduty, invoke, devin):
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))

    prompt = start(invoke, devin)["prompt"]

    outside = DATA.sub("", prompt)
    assert "Ground the timeline in these entries and cite each one" in outside
    assert "unavailable" not in outside


def test_every_page_of_a_long_incident_is_read_and_the_middle_left_out(pagerduty_reads, pagerduty, invoke, devin):
    # GIVEN 230 log entries, newest first, as PagerDuty lists them: three pages of 100
    entries = [entry(f"2026-03-14T09:{n // 60:02d}:{n % 60:02d}Z", "notify", f"step {n}") for n in range(230)]
    pagerduty.add_incident(INCIDENT, log_entries=list(reversed(entries)), alerts=[], notes=[])

    request = start(invoke, devin)

    log_reads = [r for r in pagerduty.requests if r.path.endswith("/log_entries")]
    assert [r.query.get("offset", ["0"])[0] for r in log_reads] == ["0", "100", "200"]
    timeline = data_block(request)["timeline"]
    assert [item["what"] for item in timeline] == [f"step {n}" for n in (*range(25), *range(205, 230))]
    assert data_block(request)["timeline_omitted"] == 180
    assert "180 log entries from the middle of the incident were left out" in request["prompt"]


def test_reads_use_the_key_and_pagerdutys_versioned_accept_header(pagerduty_reads, pagerduty, invoke, devin) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))

    start(invoke, devin)

    assert sorted(set(pagerduty_calls(pagerduty))) == [
        ("GET", "alerts"),
        ("GET", "log_entries"),
        ("GET", "notes"),
        ("GET", "past_incidents"),
        ("GET", "related_change_events"),
    ]
    for request in pagerduty.requests:
        assert request.headers["authorization"] == f"Token token={PAGERDUTY_KEY}"
        assert request.headers["accept"] == "application/vnd.pagerduty+json;version=2"
        assert request.path.startswith(f"/incidents/{INCIDENT}/")


def test_a_pagerduty_that_never_answers_costs_the_budget_and_the_session_still_starts(
    pagerduty_reads, pagerduty, invoke, devin, monkeypatch
) -> None:
    # GIVEN a budget of 1 s and a PagerDuty that holds every read far longer
    monkeypatch.setenv("PAGERDUTY_READ_SECONDS", "1")
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    for endpoint in ("log_entries", "alerts", "notes"):
        pagerduty.enqueue(endpoint, *[Fault.delay(30)] * 5)

    began = time.monotonic()
    request = start(invoke, devin)
    took = time.monotonic() - began

    assert took < 1.0 + 0.7, f"the delivery took {took:.2f} s with a 1 s budget"
    outside = DATA.sub("", request["prompt"])
    assert "Part of PagerDuty's record is unavailable" in outside
    for part in ("the log entries", "the alerts", "the responders' notes"):
        assert part in outside
    assert "timeline" not in data_block(request)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.status(401), "refused the API key"),
        (Fault.status(403), "did not allow the API key"),
        (Fault.status(404), "does not know this incident"),
        (Fault.status(429), "rate-limited"),
        (Fault.status(500), "server error"),
        (Fault.reset(), "could not"),
    ],
    ids=["401", "403", "404", "429", "500", "reset"],
)
def test_each_failure_of_one_part_still_starts_the_session_and_says_what_is_missing(
    pagerduty_reads, pagerduty, invoke, devin, logs, fault, words
) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.enqueue("alerts", *[fault] * 5)

    request = start(invoke, devin)

    outside = DATA.sub("", request["prompt"])
    (said,) = [line for line in outside.splitlines() if line.startswith("Part of PagerDuty's record is unavailable")]
    assert said.startswith("Part of PagerDuty's record is unavailable: the alerts (")
    assert words in said
    data = data_block(request)
    assert "alerts" not in data
    assert len(data["timeline"]) == 8
    assert len(data["notes"]) == 2
    warnings = [line for line in logs() if line.get("part") == "alerts"]
    assert warnings and all(PAGERDUTY_KEY not in json.dumps(line) for line in logs())


def test_an_unreadable_part_is_counted_in_a_metric(pagerduty_reads, pagerduty, invoke, devin, capsys) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.enqueue("notes", *[Fault.status(403)] * 5)

    start(invoke, devin)

    assert "PagerDutyReadFailed" in metric_names(capsys.readouterr().out)


def test_the_record_is_read_only_for_a_session_about_to_be_created(pagerduty_reads, pagerduty, invoke, devin) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    start(invoke, devin)
    pagerduty.reset()

    duplicate = invoke(api_event(payload()))
    ignored = invoke(api_event(payload("incident-resolved-low-urgency.json")))
    ping = invoke(api_event(payload("pagey-ping.json")))
    forged = invoke(api_event(payload(), secret="not-the-secret"))

    assert [duplicate.body["status"], ignored.body["status"], ping.body["status"], forged.status] == [
        "duplicate",
        "ignored",
        "ignored",
        401,
    ]
    assert pagerduty.requests == []


def test_a_session_found_again_after_a_lost_answer_reads_nothing(pagerduty_reads, pagerduty, invoke, devin) -> None:
    # GIVEN a create whose answer was lost: the retry finds the session by tag instead of creating one
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    devin.enqueue(Fault.create_then_reset())
    assert invoke(api_event(payload())).status == 503
    reads_before = len(pagerduty.requests)

    answer = invoke(api_event(payload()))

    assert answer.body["status"] == "started"
    assert len(devin.create_requests()) == 1
    assert len(pagerduty.requests) == reads_before


def test_without_the_key_no_pagerduty_request_is_made_and_devin_gets_todays_request(
    secrets, env, pagerduty, monkeypatch, invoke, devin
) -> None:
    # GIVEN the base URL points at the stand-in, but Parameter Store has no PagerDuty key
    monkeypatch.setenv("PAGERDUTY_API_BASE_URL", pagerduty.base_url)
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))

    started = invoke(api_event(payload()))
    duplicate = invoke(api_event(payload()))

    assert (started.body["status"], duplicate.body["status"]) == ("started", "duplicate")
    assert pagerduty.requests == []
    prompt = devin.create_requests()[0].json()["prompt"]
    assert "timeline" not in data_block(devin.create_requests()[0].json())
    assert "PagerDuty's own record" not in prompt


def test_the_budget_leaves_the_devin_call_its_time(pagerduty_reads, pagerduty, invoke, devin, monkeypatch) -> None:
    # GIVEN a slow PagerDuty (2 s a read, more than the budget) and little time left in the invocation
    monkeypatch.setenv("PAGERDUTY_READ_SECONDS", "0.5")
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.latency = 2.0

    answer = invoke(api_event(incident(INCIDENT)), FakeContext(remaining_ms=6_000))

    assert answer.body["status"] == "started"
    assert len(devin.create_requests()) == 1
