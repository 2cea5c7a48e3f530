"""What each delivery costs in calls to SSM, DynamoDB and Devin: deterministic, so asserted exactly.

The budget (issue 5), for a warm container: SSM 0 calls; DynamoDB at most 2 for a started incident, at most 1
for a duplicate, 0 for an ignored or unauthenticated delivery; Devin exactly one create for a started incident
and nothing otherwise. bench/run.py prints the same counts next to its timings.
"""

from __future__ import annotations

import pytest

from tests.support.events import api_event, incident, load_event, payload

# Every sample event that must cost nothing once the container is warm: ignored, refused or unreadable.
FREE_EVENTS = (
    "ping-ignored.json",
    "annotated-ignored.json",
    "triggered-ignored.json",
    "resolved-low-urgency-ignored.json",
    "resolved-merged-ignored.json",
    "bad-signature-unauthorized.json",
    "missing-signature-unauthorized.json",
    "malformed-body-bad-request.json",
    "no-event-object-bad-request.json",
)


def devin_calls(devin) -> list[tuple[str, str]]:  # noqa: ANN001 - the DevinStandIn fixture
    return [(r.method, r.path.rsplit("/", 1)[-1]) for r in devin.requests]


def test_secrets_are_read_in_one_ssm_round_trip_then_cached_while_warm(invoke, aws_calls) -> None:
    invoke(api_event(payload("pagey-ping.json")))
    invoke(api_event(payload("pagey-ping.json")))
    invoke(api_event(incident()))

    assert [call for call in aws_calls if call.startswith("ssm.")] == ["ssm.GetParameters"]


def test_warm_started_incident_costs_two_dynamodb_calls_and_one_devin_create(invoke, devin, aws_calls) -> None:
    invoke(api_event(payload("pagey-ping.json")))  # warm up: clients and secrets
    aws_calls.clear()

    answer = invoke(api_event(incident("QNEW1")))

    assert answer.body["status"] == "started"
    assert aws_calls == ["dynamodb.UpdateItem", "dynamodb.UpdateItem"]
    assert devin_calls(devin) == [("POST", "sessions")]


def test_a_base64_encoded_delivery_costs_the_same_as_a_plain_one(invoke, devin, aws_calls) -> None:
    invoke(api_event(payload("pagey-ping.json")))
    aws_calls.clear()

    answer = invoke(load_event("resolved-p1-base64-body.json"))

    assert answer.body["status"] == "started"
    assert aws_calls == ["dynamodb.UpdateItem", "dynamodb.UpdateItem"]
    assert devin_calls(devin) == [("POST", "sessions")]


def test_warm_duplicate_costs_one_dynamodb_call_and_no_devin_call(invoke, devin, aws_calls) -> None:
    invoke(api_event(incident("QDUP1")))
    devin.reset()
    aws_calls.clear()

    answer = invoke(api_event(incident("QDUP1")))

    assert answer.body["status"] == "duplicate"
    assert aws_calls == ["dynamodb.UpdateItem"]
    assert devin.requests == []


def test_another_event_for_a_started_incident_is_a_duplicate_at_the_same_cost(invoke, devin, aws_calls) -> None:
    invoke(api_event(incident("QDUP2")))
    devin.reset()
    aws_calls.clear()

    retried = api_event(incident("QDUP2"), webhook_id="another-delivery-of-the-same-event")
    answer = invoke(retried)

    assert answer.body["status"] == "duplicate"
    assert aws_calls == ["dynamodb.UpdateItem"]
    assert devin.requests == []


def test_warm_ignored_and_unauthenticated_deliveries_cost_no_call(invoke, devin, aws_calls) -> None:
    invoke(api_event(payload("pagey-ping.json")))
    aws_calls.clear()

    for name in (
        "resolved-low-urgency-ignored.json",
        "triggered-ignored.json",
        "bad-signature-unauthorized.json",
        "malformed-body-bad-request.json",
    ):
        invoke(load_event(name))

    assert aws_calls == []
    assert devin.requests == []


