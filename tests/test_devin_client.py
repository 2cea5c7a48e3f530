"""The Devin client over real HTTP to the stand-in: what it retries, how long it waits, what it reports."""

from __future__ import annotations

import socket
from urllib.parse import quote

import pytest
import requests
from bridge.devin.client import (
    MAX_PULL_REQUESTS,
    MAX_URL_LENGTH,
    DevinClient,
    DevinOutcomeUnknown,
    DevinRejected,
    DevinUnavailable,
    SessionNotFound,
    SessionState,
)
from bridge.devin.prompt import SessionRequest

from local.devin_standin import DevinStandIn, Fault
from tests.conftest import DEVIN_KEY, DEVIN_ORG
from tests.support.clock import Clock

REQUEST = SessionRequest(prompt="p", title="t", tags=("pagerduty-incident:Q1",), playbook_id="playbook-1")


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


def test_503_and_429_without_retry_after_back_off_exponentially(devin: DevinStandIn, clock: Clock) -> None:
    devin.enqueue(Fault.status(503), Fault.status(503), Fault.status(429))

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


@pytest.mark.parametrize("code", [500, 502, 504, 501])
@pytest.mark.parametrize("created", [True, False], ids=["created", "nothing-created"])
def test_a_create_answered_with_a_5xx_that_may_follow_the_create_is_unknown_and_sent_once(
    devin, clock, code: int, created: bool
) -> None:
    # GIVEN a gateway answers a server error, before or after Devin created the session (the caller cannot tell)
    devin.enqueue(Fault.status(code, create=created))

    # WHEN the client creates
    with pytest.raises(DevinOutcomeUnknown):
        client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 20)

    # THEN the create went out once, and the caller hears that a session may exist
    assert len(devin.create_requests()) == 1
    assert len(devin.sessions) == int(created)
    assert clock.sleeps == []


@pytest.mark.parametrize("code", [500, 502, 504])
def test_a_message_answered_with_a_5xx_after_it_was_stored_is_unknown_and_sent_once(devin, clock, code: int) -> None:
    sid = _created(devin, clock)
    devin.enqueue_message(Fault.status(code, create=True))

    with pytest.raises(DevinOutcomeUnknown):
        client(devin.base_url, clock).send_message(sid, "Only once.", deadline=clock() + 20)

    assert devin.messages(sid) == ["Only once."]
    assert len(devin.message_requests()) == 1


def test_reads_are_retried_after_any_5xx(devin, clock) -> None:
    c = client(devin.base_url, clock)
    sid = c.create_session(REQUEST, deadline=clock() + 20).session_id
    devin.enqueue_get(Fault.status(500), Fault.status(502), Fault.status(504))

    assert c.get_session(sid, deadline=clock() + 20).session_id == sid
    assert len(clock.sleeps) == 3


def test_messages_lists_what_the_session_received_oldest_first_across_pages(devin, clock) -> None:
    c = client(devin.base_url, clock)
    sid = c.create_session(REQUEST, deadline=clock() + 20).session_id
    for number in range(205):
        c.send_message(sid, f"message {number}", deadline=clock() + 20)

    received = c.messages(sid, deadline=clock() + 20)

    assert received == [f"message {number}" for number in range(205)]
    pages = [r for r in devin.requests if r.method == "GET" and r.path.endswith("/messages")]
    assert [r.query.get("first") for r in pages] == [["200"], ["200"]]
    assert "after" not in pages[0].query and pages[1].query["after"]


def test_messages_of_a_session_devin_does_not_have_is_session_not_found(devin, clock) -> None:
    with pytest.raises(SessionNotFound):
        client(devin.base_url, clock).messages("devin-gone", deadline=clock() + 20)


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


# Reading one session, and sending it a message


def _created(devin: DevinStandIn, clock: Clock) -> str:
    """A session made in the stand-in by a create call, as the Lambda makes them."""
    return client(devin.base_url, clock).create_session(REQUEST, deadline=clock() + 20).session_id


