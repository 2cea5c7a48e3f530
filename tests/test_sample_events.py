"""Every file in events/ goes through the real lambda_handler and gets the answer the contract promises."""

from __future__ import annotations

import pytest

from scripts.make_events import EXPECTED
from tests.conftest import ledger_items
from tests.support.events import load_event


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