@pytest.mark.parametrize("name", FREE_EVENTS)
def test_each_ignored_refused_or_unreadable_sample_costs_no_call_when_warm(invoke, devin, aws_calls, name) -> None:
    invoke(api_event(payload("pagey-ping.json")))
    aws_calls.clear()

    answer = invoke(load_event(name))

    assert answer.status in (200, 400, 401)
    assert answer.body.get("status") in (None, "ignored")
    assert aws_calls == []
    assert devin.requests == []


def test_a_warm_burst_costs_exactly_the_sum_of_its_deliveries(invoke, devin, aws_calls) -> None:
    invoke(api_event(payload("pagey-ping.json")))
    aws_calls.clear()

    started = [invoke(api_event(incident(f"QBURST{n}"))) for n in range(3)]
    retries = [invoke(api_event(incident(f"QBURST{n % 3}"))) for n in range(5)]
    for name in FREE_EVENTS:
        invoke(load_event(name))

    assert [answer.body["status"] for answer in started] == ["started"] * 3
    assert [answer.body["status"] for answer in retries] == ["duplicate"] * 5
    assert aws_calls == ["dynamodb.UpdateItem"] * (2 * 3 + 5)
    assert devin_calls(devin) == [("POST", "sessions")] * 3


def test_an_incomplete_configuration_is_read_again_on_the_next_delivery(invoke, aws_calls) -> None:
    from tests.conftest import delete_parameter, put_parameter

    delete_parameter("devin-api-key")
    assert invoke(api_event(incident())).status == 500
    put_parameter("devin-api-key", "cog_test_key_0123456789abcdef")

    assert invoke(api_event(incident())).body["status"] == "started"
    assert [call for call in aws_calls if call.startswith("ssm.")] == [
        "ssm.GetParameters",
        "ssm.GetParameters",
    ]


# --- With PagerDuty's record and notes (issue 8) -------------------------------------------------------


def pagerduty_calls(pagerduty) -> list[tuple[str, str]]:  # noqa: ANN001 - the PagerDutyStandIn fixture
    return [(r.method, r.path.rsplit("/", 1)[-1]) for r in pagerduty.requests]


def test_warm_started_incident_with_notes_costs_five_reads_one_note_and_three_dynamodb_calls(
    pagerduty_writes, pagerduty, invoke, devin, aws_calls
) -> None:
    from local.pagerduty_standin import sample_record

    invoke(api_event(payload("pagey-ping.json")))
    pagerduty.add_incident("QNOTE1", **sample_record("QNOTE1"))
    aws_calls.clear()

    answer = invoke(api_event(incident("QNOTE1")))

    assert answer.body["status"] == "started"
    # claim, record (holding the incident for its note), note recorded (and the hold released)
    assert aws_calls == ["dynamodb.UpdateItem"] * 3
    assert devin_calls(devin) == [("POST", "sessions")]
    # The record (log entries, notes, alerts), then the changes and the history (issue 14), then the note.
    assert sorted(pagerduty_calls(pagerduty)) == [
        ("GET", "alerts"),
        ("GET", "log_entries"),
        ("GET", "notes"),
        ("GET", "past_incidents"),
        ("GET", "related_change_events"),
        ("POST", "notes"),
    ]


def test_warm_duplicate_with_its_note_in_place_costs_what_it_cost_before(
    pagerduty_writes, pagerduty, invoke, devin, aws_calls
) -> None:
    from local.pagerduty_standin import sample_record

    pagerduty.add_incident("QNOTE2", **sample_record("QNOTE2"))
    invoke(api_event(incident("QNOTE2")))
    devin.reset()
    pagerduty.requests.clear()
    aws_calls.clear()

    answer = invoke(api_event(incident("QNOTE2")))

    assert answer.body["status"] == "duplicate"
    assert aws_calls == ["dynamodb.UpdateItem"]
    assert devin.requests == []
    assert pagerduty.requests == []


