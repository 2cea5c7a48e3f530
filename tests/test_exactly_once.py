"""Exactly one Devin session per incident, through retries, repeats, lost answers and failed writes."""

from __future__ import annotations

import time

import pytest
from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.exceptions import ClientError
from bridge.ledger import Ledger, LedgerUnavailable
from bridge.postmortem import SETTLE_SECONDS

from local.devin_standin import Fault
from tests.conftest import (
    TABLE,
    FakeContext,
    aws_client,
    backdate,
    delete_parameter,
    hold_claim,
    ledger_item,
    ledger_items,
)
from tests.support.events import api_event, incident, payload

INCIDENT = "Q2CKYRLH85UNN4"


def deliver(invoke, body=None, **context):
    return invoke(api_event(body or incident(INCIDENT)), FakeContext(**context))


def test_a_started_incident_is_one_ledger_item_with_its_metadata(invoke, devin) -> None:
    before = time.time()
    answer = deliver(invoke, payload())

    session = devin.sessions[0]
    assert answer.body == {
        "status": "started",
        "incident_id": INCIDENT,
        "session_id": session["session_id"],
        "session_url": session["url"],
    }
    item = ledger_item(INCIDENT)
    assert item is not None
    assert {k: item[k] for k in item if k not in ("recorded_at", "expires_at")} == {
        "incident_id": INCIDENT,
        "status": "started",
        "session_id": session["session_id"],
        "session_url": session["url"],
        "event_id": "01JPAC4R7XKQ2M9V3T8ZHWBN5D",
        "event_type": "incident.resolved",
        "incident_number": 1042,
        "title": "Checkout API 5xx error rate above 5% — payments failing",
        "service_id": "PCK8V2Q",
        "service_name": "Checkout API",
        "urgency": "high",
        "priority": "P1",
        "html_url": f"https://acme.pagerduty.com/incidents/{INCIDENT}",
        "created_at": "2026-03-14T09:12:44Z",
        "resolved_at": "2026-03-14T10:03:18.412Z",
    }
    # expires_at is an epoch number (DynamoDB TTL), about LEDGER_RETENTION_DAYS (90) ahead
    assert before + 89 * 86400 < item["expires_at"] < time.time() + 91 * 86400
    assert item["recorded_at"].endswith("Z")


def test_another_event_for_a_started_incident_starts_nothing(invoke, devin) -> None:
    first = deliver(invoke)
    reopened_and_resolved_again = incident(INCIDENT)
    reopened_and_resolved_again["event"]["id"] = "01JPAD0000000000000000000"

    again = deliver(invoke, reopened_and_resolved_again)

    assert again.body == {**first.body, "status": "duplicate"}
    assert len(devin.create_requests()) == 1


def test_a_live_claim_by_another_delivery_gets_429_with_retry_after(invoke, devin) -> None:
    # GIVEN another invocation claimed the incident and is still talking to Devin
    hold_claim(INCIDENT, expires_in=20)

    answer = deliver(invoke)

    assert answer.status == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= 20
    assert devin.requests == []


def test_an_expired_claim_is_taken_over_and_its_session_found_by_tag(invoke, devin) -> None:
    # GIVEN an invocation that created a session, then died before recording it, long enough ago
    deliver(invoke)
    session_id = devin.sessions[0]["session_id"]
    hold_claim(INCIDENT, expires_in=-1, holder="dead")

    answer = deliver(invoke)

    assert (answer.status, answer.body["session_id"]) == (200, session_id)
    assert len(devin.create_requests()) == 1
    assert ledger_item(INCIDENT)["status"] == "started"


@pytest.mark.parametrize(
    "lost",
    [Fault.create_then_reset(), Fault.bad_body_created(), Fault.missing_id_created()],
    ids=["reset-after-create", "unreadable-201", "201-without-session-id"],
)
def test_a_lost_answer_is_5xx_then_the_next_delivery_finds_the_session(invoke, devin, lost) -> None:
    devin.enqueue(lost)

    first = deliver(invoke)

    assert first.status == 503
    assert "Retry-After" in first.headers
    item = ledger_item(INCIDENT)
    assert item["status"] == "unknown"
    assert "claim_token" not in item  # released: the retry need not wait for a lease

    second = deliver(invoke)

    assert second.status == 200
    assert second.body["status"] in ("started", "duplicate")
    assert second.body["session_id"] == devin.sessions[0]["session_id"]
    assert len(devin.sessions) == 1
    assert ledger_item(INCIDENT)["session_id"] == devin.sessions[0]["session_id"]


def test_an_answer_slower_than_the_invocation_is_an_unknown_outcome(invoke, devin) -> None:
    devin.enqueue(Fault.create_then_hang(3))

    first = deliver(invoke, remaining_ms=4500)  # 2.5 s for Devin once the ledger's reserve is kept back
    second = deliver(invoke)

    assert first.status == 503
    assert second.body["session_id"] == devin.sessions[0]["session_id"]
    assert len(devin.sessions) == 1


def test_when_lookups_find_nothing_once_devin_has_settled_the_session_is_created(invoke, devin) -> None:
    devin.enqueue(Fault.reset())  # nothing was created, but the client cannot know

    assert deliver(invoke).status == 503
    soon_after = deliver(invoke)
    backdate(INCIDENT, "outcome_lost_at", SETTLE_SECONDS + 1)
    later = deliver(invoke)

    assert soon_after.status == 503  # Devin might still have been creating it
    assert 1 <= int(soon_after.headers["Retry-After"]) <= SETTLE_SECONDS
    assert later.body["status"] == "started"
    assert len(devin.sessions) == 1
    assert [r.method for r in devin.requests] == ["POST", "GET", "GET", "POST"]


