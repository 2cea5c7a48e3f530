"""What each delivery costs in calls to SSM, DynamoDB and Devin: deterministic, so asserted exactly."""

from __future__ import annotations

from tests.support.events import api_event, incident, load_event, payload


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
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in devin.requests] == [("POST", "sessions")]


def test_warm_duplicate_costs_one_dynamodb_call_and_no_devin_call(invoke, devin, aws_calls) -> None:
    invoke(api_event(incident("QDUP1")))
    devin.reset()
    aws_calls.clear()

    answer = invoke(api_event(incident("QDUP1")))

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