def test_reading_without_writing_adds_no_dynamodb_call(pagerduty_reads, pagerduty, invoke, devin, aws_calls) -> None:
    from local.pagerduty_standin import sample_record

    invoke(api_event(payload("pagey-ping.json")))
    pagerduty.add_incident("QREAD1", **sample_record("QREAD1"))
    aws_calls.clear()

    assert invoke(api_event(incident("QREAD1"))).body["status"] == "started"

    assert aws_calls == ["dynamodb.UpdateItem", "dynamodb.UpdateItem"]
    assert sorted(pagerduty_calls(pagerduty)) == [
        ("GET", "alerts"),
        ("GET", "log_entries"),
        ("GET", "notes"),
        ("GET", "past_incidents"),
        ("GET", "related_change_events"),
    ]


def test_with_the_pagerduty_key_the_parameters_are_still_one_ssm_round_trip(
    pagerduty_writes, pagerduty, invoke, aws_calls
) -> None:
    invoke(api_event(payload("pagey-ping.json")))
    invoke(api_event(payload("pagey-ping.json")))

    assert [call for call in aws_calls if call.startswith("ssm.")] == ["ssm.GetParameters"]


# --- The scheduled follow-up over 100 open sessions (issue 14) ----------------------------------------------

OPEN_SESSIONS = 100


def open_sessions(devin, pagerduty, count: int = OPEN_SESSIONS) -> list[str]:  # noqa: ANN001 - stand-ins
    """`count` sessions being followed, as deliveries leave them: started, their note posted, in the index."""
    import time as clock

    import requests

    from tests.conftest import DEVIN_KEY, DEVIN_ORG, TABLE, aws_client

    sessions = []
    with requests.Session() as http:
        for n in range(count):
            created = http.post(
                f"{devin.base_url}/v3/organizations/{DEVIN_ORG}/sessions",
                json={"prompt": "p", "structured_output_schema": {"type": "object"}},
                headers={"Authorization": f"Bearer {DEVIN_KEY}"},
                timeout=5,
            ).json()
            sessions.append(created["session_id"])
            pagerduty.add_incident(f"QOPEN{n:04d}")
            aws_client("dynamodb").put_item(
                TableName=TABLE,
                Item={
                    "incident_id": {"S": f"QOPEN{n:04d}"},
                    "status": {"S": "started"},
                    "session_id": {"S": created["session_id"]},
                    "session_url": {"S": created["url"]},
                    "following": {"S": "open"},
                    "session_recorded_epoch": {"N": str(int(clock.time()))},
                    "session_note_posted_at": {"S": "2026-03-14T10:03:19Z"},
                    "result_schema": {"S": "default"},
                },
            )
    return sessions


def test_a_follow_up_run_over_100_quiet_sessions_costs_one_query_and_one_write_each(
    pagerduty_writes, pagerduty, devin, aws_calls, follow_up_run
) -> None:
    open_sessions(devin, pagerduty)
    devin.requests.clear()
    aws_calls.clear()

    report = follow_up_run()

    assert (report["followed"], report["failed"]) == (OPEN_SESSIONS, 0)
    assert aws_calls == ["ssm.GetParameters", "dynamodb.Query"] + ["dynamodb.UpdateItem"] * OPEN_SESSIONS
    assert [r.method for r in devin.requests] == ["GET"] * OPEN_SESSIONS
    assert pagerduty.requests == []


def test_a_follow_up_run_posting_100_summaries_costs_three_writes_and_one_note_each(
    pagerduty_writes, pagerduty, devin, aws_calls, follow_up_run
) -> None:
    from tests.support.results import valid_result

    for session_id in open_sessions(devin, pagerduty):
        devin.update_session(session_id, status="exit", structured_output=valid_result())
    devin.requests.clear()
    aws_calls.clear()

    report = follow_up_run()

    assert (report["results_valid"], report["stopped"], report["failed"]) == (OPEN_SESSIONS, OPEN_SESSIONS, 0)
    # Per session: the lease, the note recorded (releasing it), what the run read (leaving the index).
    dynamodb = [call for call in aws_calls if call.startswith("dynamodb.")]
    assert dynamodb == ["dynamodb.Query"] + ["dynamodb.UpdateItem"] * (3 * OPEN_SESSIONS)
    assert [r.method for r in devin.requests] == ["GET"] * OPEN_SESSIONS
    assert pagerduty_calls(pagerduty) == [("POST", "notes")] * OPEN_SESSIONS
