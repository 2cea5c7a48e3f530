"""Who gets in: PagerDuty's v3 signature, the optional shared-secret header, and failing closed."""

from __future__ import annotations

import pytest

from scripts.make_events import TEST_SIGNING_SECRET, sign
from tests.conftest import WEBHOOK_SECRET, delete_parameter, ledger_items, put_parameter
from tests.support.events import api_event, incident, payload


def test_a_forged_signature_gets_401_and_reaches_nothing(invoke, devin) -> None:
    answer = invoke(api_event(incident(), secret="someone-elses-secret"))

    assert answer.status == 401
    assert devin.requests == []
    assert ledger_items() == []


def test_a_missing_signature_gets_401(invoke) -> None:
    assert invoke(api_event(incident(), secret=None)).status == 401


def test_a_body_changed_after_signing_gets_401(invoke) -> None:
    event = api_event(incident())
    event["body"] = event["body"].replace("Checkout API", "Checkout APl")

    assert invoke(event).status == 401


def test_the_signature_is_checked_over_the_raw_bytes_not_reserialised_json(invoke, devin) -> None:
    # Spacing that json.dumps would never produce: re-serialising before checking would break the HMAC.
    raw = b'{ "event" :\n  {"event_type": "pagey.ping", "id": "X", "data": {"type": "ping"}} }'

    assert invoke(api_event(raw)).body == {"status": "ignored", "reason": "ping"}


def test_any_matching_v1_signature_passes_during_a_rotation(invoke) -> None:
    raw = b'{"event": {"event_type": "pagey.ping", "data": {"type": "ping"}}}'
    header = f"v1={'0' * 64},{sign(raw, TEST_SIGNING_SECRET)}, v2=abc"

    answer = invoke(api_event(raw, secret=None, headers={"x-pagerduty-signature": header}))

    assert answer.status == 200


def test_a_signature_under_the_second_configured_secret_passes(invoke) -> None:
    put_parameter("pagerduty-signing-secret", f"new-secret\n{TEST_SIGNING_SECRET}\n")

    assert invoke(api_event(payload("pagey-ping.json"))).status == 200
    assert invoke(api_event(payload("pagey-ping.json"), secret="new-secret")).status == 200
    assert invoke(api_event(payload("pagey-ping.json"), secret="old-secret")).status == 401


def test_a_sha256_prefixed_signature_is_not_accepted(invoke) -> None:
    raw = b'{"event": {"event_type": "pagey.ping", "data": {"type": "ping"}}}'
    header = sign(raw, TEST_SIGNING_SECRET).replace("v1=", "sha256=")

    assert invoke(api_event(raw, secret=None, headers={"x-pagerduty-signature": header})).status == 401


def test_header_names_are_matched_whatever_their_case(invoke) -> None:
    raw = b'{"event": {"event_type": "pagey.ping", "data": {"type": "ping"}}}'
    event = api_event(raw, secret=None, headers={"X-PagerDuty-Signature": sign(raw, TEST_SIGNING_SECRET)})

    assert invoke(event).status == 200


def test_a_base64_encoded_body_is_verified_after_decoding(invoke, devin) -> None:
    answer = invoke(api_event(incident(), base64_encoded=True))

    assert (answer.status, answer.body["status"]) == (200, "started")


def test_a_body_flagged_base64_that_is_not_base64_gets_400(invoke, devin) -> None:
    event = api_event(incident())
    event["isBase64Encoded"] = True

    assert invoke(event).status == 400
    assert devin.requests == []


class TestSharedSecretHeader:
    """The custom X-Webhook-Secret header of the original bridge, alone or with the signature."""

    def test_the_header_alone_authenticates_when_it_is_the_only_scheme(self, invoke, devin) -> None:
        delete_parameter("pagerduty-signing-secret")
        put_parameter("webhook-secret", WEBHOOK_SECRET)

        answer = invoke(api_event(incident(), secret=None, headers={"x-webhook-secret": WEBHOOK_SECRET}))

        assert (answer.status, answer.body["status"]) == (200, "started")

    def test_a_wrong_header_gets_401(self, invoke) -> None:
        delete_parameter("pagerduty-signing-secret")
        put_parameter("webhook-secret", WEBHOOK_SECRET)

        assert invoke(api_event(incident(), secret=None, headers={"x-webhook-secret": "guess"})).status == 401
        assert invoke(api_event(incident(), secret=None)).status == 401

    def test_with_both_configured_a_valid_signature_without_the_header_gets_401(self, invoke, devin) -> None:
        put_parameter("webhook-secret", WEBHOOK_SECRET)

        assert invoke(api_event(incident())).status == 401
        assert invoke(api_event(incident(), headers={"x-webhook-secret": WEBHOOK_SECRET})).status == 200
        assert len(devin.create_requests()) == 1


def test_with_no_authentication_configured_every_delivery_fails_closed_with_5xx(invoke, devin) -> None:
    delete_parameter("pagerduty-signing-secret")

    answer = invoke(api_event(incident()))

    assert answer.status == 500
    assert "not configured" in answer.body["message"]
    assert devin.requests == []
    assert ledger_items() == []


@pytest.mark.parametrize("secret", [TEST_SIGNING_SECRET, "wrong"])
def test_no_answer_ever_contains_a_secret(invoke, secret: str) -> None:
    answer = invoke(api_event(incident(), secret=secret))

    text = repr(answer)
    for value in (TEST_SIGNING_SECRET, "cog_test_key"):
        assert value not in text
