"""The note on the PagerDuty incident that says a postmortem draft is being written: exactly one per incident,
through retries, duplicates, concurrent deliveries, lost answers and failures, and never a change to the answer."""

from __future__ import annotations

import json
import time

import requests
from bridge.config import Settings
from bridge.devin.client import DevinClient
from bridge.devin.prompt import build_session_request
from bridge.ledger import Ledger
from bridge.pagerduty.client import PagerDutyClient
from bridge.postmortem import NoteWriter, Outcome, start_postmortem
from bridge.webhook.event import parse_event
from bridge.webhook.policy import select

from local.devin_standin import DevinStandIn, Fault
from local.pagerduty_standin import PagerDutyStandIn, sample_record
from tests.conftest import (
    DEVIN_KEY,
    DEVIN_ORG,
    PAGERDUTY_FROM,
    PAGERDUTY_KEY,
    TABLE,
    aws_client,
    backdate,
    ledger_item,
)
from tests.support.events import api_event, incident, payload
from tests.support.metrics import names
from tests.support.race import OneCallAtATime, race

INCIDENT = "Q2CKYRLH85UNN4"


def posted(pagerduty: PagerDutyStandIn, incident_id: str = INCIDENT) -> list[str]:
    return [note["content"] for note in pagerduty.notes_posted(incident_id)]


def metric_names(capsys) -> list[str]:  # noqa: ANN001 - pytest's capsys
    return names(capsys.readouterr().out)


def test_a_started_session_puts_one_note_with_its_link_on_the_incident(
    pagerduty_writes, pagerduty, invoke, devin
) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))

    answer = invoke(api_event(payload()))

    assert answer.body["status"] == "started"
    (note,) = posted(pagerduty)
    assert answer.body["session_url"] in note
    assert "postmortem draft" in note
    (post,) = [r for r in pagerduty.requests if r.method == "POST"]
    assert post.path == f"/incidents/{INCIDENT}/notes"
    assert post.headers["from"] == PAGERDUTY_FROM
    assert post.headers["authorization"] == f"Token token={PAGERDUTY_KEY}"
    assert post.json() == {"note": {"content": note}}
    item = ledger_item(INCIDENT)
    assert item["session_note_posted_at"].endswith("Z")
    assert "claim_token" not in item and "claim_expires_at" not in item


def test_with_the_key_but_no_from_email_nothing_is_written(pagerduty_reads, pagerduty, invoke, devin) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))

    assert invoke(api_event(payload())).body["status"] == "started"
    assert invoke(api_event(payload())).body["status"] == "duplicate"

    assert [r.method for r in pagerduty.requests] == ["GET"] * len(pagerduty.requests)
    assert "session_note_posted_at" not in ledger_item(INCIDENT)


def test_retries_and_other_events_for_the_incident_post_nothing_more(
    pagerduty_writes, pagerduty, invoke, devin
) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    invoke(api_event(payload()))
    pagerduty.requests.clear()

    answers = [invoke(api_event(payload())) for _ in range(3)]
    answers.append(invoke(api_event(incident(INCIDENT), webhook_id="another-delivery")))

    assert {answer.body["status"] for answer in answers} == {"duplicate"}
    assert len(posted(pagerduty)) == 1
    assert pagerduty.requests == []  # a duplicate with its note in place asks PagerDuty nothing


def test_a_failed_note_never_changes_the_answer_and_a_later_delivery_posts_it(
    pagerduty_writes, pagerduty, invoke, devin, capsys
) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.enqueue("notes_post", Fault.status(500))

    first = invoke(api_event(payload()))

    assert first.body["status"] == "started"
    assert posted(pagerduty) == []
    assert "session_note_posted_at" not in ledger_item(INCIDENT)
    assert "PagerDutyNoteFailed" in metric_names(capsys)

    later = invoke(api_event(payload()))

    assert later.body == {**first.body, "status": "duplicate"}
    (note,) = posted(pagerduty)
    assert first.body["session_url"] in note
    assert ledger_item(INCIDENT)["session_note_posted_at"]
    assert invoke(api_event(payload())).body["status"] == "duplicate"
    assert len(posted(pagerduty)) == 1


def test_a_read_only_key_still_starts_the_session(pagerduty_writes, pagerduty, invoke, devin, capsys) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.read_only = True

    answer = invoke(api_event(payload()))

    assert answer.body["status"] == "started"
    assert posted(pagerduty) == []
    assert "PagerDutyNoteFailed" in metric_names(capsys)