def _errors(error: BaseException | None) -> list[BaseException]:
    """The exception and every exception it was raised from or during."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def test_get_session_reports_a_new_session_as_devin_does(devin: DevinStandIn, clock: Clock) -> None:
    sid = _created(devin, clock)

    state = client(devin.base_url, clock).get_session(sid, deadline=clock() + 20)

    updated_at = float(devin.sessions[0]["updated_at"])
    assert state == SessionState(
        sid, status="new", status_detail=None, pull_request_urls=(), acus_consumed=0, updated_at=updated_at
    )
    sent = devin.requests[-1]
    assert (sent.method, sent.path) == ("GET", f"/v3/organizations/{DEVIN_ORG}/sessions/{sid}")
    assert sent.headers["authorization"] == f"Bearer {DEVIN_KEY}"


def test_get_session_reports_status_detail_acus_and_only_usable_pull_request_urls(devin, clock) -> None:
    sid = _created(devin, clock)
    devin.update_session(sid, status="running", status_detail="finished", acus_consumed=2.5)
    for url in (
        "https://github.com/acme/checkout-api/pull/7",
        "javascript:alert(document.cookie)",
        "https://github.com/acme/checkout-api/pull/7",  # the same pull request twice
        "ftp://files.example.com/patch",
        "/acme/checkout-api/pull/8",  # not absolute
        "https://github.com/acme/" + "x" * MAX_URL_LENGTH,  # too long to pass on
        "https://github.com/acme/checkout-api/pull/9\nInjected: line",
        "https://github.com/acme/checkout-api/pull/10 (see the rollback)",
        "http://gitlab.example.com/acme/infra/-/merge_requests/3",
    ):
        devin.open_pull_request(sid, url)

    state = client(devin.base_url, clock).get_session(sid, deadline=clock() + 20)

    assert (state.status, state.status_detail, state.acus_consumed) == ("running", "finished", 2.5)
    assert state.pull_request_urls == (
        "https://github.com/acme/checkout-api/pull/7",
        "http://gitlab.example.com/acme/infra/-/merge_requests/3",
    )


def test_get_session_passes_on_at_most_max_pull_requests_urls(devin, clock) -> None:
    sid = _created(devin, clock)
    for n in range(MAX_PULL_REQUESTS + 5):
        devin.open_pull_request(sid, f"https://github.com/acme/api/pull/{n}")

    state = client(devin.base_url, clock).get_session(sid, deadline=clock() + 20)

    assert state.pull_request_urls == tuple(f"https://github.com/acme/api/pull/{n}" for n in range(MAX_PULL_REQUESTS))


def test_get_session_reads_a_session_with_odd_or_missing_fields(devin, clock) -> None:
    odd = {
        "session_id": "devin-odd",
        "status": None,
        "status_detail": 3,
        "acus_consumed": True,
        "pull_requests": [{"pr_url": 5}, "https://github.com/acme/api/pull/1", {}, {"pr_url": "https://h.example/1"}],
    }
    devin.enqueue_get(Fault.status(200, odd), Fault.status(200, b'{"session_id": "devin-inf", "acus_consumed": 1e999}'))
    c = client(devin.base_url, clock)

    state = c.get_session("devin-odd", deadline=clock() + 20)
    # Valid JSON, yet beyond a float: JSON readers make it infinity.
    infinite = c.get_session("devin-inf", deadline=clock() + 20)

    assert state == SessionState("devin-odd", "", None, ("https://h.example/1",), None)
    assert infinite.acus_consumed is None


@pytest.mark.parametrize("fault", [Fault.status(503), Fault.reset()], ids=["503", "reset"])
def test_get_session_is_retried_because_reading_is_safe(devin, clock, fault: Fault) -> None:
    sid = _created(devin, clock)
    devin.enqueue_get(fault)

    state = client(devin.base_url, clock).get_session(sid, deadline=clock() + 20)

    assert state.session_id == sid
    assert clock.sleeps == [0.5]
    assert [r.method for r in devin.requests[1:]] == ["GET", "GET"]


def test_get_session_of_a_session_devin_no_longer_has_is_not_found(devin, clock) -> None:
    sid = _created(devin, clock)
    devin.forget_session(sid)

    with pytest.raises(SessionNotFound) as caught:
        client(devin.base_url, clock).get_session(sid, deadline=clock() + 20)

    assert caught.value.session_id == sid
    assert len(devin.requests) == 2 and clock.sleeps == []  # the create, and one get: a 404 is not retried


def test_get_session_with_a_key_devin_no_longer_accepts_is_rejected(devin, clock) -> None:
    sid = _created(devin, clock)
    devin.api_key = "cog_rotated_since"

    with pytest.raises(DevinRejected) as caught:
        client(devin.base_url, clock).get_session(sid, deadline=clock() + 20)

    assert caught.value.status == 401
    assert len(devin.requests) == 2 and clock.sleeps == []


def test_get_session_whose_answer_is_not_a_session_is_unavailable(devin, clock) -> None:
    devin.enqueue_get(Fault.status(200, b"<html>Scheduled maintenance</html>"))

    with pytest.raises(DevinUnavailable):
        client(devin.base_url, clock).get_session("devin-abc", deadline=clock() + 20)


def test_a_404_from_the_session_list_stays_a_rejection(devin, clock) -> None:
    devin.enqueue_list(Fault.status(404))

    with pytest.raises(DevinRejected) as caught:
        client(devin.base_url, clock).find_session("pagerduty-incident:Q1", deadline=clock() + 20)

    assert caught.value.status == 404


def test_send_message_posts_the_message_once_and_returns_the_session(devin, clock) -> None:
    sid = _created(devin, clock)

    state = client(devin.base_url, clock).send_message(sid, "Also check the 10:02 deploy.", deadline=clock() + 20)

    [sent] = devin.message_requests()
    assert sent.path == f"/v3/organizations/{DEVIN_ORG}/sessions/{sid}/messages"
    assert sent.headers["authorization"] == f"Bearer {DEVIN_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {"message": "Also check the 10:02 deploy."}
    assert devin.messages(sid) == ["Also check the 10:02 deploy."]
    assert state is not None and (state.session_id, state.status) == (sid, "new")


def test_send_message_wakes_a_suspended_session(devin, clock) -> None:
    sid = _created(devin, clock)
    devin.update_session(sid, status="suspended", status_detail="inactivity")
    c = client(devin.base_url, clock)

    state = c.send_message(sid, "Please continue.", deadline=clock() + 20)

    assert state is not None and state.status == "running"
    assert c.get_session(sid, deadline=clock() + 20).status == "running"


def test_send_message_accepted_with_an_answer_that_is_not_a_session_returns_none(devin, clock) -> None:
    sid = _created(devin, clock)
    devin.enqueue_message(Fault.status(200))  # a 2xx whose body is a ProblemDetail, not a session

    assert client(devin.base_url, clock).send_message(sid, "m", deadline=clock() + 20) is None
    assert len(devin.message_requests()) == 1


def test_send_message_to_a_session_devin_no_longer_has_is_not_found(devin, clock) -> None:
    sid = _created(devin, clock)
    devin.forget_session(sid)

    with pytest.raises(SessionNotFound):
        client(devin.base_url, clock).send_message(sid, "m", deadline=clock() + 20)

    assert len(devin.message_requests()) == 1 and devin.messages(sid) == []


def test_send_message_without_permission_is_rejected_without_retry(devin, clock) -> None:
    sid = _created(devin, clock)
    # Third-party reports: messaging needs ManageOrgSessions, and answers 403 without it.
    devin.enqueue_message(Fault.status(403))

    with pytest.raises(DevinRejected) as caught:
        client(devin.base_url, clock).send_message(sid, "m", deadline=clock() + 20)

    assert caught.value.status == 403
    assert len(devin.message_requests()) == 1 and devin.messages(sid) == []


def test_send_message_refused_until_tries_run_out_is_unavailable_with_retry_after(devin, clock) -> None:
    sid = _created(devin, clock)
    devin.enqueue_message(*[Fault.status(503, retry_after=2)] * 4)

    with pytest.raises(DevinUnavailable) as caught:
        client(devin.base_url, clock).send_message(sid, "m", deadline=clock() + 20)

    assert caught.value.retry_after == 2
    assert clock.sleeps == [2.0, 2.0, 2.0]
    assert len(devin.message_requests()) == 4 and devin.messages(sid) == []


@pytest.mark.parametrize("fault", [Fault.create_then_reset(), Fault.create_then_hang(2)], ids=["reset", "hang"])
def test_send_message_whose_answer_is_lost_is_not_resent_but_reported_unknown(devin, clock, fault: Fault) -> None:
    sid = _created(devin, clock)
    devin.enqueue_message(fault)

    with pytest.raises(DevinOutcomeUnknown):
        client(devin.base_url, clock, read_timeout=0.3).send_message(sid, "Only once.", deadline=clock() + 20)

    assert devin.messages(sid) == ["Only once."]
    assert len(devin.message_requests()) == 1


def test_send_message_refused_before_sending_is_retried_and_delivered_once(devin, clock) -> None:
    sid = _created(devin, clock)
    devin.stop()  # nothing listens on its port until the client has waited once

    def wait_then_come_back(seconds: float) -> None:
        clock.sleep(seconds)
        devin.start()  # the same port, the same sessions

    c = DevinClient(
        devin.base_url,
        DEVIN_KEY,
        DEVIN_ORG,
        requests.Session(),
        clock=clock,
        sleep=wait_then_come_back,
        jitter=lambda: 1,
    )

    state = c.send_message(sid, "Delivered after a refusal.", deadline=clock() + 20)

    assert state is not None and state.session_id == sid
    assert clock.sleeps == [0.5]
    assert devin.messages(sid) == ["Delivered after a refusal."]


def test_send_message_is_not_started_when_the_deadline_is_too_close(devin, clock) -> None:
    sid = _created(devin, clock)

    with pytest.raises(DevinUnavailable):
        client(devin.base_url, clock).send_message(sid, "m", deadline=clock() + 0.5)

    assert devin.message_requests() == []


@pytest.mark.parametrize(
    "odd", ["devin-a/b", "devin-x?tags=y#frag", "devin-100%25", "devin-a b", "../sessions", "devin-é"]
)
def test_session_ids_go_into_the_path_quoted_as_one_segment(devin, clock, odd: str) -> None:
    _created(devin, clock)
    devin.sessions[0]["session_id"] = odd  # as if Devin had issued such an id
    c = client(devin.base_url, clock)

    state = c.get_session(odd, deadline=clock() + 20)
    c.send_message(odd, "m", deadline=clock() + 20)

    assert state.session_id == odd
    assert devin.messages(odd) == ["m"]
    [sent] = devin.message_requests()
    assert sent.path == f"/v3/organizations/{DEVIN_ORG}/sessions/{quote(odd, safe='')}/messages"
    assert sent.query == {}


@pytest.mark.parametrize("sid", ["", ".", ".."])
def test_a_session_id_no_path_can_name_is_not_found_without_calling_devin(devin, clock, sid: str) -> None:
    c = client(devin.base_url, clock)

    with pytest.raises(SessionNotFound):
        c.get_session(sid, deadline=clock() + 20)
    with pytest.raises(SessionNotFound):
        c.send_message(sid, "m", deadline=clock() + 20)

    assert devin.requests == [] and devin.sessions == []


def _wrong_key(devin: DevinStandIn, sid: str) -> None:
    devin.api_key = "cog_rotated_since"


@pytest.mark.parametrize(
    ("call", "setup", "expected"),
    [
        pytest.param("get", DevinStandIn.forget_session, SessionNotFound, id="get-404"),
        pytest.param("get", _wrong_key, DevinRejected, id="get-401"),
        pytest.param("get", lambda d, _: d.enqueue_get(*[Fault.status(503)] * 4), DevinUnavailable, id="get-503"),
        pytest.param("message", DevinStandIn.forget_session, SessionNotFound, id="message-404"),
        pytest.param("message", _wrong_key, DevinRejected, id="message-401"),
        pytest.param(
            "message", lambda d, _: d.enqueue_message(*[Fault.status(429)] * 4), DevinUnavailable, id="message-429"
        ),
        pytest.param(
            "message", lambda d, _: d.enqueue_message(Fault.create_then_reset()), DevinOutcomeUnknown, id="message-lost"
        ),
        pytest.param(
            "message", lambda d, _: d.enqueue_message(Fault.create_then_hang(2)), DevinOutcomeUnknown, id="message-slow"
        ),
    ],
)
def test_the_api_key_never_appears_in_what_the_calls_raise(devin, clock, call, setup, expected) -> None:
    sid = _created(devin, clock)
    setup(devin, sid)
    c = client(devin.base_url, clock, read_timeout=0.3)

    with pytest.raises(expected) as caught:
        if call == "get":
            c.get_session(sid, deadline=clock() + 20)
        else:
            c.send_message(sid, "m", deadline=clock() + 20)

    for error in _errors(caught.value):
        assert DEVIN_KEY not in f"{error} {error!r}"
    assert DEVIN_KEY not in repr(c)
