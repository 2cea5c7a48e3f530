"""The figures the bridge computes from PagerDuty's log entries (issue 14, part 2): right whatever order and offsets
PagerDuty answers in and however many pages the log takes, and absent, never guessed, when an input is missing."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from bridge.pagerduty.figures import compute
from bridge.pagerduty.record import timeline

from local.http_server import Fault
from tests.support.events import api_event, incident

INCIDENT = "QFIGURES00001"
DATA = re.compile(r"<pagerduty-incident>\n(.*?)\n</pagerduty-incident>", re.S)
DANA = {"id": "PJ4RT2K", "type": "user_reference", "summary": "Dana Whitfield"}
RAVI = {"id": "PM7QW3N", "type": "user_reference", "summary": "Ravi Iyer"}


def entry(kind: str, at: str, agent: dict[str, Any] | None = None, entry_id: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"type": f"{kind}_log_entry", "summary": kind, "created_at": at, "channel": {"type": "api"}}
    if agent is not None:
        raw["agent"] = agent
    if entry_id is not None:
        raw["id"] = entry_id
    return raw


# Trigger 09:00:00Z; acknowledged 09:02:18Z (written in -06:00); escalated, reassigned, acknowledged again by Ravi;
# resolved 09:50:34Z. Newest first, one pair swapped, offsets mixed: as PagerDuty may answer.
LOG = [
    entry("resolve", "2026-03-14T03:50:34-06:00", RAVI),
    entry("acknowledge", "2026-03-14T09:20:00Z", RAVI),
    entry("assign", "2026-03-14T09:19:00Z", DANA),
    entry("notify", "2026-03-14T09:18:30Z"),
    entry("escalate", "2026-03-14T09:18:00Z"),
    entry("notify", "2026-03-14T09:00:05Z"),
    entry("acknowledge", "2026-03-14T03:02:18-06:00", DANA),
    entry("assign", "2026-03-14T09:00:01Z"),
    entry("trigger", "2026-03-14T09:00:00Z", DANA),
]


def test_the_figures_of_an_out_of_order_mixed_offset_log() -> None:
    figures = compute(timeline(LOG), complete=True, alert_count=3)

    assert figures == {
        "seconds_to_first_ack": 138,
        "seconds_to_resolve": 3034,
        "escalation_count": 1,
        "reassignment_count": 1,
        "notification_count": 2,
        "acknowledged_by": ["Dana Whitfield", "Ravi Iyer"],
        "resolved_by": ["Ravi Iyer"],
        "alert_count": 3,
    }


def test_without_a_resolve_entry_the_resolve_event_ends_the_time_to_resolve() -> None:
    without_resolve = [raw for raw in LOG if raw["type"] != "resolve_log_entry"]

    figures = compute(timeline(without_resolve), complete=True, resolved_at="2026-03-14T09:51:00Z")

    assert figures["seconds_to_resolve"] == 3060
    assert "resolved_by" not in figures


def test_without_a_trigger_entry_the_incidents_creation_starts_the_clock() -> None:
    without_trigger = [raw for raw in LOG if raw["type"] != "trigger_log_entry"]

    figures = compute(timeline(without_trigger), complete=True, created_at="2026-03-14T03:00:00-06:00")

    assert (figures["seconds_to_first_ack"], figures["seconds_to_resolve"]) == (138, 3034)


@pytest.mark.parametrize(
    ("entries", "kwargs", "absent"),
    [
        ([], {}, {"seconds_to_first_ack", "seconds_to_resolve", "acknowledged_by", "resolved_by", "alert_count"}),
        ([entry("trigger", "2026-03-14T09:00:00Z")], {}, {"seconds_to_first_ack", "seconds_to_resolve"}),
        ([entry("acknowledge", "2026-03-14T09:02:00Z")], {}, {"seconds_to_first_ack", "seconds_to_resolve"}),
        ([entry("trigger", "yesterday"), entry("acknowledge", "2026-03-14T09:02:00Z")], {}, {"seconds_to_first_ack"}),
        (
            [entry("trigger", "2026-03-14T09:00:00Z"), entry("acknowledge", "2026-03-14T09:02:00")],
            {},
            {"seconds_to_first_ack"},
        ),
        (
            [entry("trigger", "2026-03-14T09:10:00Z"), entry("acknowledge", "2026-03-14T09:02:00Z")],
            {},
            {"seconds_to_first_ack"},
        ),
    ],
    ids=[
        "nothing",
        "trigger only",
        "no trigger",
        "trigger time unreadable",
        "ack without offset",
        "ack before trigger",
    ],
)
def test_a_figure_whose_inputs_are_missing_or_disagree_is_absent(entries, kwargs, absent) -> None:
    figures = compute(timeline(entries), complete=True, **kwargs)

    assert absent.isdisjoint(figures)


def test_an_incomplete_log_claims_no_count_and_no_first_acknowledgement() -> None:
    figures = compute(
        timeline(LOG[:4]), complete=False, created_at="2026-03-14T09:00:00Z", resolved_at="2026-03-14T09:51:00Z"
    )

    # Only what does not depend on the entries left unread: trigger (the incident's creation) to this resolve event.
    assert figures == {"seconds_to_resolve": 3060}


# --- through the handler: the figures in the data block --------------------------------------------------------


def data_block(devin) -> dict[str, Any]:  # noqa: ANN001 - the DevinStandIn fixture
    return json.loads(DATA.search(devin.create_requests()[-1].json()["prompt"]).group(1))


def test_the_data_block_carries_the_figures_of_a_log_read_over_three_pages(pagerduty_reads, pagerduty, invoke, devin):
    # GIVEN 240 log entries, newest first: three pages of 100, notifications filling the middle
    middle = [entry("notify", f"2026-03-14T09:{n // 60 + 3:02d}:{n % 60:02d}Z") for n in range(231)]
    log = [LOG[0], *reversed(middle), *LOG[1:]]
    pagerduty.add_incident(INCIDENT, log_entries=log, alerts=[{"id": "A1", "created_at": "2026-03-14T09:00:00Z"}])

    assert invoke(api_event(incident(INCIDENT))).body["status"] == "started"

    computed = data_block(devin)["computed"]
    assert computed["notification_count"] == 233
    assert (computed["seconds_to_first_ack"], computed["seconds_to_resolve"]) == (138, 3034)
    assert computed["alert_count"] == 1
    assert len(data_block(devin)["timeline"]) == 50  # the prompt's cap, not the figures'
    prompt = devin.create_requests()[-1].json()["prompt"]
    assert "they are authoritative" in prompt.split("</pagerduty-incident>", 1)[1]


def test_a_log_cut_short_by_the_budget_gives_only_what_it_can_prove(
    pagerduty_reads, pagerduty, invoke, devin, monkeypatch
) -> None:
    # GIVEN a log of two pages whose second page never comes within the budget
    monkeypatch.setenv("PAGERDUTY_READ_SECONDS", "1")
    middle = [entry("notify", f"2026-03-14T09:{n // 60 + 3:02d}:{n % 60:02d}Z") for n in range(150)]
    pagerduty.add_incident(INCIDENT, log_entries=[LOG[0], *reversed(middle), *LOG[1:]])
    pagerduty.enqueue("log_entries", Fault(), *[Fault.delay(5)] * 5)

    assert invoke(api_event(incident(INCIDENT))).body["status"] == "started"

    computed = data_block(devin).get("computed", {})
    assert "notification_count" not in computed and "seconds_to_first_ack" not in computed
    # The sample's created_at (09:12:44Z) to its resolve event (10:03:18.412Z).
    assert computed.get("seconds_to_resolve") == 3034


def test_without_the_pagerduty_key_there_are_no_figures(secrets, invoke, devin) -> None:
    assert invoke(api_event(incident(INCIDENT))).body["status"] == "started"

    assert "computed" not in data_block(devin)