def test_a_note_whose_answer_was_lost_is_found_among_the_notes_not_posted_again(
    pagerduty_writes, pagerduty, invoke, devin
) -> None:
    # GIVEN PagerDuty stores the note, then the connection drops before its answer arrives
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.enqueue("notes_post", Fault.create_then_reset())

    first = invoke(api_event(payload()))

    assert first.body["status"] == "started"
    assert len(posted(pagerduty)) == 1
    assert "session_note_posted_at" not in ledger_item(INCIDENT)
    pagerduty.requests.clear()

    later = invoke(api_event(payload()))

    assert later.body["status"] == "duplicate"
    assert len(posted(pagerduty)) == 1
    # The one PagerDuty read a duplicate may make: the notes, to look for the marker.
    assert [(r.method, r.path) for r in pagerduty.requests] == [("GET", f"/incidents/{INCIDENT}/notes")]
    assert ledger_item(INCIDENT)["session_note_posted_at"]


def test_a_holder_that_died_after_posting_is_not_followed_by_a_second_note(
    pagerduty_writes, pagerduty, invoke, devin
) -> None:
    # GIVEN the note was posted, and the invocation died before recording it: its lease is still on the item
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    invoke(api_event(payload()))
    aws_client("dynamodb").update_item(
        TableName=TABLE,
        Key={"incident_id": {"S": INCIDENT}},
        UpdateExpression="SET claim_token = :dead REMOVE session_note_posted_at",
        ExpressionAttributeValues={":dead": {"S": "dead"}},
    )
    backdate(INCIDENT, "claim_expires_at", 30)

    answer = invoke(api_event(payload()))

    assert answer.body["status"] == "duplicate"
    assert len(posted(pagerduty)) == 1
    assert ledger_item(INCIDENT)["session_note_posted_at"]


def test_a_live_lease_leaves_the_note_to_its_holder(pagerduty_writes, pagerduty, invoke, devin) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.enqueue("notes_post", Fault.status(500))
    invoke(api_event(payload()))
    aws_client("dynamodb").update_item(
        TableName=TABLE,
        Key={"incident_id": {"S": INCIDENT}},
        UpdateExpression="SET claim_token = :other, claim_expires_at = :later",
        ExpressionAttributeValues={":other": {"S": "other"}, ":later": {"N": str(int(time.time()) + 30)}},
    )

    answer = invoke(api_event(payload()))

    assert answer.body["status"] == "duplicate"
    assert posted(pagerduty) == []


def test_racing_deliveries_post_exactly_one_note(aws) -> None:
    # GIVEN a Devin that takes 300 ms, so that every delivery overlaps the first one's call and its note
    with (
        DevinStandIn(api_key=DEVIN_KEY, org_id=DEVIN_ORG, latency=0.3) as devin,
        PagerDutyStandIn(api_key=PAGERDUTY_KEY) as pagerduty,
    ):
        pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
        event = parse_event(json.dumps(incident(INCIDENT)).encode())
        chosen = select(event, Settings.from_env({"TABLE_NAME": TABLE})).incident
        ledger = Ledger(OneCallAtATime(aws_client("dynamodb")), TABLE, retention_days=90)

        def deliver() -> Outcome:
            http = requests.Session()
            writer = NoteWriter(PagerDutyClient(pagerduty.base_url, PAGERDUTY_KEY, http, from_email=PAGERDUTY_FROM), 10)
            return start_postmortem(
                chosen,
                event,
                lambda: build_session_request(chosen, event),
                ledger=ledger,
                devin=DevinClient(devin.base_url, DEVIN_KEY, DEVIN_ORG, http),
                deadline=time.monotonic() + 20,
                lease_seconds=30,
                notes=writer,
            )

        outcomes = race(12, deliver)

        assert outcomes.count("started") == 1
        assert len(devin.sessions) == 1
        assert len(posted(pagerduty)) == 1
        assert ledger_item(INCIDENT)["session_note_posted_at"]


def test_when_the_reads_used_up_pagerdutys_time_the_note_waits_for_a_later_delivery(
    pagerduty_writes, pagerduty, invoke, devin, monkeypatch
) -> None:
    # GIVEN a read budget of 3.8 s and a PagerDuty that never answers the reads: 0.2 s would be left for the note
    monkeypatch.setenv("PAGERDUTY_READ_SECONDS", "3.8")
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    for endpoint in ("log_entries", "alerts", "notes"):
        pagerduty.enqueue(endpoint, Fault.delay(30))

    began = time.monotonic()
    answer = invoke(api_event(payload()))
    took = time.monotonic() - began

    assert answer.body["status"] == "started"
    assert took < 4.5, f"reads and note took {took:.2f} s: the answer must stay well inside PagerDuty's 5 s"
    assert posted(pagerduty) == []
    assert "claim_token" not in ledger_item(INCIDENT)

    later = invoke(api_event(payload()))

    assert later.body["status"] == "duplicate"
    assert len(posted(pagerduty)) == 1
