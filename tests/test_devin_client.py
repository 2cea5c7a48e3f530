"""The Devin client over real HTTP to the stand-in: what it retries, how long it waits, what it reports."""

from __future__ import annotations

import socket

import pytest
import requests
from bridge.devin import DevinClient, DevinOutcomeUnknown, DevinRejected, DevinUnavailable
from bridge.prompt import SessionRequest

from local.devin_standin import DevinStandIn, Fault
from tests.conftest import DEVIN_KEY, DEVIN_ORG

REQUEST = SessionRequest(prompt="p", title="t", tags=("pagerduty-incident:Q1",), playbook_id="playbook-1")


class Clock:
    """A monotonic clock that sleeping moves forward; real time passes only in real HTTP calls."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def client(base_url: str, clock: Clock, **options) -> DevinClient:
    return DevinClient(
        base_url,
        DEVIN_KEY,
        DEVIN_ORG,
        requests.Session(),
        clock=clock,
        sleep=clock.sleep,
        jitter=lambda: 1.0,
        **options,
    )


def test_create_sends_the_request_devin_documents(devin: DevinStandIn, clock: Clock) -> None:
    session = client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 20)

    sent = devin.create_requests()[0]
    assert sent.path == f"/v3/organizations/{DEVIN_ORG}/sessions"
    assert sent.headers["authorization"] == f"Bearer {DEVIN_KEY}"
    assert sent.json() == {
        "prompt": "p",
        "title": "t",
        "tags": ["pagerduty-incident:Q1"],
        "playbook_id": "playbook-1",
    }
    assert (session.session_id, session.url) == (devin.sessions[0]["session_id"], devin.sessions[0]["url"])


def test_retry_after_from_a_429_is_honoured(devin: DevinStandIn, clock: Clock) -> None:
    devin.enqueue(Fault.status(429, retry_after=3))

    client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 20)

    assert clock.sleeps == [3.0]
    assert len(devin.sessions) == 1


def test_5xx_and_429_without_retry_after_back_off_exponentially(devin: DevinStandIn, clock: Clock) -> None:
    devin.enqueue(Fault.status(500), Fault.status(502), Fault.status(429))

    client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 20)

    assert clock.sleeps == [0.5, 1.0, 2.0]  # jitter pinned at its maximum
    assert len(devin.create_requests()) == 4


def test_giving_up_after_the_last_attempt_reports_unavailable_with_nothing_created(devin, clock) -> None:
    devin.enqueue(*[Fault.status(503, retry_after=1)] * 4)

    with pytest.raises(DevinUnavailable) as caught:
        client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 20)

    assert caught.value.retry_after == 1
    assert len(devin.create_requests()) == 4
    assert devin.sessions == []


def test_no_retry_is_started_that_cannot_finish_before_the_deadline(devin, clock) -> None:
    devin.enqueue(Fault.status(429, retry_after=30))

    with pytest.raises(DevinUnavailable):
        client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 10)

    assert clock.sleeps == []
    assert len(devin.create_requests()) == 1


def test_no_attempt_at_all_when_the_deadline_is_too_close(devin, clock) -> None:
    with pytest.raises(DevinUnavailable):
        client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 0.5)

    assert devin.requests == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_rejections_without_retry(devin, clock, status: int) -> None:
    devin.enqueue(Fault.status(status))

    with pytest.raises(DevinRejected) as caught:
        client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 20)

    assert caught.value.status == status
    assert len(devin.create_requests()) == 1
    assert DEVIN_KEY not in str(caught.value)


def test_a_refused_connection_is_retried_because_nothing_was_sent(clock) -> None:
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DevinUnavailable):
        client(f"http://127.0.0.1:{port}", clock).create_session(REQUEST, deadline=clock() + 20)

    assert len(clock.sleeps) == 3


@pytest.mark.parametrize(
    "fault", [Fault.reset(), Fault.create_then_reset(), Fault.bad_body_created(), Fault.missing_id_created()]
)
def test_a_create_whose_answer_is_lost_is_not_retried_but_reported_unknown(devin, clock, fault) -> None:
    devin.enqueue(fault)

    with pytest.raises(DevinOutcomeUnknown):
        client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 20)

    assert len(devin.create_requests()) == 1


def test_a_create_slower_than_the_read_timeout_is_unknown(devin, clock) -> None:
    devin.enqueue(Fault.create_then_hang(2))

    with pytest.raises(DevinOutcomeUnknown):
        client(devin.base_url, clock, read_timeout=0.3).create_session(REQUEST, deadline=clock() + 20)

    assert len(devin.sessions) == 1


def test_find_session_returns_the_oldest_session_with_the_tag(devin, clock) -> None:
    c = client(devin.base_url, clock)
    first = c.create_session(REQUEST, deadline=clock() + 20)
    c.create_session(REQUEST, deadline=clock() + 20)
    c.create_session(SessionRequest(prompt="p", title="t", tags=("pagerduty-incident:Q2",)), deadline=clock() + 20)

    assert c.find_session("pagerduty-incident:Q1", deadline=clock() + 20) == first
    assert c.find_session("pagerduty-incident:Q3", deadline=clock() + 20) is None
    assert devin.requests[-1].query["tags"] == ["pagerduty-incident:Q3"]


def test_find_session_is_retried_even_after_a_reset_because_listing_is_safe(devin, clock) -> None:
    c = client(devin.base_url, clock)
    created = c.create_session(REQUEST, deadline=clock() + 20)
    devin.enqueue_list(Fault.reset(), Fault.status(502))

    assert c.find_session("pagerduty-incident:Q1", deadline=clock() + 20) == created
    assert len(clock.sleeps) == 2
