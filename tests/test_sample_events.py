"""Every file in events/ goes through the real lambda_handler and gets the answer the contract promises."""

from __future__ import annotations

import pytest

from scripts.make_events import EXPECTED, LIFECYCLE, LIFECYCLE_PARAMETERS
from tests.conftest import TABLE, ledger_items
from tests.support.events import api_event, load_event, payload


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event_gets_its_documented_answer(name: str, invoke, devin) -> None:
    # GIVEN a fresh deployment with the sample signing secret WHEN PagerDuty delivers the sample event
    answer = invoke(load_event(name))

    # THEN the answer is the one events/ documents for it
    status, outcome = EXPECTED[name]
    assert answer.status == status, answer.body
    if outcome is not None:
        assert answer.body["status"] == outcome
    else:
        assert set(answer.body) == {"message"}
    # AND only the deliveries that start a session reach Devin or the ledger
    starts = outcome == "started"
    assert len(devin.create_requests()) == (1 if starts else 0)
    assert len(ledger_items()) == (1 if starts else 0)


def test_the_p1_sample_delivered_twice_starts_one_session(invoke, devin) -> None:
    first = invoke(load_event("resolved-p1-starts-session.json"))
    again = invoke(load_event("resolved-p1-base64-body.json"))

    assert (first.status, first.body["status"]) == (200, "started")
    assert (again.status, again.body["status"]) == (200, "duplicate")
    assert again.body["session_id"] == first.body["session_id"]
    assert len(devin.create_requests()) == 1


@pytest.fixture
def lifecycle(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The function's environment as template.yaml makes it from LIFECYCLE_PARAMETERS (what docs/local.md starts)."""
    from local.template import function_environment

    configured = function_environment(TABLE, parameters=LIFECYCLE_PARAMETERS)
    for name in ("EVENT_TYPES", "FOLLOW_UP_EVENT_TYPES"):
        monkeypatch.setenv(name, configured[name])


def test_the_lifecycle_samples_in_order_are_one_session_and_a_message_for_each_later_event(
    lifecycle, invoke, devin
) -> None:
    # GIVEN a deployment that starts sessions early and forwards notes and reopenings, WHEN the lifecycle incident's
    # events arrive in the order they happened
    answers = [(name, invoke(api_event(payload(name)))) for name, _ in LIFECYCLE]

    # THEN each gets the answer LIFECYCLE documents, all about one session
    assert [(name, a.status, a.body["status"]) for name, a in answers] == [
        (name, 200, outcome) for name, outcome in LIFECYCLE
    ]
    assert len({a.body["session_id"] for _, a in answers}) == 1
    assert len(devin.create_requests()) == 1
    # AND the session got one message per later event, in order
    session_id = answers[0][1].body["session_id"]
    later = [payload(name)["event"] for name, _ in LIFECYCLE[1:]]
    firsts = [message.splitlines()[0] for message in devin.messages(session_id)]
    assert len(firsts) == len(later)
    for first, event in zip(firsts, later, strict=True):
        assert first.startswith(f"PagerDuty event {event['id']} ({event['event_type']}) for this incident"), first
