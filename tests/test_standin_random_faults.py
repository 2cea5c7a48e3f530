"""The Devin stand-in's random transient faults (failure_rate, failure_seed), which the storm relies on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local.devin_standin import TRANSIENT_FAULTS, DevinStandIn, Fault, TransientFault

ORG = "org-test"
LOST_ANSWER = TransientFault("created, then reset (answer lost)", 1.0, Fault.create_then_reset())


def _outcome(api: requests.Session, standin: DevinStandIn) -> str:
    """What one create looked like to the caller: the status, or the connection error's kind."""
    url = f"{standin.base_url}/v3/organizations/{ORG}/sessions"
    try:
        return str(api.post(url, json={"prompt": "Draft a postmortem", "tags": ["t"]}, timeout=5).status_code)
    except requests.ConnectionError:
        return "connection error"


@pytest.fixture
def api() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _outcomes(api: requests.Session, count: int, **options: object) -> tuple[list[str], dict[str, int]]:
    # Without the slow fault: these creates run one after another, and it would add 11 s each time.
    mix = [kind for kind in TRANSIENT_FAULTS if "after 11 s" not in kind.name]
    with DevinStandIn(org_id=ORG, failure_mix=mix, **options) as standin:  # type: ignore[arg-type]
        return [_outcome(api, standin) for _ in range(count)], dict(standin.injected)


def test_the_same_seed_draws_the_same_faults_in_the_same_order(api: requests.Session) -> None:
    first = _outcomes(api, 40, failure_rate=0.3, failure_seed=11)

    assert _outcomes(api, 40, failure_rate=0.3, failure_seed=11) == first


def test_about_the_configured_share_of_creates_get_a_fault(api: requests.Session) -> None:
    outcomes, injected = _outcomes(api, 200, failure_rate=0.25, failure_seed=3)

    assert 30 <= sum(injected.values()) <= 70
    # Every fault in the mix shows: another status (a cut-short answer is a 201), or a connection error.
    assert sum(1 for outcome in outcomes if outcome != "200") == sum(injected.values())


def test_no_failure_rate_means_no_random_fault(api: requests.Session) -> None:
    outcomes, injected = _outcomes(api, 30)

    assert (set(outcomes), injected) == ({"200"}, {})


def test_a_lost_answer_fault_still_creates_the_session(api: requests.Session) -> None:
    with DevinStandIn(org_id=ORG, failure_rate=1.0, failure_seed=1, failure_mix=[LOST_ANSWER]) as standin:
        outcome = _outcome(api, standin)

        assert (outcome, len(standin.sessions), dict(standin.injected)) == (
            "connection error",
            1,
            {LOST_ANSWER.name: 1},
        )


def test_scripted_faults_come_before_random_ones(api: requests.Session) -> None:
    with DevinStandIn(org_id=ORG, failure_rate=1.0, failure_seed=1, failure_mix=[LOST_ANSWER]) as standin:
        standin.enqueue(Fault.status(503))

        assert [_outcome(api, standin), _outcome(api, standin)] == ["503", "connection error"]


def test_list_calls_never_get_a_random_fault(api: requests.Session) -> None:
    with DevinStandIn(org_id=ORG, failure_rate=1.0, failure_seed=1, failure_mix=[LOST_ANSWER]) as standin:
        url = f"{standin.base_url}/v3/organizations/{ORG}/sessions"

        assert [api.get(url, params={"tags": "t"}, timeout=5).status_code for _ in range(5)] == [200] * 5


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_failure_rate_outside_0_to_1_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        DevinStandIn(failure_rate=rate)