def test_a_session_devin_creates_after_the_answer_was_lost_is_found_not_duplicated(invoke, devin) -> None:
    # GIVEN Devin takes 6 s to create the session, far longer than the invocation waits (2.5 s)
    devin.enqueue(Fault.delay(6))
    assert deliver(invoke, remaining_ms=4500).status == 503

    # WHEN PagerDuty retries before Devin has finished, and again after
    before_devin_finished = deliver(invoke)
    deadline = time.monotonic() + 15
    while not devin.sessions and time.monotonic() < deadline:
        time.sleep(0.1)
    after = deliver(invoke)

    # THEN the early retry created nothing, and the later one found Devin's single session
    assert before_devin_finished.status == 503
    assert after.body["session_id"] == devin.sessions[0]["session_id"]
    assert len(devin.sessions) == 1


def test_devin_unavailable_releases_the_claim_so_the_retry_starts_it(invoke, devin) -> None:
    devin.enqueue(*[Fault.status(503, retry_after=0)] * 4)

    first = deliver(invoke)

    assert first.status == 503
    assert "Retry-After" in first.headers
    assert ledger_items() == []
    second = deliver(invoke)
    assert second.body["status"] == "started"
    assert len(devin.sessions) == 1


def test_devin_refusing_the_credentials_is_5xx_and_releases_the_claim(invoke, devin) -> None:
    devin.enqueue(Fault.status(401))

    answer = deliver(invoke)

    assert answer.status == 502
    assert ledger_items() == []
    assert deliver(invoke).body["status"] == "started"


def test_a_failed_final_write_never_leads_to_a_second_session(invoke, devin, monkeypatch) -> None:
    # GIVEN DynamoDB fails the write that records the session (the invocation "dies" there)
    real_record = Ledger.record

    def failing_record(self, claim, session, **options):
        raise LedgerUnavailable("could not record the session in the ledger")

    monkeypatch.setattr(Ledger, "record", failing_record)
    first = deliver(invoke)
    monkeypatch.setattr(Ledger, "record", real_record)

    second = deliver(invoke)

    assert first.status == 503
    assert second.body["session_id"] == devin.sessions[0]["session_id"]
    assert len(devin.sessions) == 1


def test_when_every_ledger_write_fails_after_create_the_lease_protects_the_incident(invoke, devin, monkeypatch) -> None:
    def failing(self, claim, *args, **options):
        raise LedgerUnavailable("DynamoDB down")

    monkeypatch.setattr(Ledger, "record", failing)
    monkeypatch.setattr(Ledger, "mark_unknown", failing)
    first = deliver(invoke)
    monkeypatch.undo()

    during_lease = invoke(api_event(incident(INCIDENT)))

    assert first.status == 503
    assert during_lease.status == 429
    assert len(devin.sessions) == 1


def test_no_session_is_started_without_a_claim(invoke, devin) -> None:
    aws_client("dynamodb").delete_table(TableName=TABLE)

    answer = deliver(invoke)

    assert answer.status == 503
    assert devin.requests == []


def test_ssm_unavailable_is_a_retryable_5xx(invoke, devin, monkeypatch) -> None:
    def throttled(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetParameters")

    monkeypatch.setattr(SSMProvider, "get_parameters_by_name", throttled)

    answer = deliver(invoke)

    assert answer.status == 503
    assert "Retry-After" in answer.headers
    assert devin.requests == []


def test_missing_devin_credentials_are_a_5xx_and_claim_nothing(invoke, devin) -> None:
    delete_parameter("devin-api-key")

    answer = deliver(invoke)

    assert answer.status == 500
    assert ledger_items() == []
    assert devin.requests == []


def test_missing_table_name_is_a_5xx_not_a_crash(invoke, monkeypatch) -> None:
    monkeypatch.delenv("TABLE_NAME")

    answer = deliver(invoke)

    assert answer.status == 500
    assert answer.body == {"message": "TABLE_NAME is not set"}


def test_a_failed_lookup_keeps_the_incident_unknown_so_a_later_one_still_finds_the_session(invoke, devin) -> None:
    # GIVEN a delivery whose create answer was lost
    devin.enqueue(Fault.create_then_reset())
    assert deliver(invoke).status == 503
    # AND a retry during which Devin cannot even list sessions
    devin.enqueue_list(*[Fault.status(503, retry_after=0)] * 4)

    during_outage = deliver(invoke)

    assert during_outage.status == 503
    assert ledger_item(INCIDENT)["status"] == "unknown"
    # WHEN Devin is back THEN the next delivery finds the first session instead of creating a second
    after = deliver(invoke)
    assert after.body["session_id"] == devin.sessions[0]["session_id"]
    assert len(devin.sessions) == 1


def test_a_devin_key_stored_with_a_trailing_line_break_still_starts_the_session(invoke, devin) -> None:
    # `aws ssm put-parameter --value file://key.txt` keeps the file's last line break.
    from tests.conftest import DEVIN_KEY, put_parameter

    put_parameter("devin-api-key", f"{DEVIN_KEY}\n")

    assert deliver(invoke).body["status"] == "started"
    assert devin.create_requests()[0].headers["authorization"] == f"Bearer {DEVIN_KEY}"
