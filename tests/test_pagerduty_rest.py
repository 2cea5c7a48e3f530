"""The PagerDuty REST client and read_record over real HTTP to the stand-in: what it sends, what it retries, how long
it takes, and what a prompt gets to read when PagerDuty fails."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from bridge.pagerduty import record
from bridge.pagerduty.client import (
    LISTING_LIMIT,
    PagerDutyClient,
    PagerDutyError,
    PagerDutyNotConfigured,
    PagerDutyOutcomeUnknown,
    PagerDutyRefused,
    PagerDutyTimedOut,
    PagerDutyUnavailable,
    read_record,
)

from local.http_server import Fault
from local.pagerduty_standin import PagerDutyStandIn, sample_record
from tests.support.clock import Clock

KEY = "y_NMARKERpdKEY3xq9Zw"  # 20 characters, as PagerDuty's keys are
SENDER = "postmortem-bot@example.com"
INCIDENT = "Q2CKYRLH85UNN4"
ACCEPT = "application/vnd.pagerduty+json;version=2"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def shared_pagerduty() -> Iterator[PagerDutyStandIn]:
    # One server for the module (stopping one takes 50 ms), emptied before each test.
    with PagerDutyStandIn(api_key=KEY) as standin:
        yield standin


@pytest.fixture
def pagerduty(shared_pagerduty: PagerDutyStandIn) -> PagerDutyStandIn:
    shared_pagerduty.reset()
    return shared_pagerduty


def client(base_url: str, clock: Clock | None = None, **options: Any) -> PagerDutyClient:
    """A client on the fake clock (sleeps are recorded, not slept), or on real time when `clock` is None."""
    timing: dict[str, Any] = {"clock": clock, "sleep": clock.sleep} if clock is not None else {}
    return PagerDutyClient(
        base_url, options.pop("api_key", KEY), requests.Session(), jitter=lambda: 1.0, **timing, **options
    )


def entries(count: int, start_minute: int = 0) -> list[dict[str, Any]]:
    """`count` log entries a minute apart, in chronological order, named e0, e1, …"""
    return [
        {
            "id": f"R{n}",
            "type": "annotate_log_entry",
            "summary": f"e{n}",
            "created_at": f"2024-09-14T{(start_minute + n) // 60:02d}:{(start_minute + n) % 60:02d}:00Z",
        }
        for n in range(count)
    ]


def reads(pagerduty: PagerDutyStandIn, endpoint: str) -> list[Any]:
    return [r for r in pagerduty.requests if r.path.endswith(endpoint) and r.method == "GET"]


# What is sent


def test_reads_send_the_token_and_the_versioned_accept_and_no_from(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT)

    read_record(client(pagerduty.base_url, clock, from_email=SENDER), INCIDENT, 5, clock=clock)

    assert [r.path for r in pagerduty.requests] == [
        f"/incidents/{INCIDENT}/log_entries",
        f"/incidents/{INCIDENT}/notes",
        f"/incidents/{INCIDENT}/alerts",
        f"/incidents/{INCIDENT}/related_change_events",
        f"/incidents/{INCIDENT}/past_incidents",
    ]
    assert pagerduty.requests[-1].query == {"limit": ["5"]}
    for sent in pagerduty.requests:
        assert sent.headers["authorization"] == f"Token token={KEY}"
        assert sent.headers["accept"] == ACCEPT
        assert "from" not in sent.headers


def test_a_note_is_posted_with_from_and_json(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT)

    created = client(pagerduty.base_url, clock, from_email=SENDER).post_note(INCIDENT, "Draft: https://x", clock() + 5)

    [sent] = pagerduty.requests
    assert (sent.method, sent.path) == ("POST", f"/incidents/{INCIDENT}/notes")
    assert sent.headers["authorization"] == f"Token token={KEY}" and sent.headers["accept"] == ACCEPT
    assert sent.headers["from"] == SENDER and sent.headers["content-type"] == "application/json"
    assert sent.json() == {"note": {"content": "Draft: https://x"}}
    assert created == pagerduty.notes_posted(INCIDENT)[0]


def test_incident_ids_are_quoted_into_one_path_segment(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident("Q/1?x#%", notes=[{"id": "N1", "content": "kept"}])

    notes = client(pagerduty.base_url, clock).notes("Q/1?x#%", clock() + 5)

    assert notes == [{"id": "N1", "content": "kept"}]
    assert pagerduty.requests[0].path == "/incidents/Q%2F1%3Fx%23%25/notes"


def test_a_note_without_a_from_address_is_refused_before_any_request(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT)

    with pytest.raises(PagerDutyNotConfigured, match="From"):
        client(pagerduty.base_url, clock).post_note(INCIDENT, "x", clock() + 5)

    assert pagerduty.requests == []


# Pagination and the record


def test_pagination_is_followed_to_the_end(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT, log_entries=entries(230))

    page = client(pagerduty.base_url, clock).log_entries(INCIDENT, clock() + 5)

    sent = reads(pagerduty, "/log_entries")
    assert [(r.query["offset"], r.query["limit"]) for r in sent] == [
        (["0"], ["100"]),
        (["100"], ["100"]),
        (["200"], ["100"]),
    ]
    assert [r.query.get("total") for r in sent] == [["true"], None, None]
    assert [item["id"] for item in page.items] == [f"R{n}" for n in range(230)]
    assert (page.total, page.complete) == (230, True)


def test_the_sample_record_reads_as_a_chronological_timeline(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    # GIVEN PagerDuty's answers newest first, one pair out of order, times in Z and -06:00
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))

    got = read_record(client(pagerduty.base_url, clock), INCIDENT, 5, clock=clock)

    timeline = got.log_entries.entries
    assert [e.kind for e in timeline] == [
        "trigger",
        "notify",
        "acknowledge",
        "unacknowledge",
        "notify",
        "acknowledge",
        "annotate",
        "resolve",
    ]
    assert timeline[0].at == "2026-03-14T09:12:44Z" and timeline[1].at == "2026-03-14T09:12:46Z"
    assert timeline[0].what == "Triggered through the API: Checkout API 5xx error rate above 5% for 5 minutes"
    assert timeline[-1].what.startswith("Resolved by Dana Whitfield: Rolled back checkout-service to 2026.03.13-2")
    assert (timeline[-1].who, timeline[-1].channel) == ("Dana Whitfield", "website")
    assert [a.severity for a in got.alerts.entries] == ["critical", "warning"]
    assert got.alerts.entries[0].details == '{"error_rate":"7.2%","deploy":"412","region":"us-west-2"}'
    assert got.alerts.entries[1].details == '{"p99":"2.8 s","threshold":"2 s","host":"checkout-api"}'
    assert [n.author for n in got.notes.entries] == ["Checkout auto-remediation", "Dana Whitfield"]
    for part in (got.log_entries, got.alerts, got.notes):
        assert part.unavailable is None and part.omitted == 0 and part.total == len(part.entries)


def test_a_long_log_keeps_its_first_25_and_last_25_entries(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT, log_entries=list(reversed(entries(120))))

    got = read_record(client(pagerduty.base_url, clock), INCIDENT, 5, clock=clock)

    kept = [e.what for e in got.log_entries.entries]
    assert kept == [f"e{n}" for n in range(25)] + [f"e{n}" for n in range(95, 120)]
    assert (got.log_entries.total, got.log_entries.omitted) == (120, 70)
    assert record.as_data(got)["timeline_omitted"] == 70


def test_pagerdutys_listing_limit_of_10000_is_never_passed(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT, alerts=[{"id": "A"}] * 10_050)

    page = client(pagerduty.base_url, clock).alerts(INCIDENT, clock() + 60)

    assert (len(page.items), page.total, page.complete, page.stopped) == (10_000, 10_050, False, LISTING_LIMIT)
    sent = reads(pagerduty, "/alerts")
    assert max(int(r.query["offset"][0]) + int(r.query["limit"][0]) for r in sent) == 10_000


def test_a_failure_after_the_first_page_keeps_what_was_read(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT, log_entries=entries(230))
    pagerduty.enqueue("log_entries", Fault(), Fault(), *[Fault.status(500)] * 3)

    got = read_record(client(pagerduty.base_url, clock), INCIDENT, 10, clock=clock)

    part = got.log_entries
    assert (part.total, part.omitted, len(part.entries)) == (230, 150, 50)
    assert part.unavailable == "only 200 of 230 log entries were read: PagerDuty failed with a server error (HTTP 500)"
    assert got.notes.unavailable is None and got.alerts.unavailable is None


def test_a_listing_whose_offset_would_not_move_is_stopped(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    # GIVEN a PagerDuty that says there is more, then answers pages with nothing in them
    pagerduty.add_incident(INCIDENT)
    first = {"log_entries": entries(2), "limit": 100, "offset": 0, "more": True, "total": 5}
    stuck = {"log_entries": [], "limit": 100, "offset": 2, "more": True, "total": 5}
    pagerduty.enqueue("log_entries", Fault.status(200, first), *[Fault.status(200, stuck)] * 5)

    page = client(pagerduty.base_url, clock).log_entries(INCIDENT, clock() + 5)

    assert len(reads(pagerduty, "/log_entries")) == 2
    assert (len(page.items), page.total, page.complete) == (2, 5, False)


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    with PagerDutyStandIn() as elsewhere:
        elsewhere.add_incident(INCIDENT)
        pagerduty.add_incident(INCIDENT)
        moved = {"Location": f"{elsewhere.base_url}/incidents/{INCIDENT}/notes"}
        pagerduty.enqueue("notes", Fault.status(301, headers=moved))

        with pytest.raises(PagerDutyRefused) as caught:
            client(pagerduty.base_url, clock).notes(INCIDENT, clock() + 5)

    assert caught.value.status == 301 and elsewhere.requests == []


# Refusals


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "PagerDuty refused the API key (HTTP 401)"),
        (403, "PagerDuty did not allow the API key to read this incident (HTTP 403)"),
        (404, "PagerDuty does not know this incident (HTTP 404)"),
    ],
)
def test_a_refusal_is_not_retried_and_every_part_says_why_in_our_words(
    pagerduty: PagerDutyStandIn, clock: Clock, status: int, reason: str
) -> None:
    pagerduty.add_incident(INCIDENT)
    if status == 403:  # as PagerDuty answers a user who cannot see the incident (code 2018)
        for endpoint in ("log_entries", "log_entries", "notes", "alerts", "related_change_events", "past_incidents"):
            pagerduty.enqueue(endpoint, Fault.status(403))
    key = "wrong-key" if status == 401 else KEY
    incident = "QUNKNOWN" if status == 404 else INCIDENT

    with pytest.raises(PagerDutyRefused) as caught:
        client(pagerduty.base_url, clock, api_key=key).log_entries(incident, clock() + 5)
    got = read_record(client(pagerduty.base_url, clock, api_key=key), incident, 5, clock=clock)

    assert caught.value.status == status and caught.value.reason == reason
    assert len(pagerduty.requests) == 6 and clock.sleeps == []  # one each: nothing retried
    assert [p.unavailable for p in (got.log_entries, got.notes, got.alerts)] == [reason] * 3
    changes, past = got.change_events, got.past_incidents
    if status == 401:  # the key, not the account's plan
        assert (changes.unavailable, past.unavailable) == (reason, reason)
        assert not (changes.not_in_plan or past.not_in_plan)
    else:  # what an account without PagerDuty's AIOps add-on gets too: not counted as a failure
        assert (
            changes.unavailable
            == f"PagerDuty did not list related change events (HTTP {status}); they need its AIOps add-on"
        )
        assert changes.not_in_plan and past.not_in_plan
    assert record.as_data(got) == {}


def test_a_read_only_key_cannot_post_a_note(clock: Clock) -> None:
    with PagerDutyStandIn(api_key=KEY, read_only=True) as read_only:
        read_only.add_incident(INCIDENT)

        with pytest.raises(PagerDutyRefused) as caught:
            client(read_only.base_url, clock, from_email=SENDER).post_note(INCIDENT, "x", clock() + 5)

    assert caught.value.status == 403 and "read-only" in caught.value.reason
    assert read_only.notes_posted(INCIDENT) == []


# Retries


@pytest.mark.parametrize(
    "fault",
    [Fault.status(429, headers={"ratelimit-reset": "2"}), Fault.status(429, retry_after=2)],
    ids=["ratelimit-reset", "retry-after"],
)
def test_a_429_waits_as_long_as_pagerduty_asks_then_succeeds(
    pagerduty: PagerDutyStandIn, clock: Clock, fault: Fault
) -> None:
    pagerduty.add_incident(INCIDENT, log_entries=entries(3))
    pagerduty.enqueue("log_entries", fault)

    page = client(pagerduty.base_url, clock).log_entries(INCIDENT, clock() + 5)

    assert clock.sleeps == [2.0]
    assert len(page.items) == 3 and page.complete


def test_a_429_asking_for_more_time_than_is_left_is_given_up_at_once(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT)
    pagerduty.enqueue("alerts", Fault.status(429, headers={"ratelimit-reset": "30"}))

    with pytest.raises(PagerDutyUnavailable) as caught:
        client(pagerduty.base_url, clock).alerts(INCIDENT, clock() + 5)

    assert clock.sleeps == [] and len(pagerduty.requests) == 1
    assert caught.value.status == 429 and caught.value.reason == "PagerDuty rate-limited the reads (HTTP 429)"


def test_5xx_is_retried_with_backoff_until_the_tries_run_out(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT)
    pagerduty.enqueue("notes", Fault.status(500), Fault.status(502), Fault.status(503))

    with pytest.raises(PagerDutyUnavailable) as caught:
        client(pagerduty.base_url, clock).notes(INCIDENT, clock() + 5)

    assert clock.sleeps == [0.25, 0.5]  # full jitter pinned at its maximum
    assert len(pagerduty.requests) == 3
    assert caught.value.status == 503 and not isinstance(caught.value, PagerDutyTimedOut)


def test_a_5xx_backs_off_whatever_its_rate_limit_headers_say(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    # ratelimit-reset counts down to the end of the rate-limit window; it is not advice after a server error
    pagerduty.add_incident(INCIDENT)
    pagerduty.enqueue("notes", Fault.status(500, headers={"ratelimit-reset": "40", "ratelimit-remaining": "900"}))

    client(pagerduty.base_url, clock).notes(INCIDENT, clock() + 5)

    assert clock.sleeps == [0.25]


def test_a_reset_read_is_retried(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT, notes=[{"id": "N1"}])
    pagerduty.enqueue("notes", Fault.reset())

    assert client(pagerduty.base_url, clock).notes(INCIDENT, clock() + 5) == [{"id": "N1"}]
    assert len(pagerduty.requests) == 2


def test_a_pagerduty_that_cannot_be_reached_is_unavailable(clock: Clock) -> None:
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(PagerDutyUnavailable) as caught:
        client(f"http://127.0.0.1:{port}", clock).notes(INCIDENT, clock() + 5)

    assert caught.value.reason == "PagerDuty could not be reached" and len(clock.sleeps) == 2


def test_no_attempt_is_started_with_less_than_the_minimum_time_left(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT)

    with pytest.raises(PagerDutyTimedOut):
        client(pagerduty.base_url, clock).notes(INCIDENT, clock() + 0.1)

    assert pagerduty.requests == []


# Time


def test_a_pagerduty_that_never_answers_costs_the_budget_and_no_more() -> None:
    with PagerDutyStandIn(api_key=KEY, latency=30) as silent:
        silent.add_incident(INCIDENT)

        started = time.monotonic()
        got = read_record(client(silent.base_url), INCIDENT, 0.5)
        elapsed = time.monotonic() - started

    assert elapsed < 0.5 + 0.5
    expected = "PagerDuty did not answer within the 0.5 s budget"
    assert [p.unavailable for p in (got.log_entries, got.notes, got.alerts)] == [expected] * 3
    assert record.as_data(got) == {}


def test_a_hang_on_the_alerts_alone_still_returns_the_log_and_the_notes(pagerduty: PagerDutyStandIn) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.enqueue("alerts", Fault.delay(30))

    started = time.monotonic()
    got = read_record(client(pagerduty.base_url), INCIDENT, 0.8)
    elapsed = time.monotonic() - started

    assert elapsed < 0.8 + 0.5
    assert len(got.log_entries.entries) == 8 and len(got.notes.entries) == 2
    assert got.log_entries.unavailable is None and got.notes.unavailable is None
    assert got.alerts.unavailable == "PagerDuty did not answer within the 0.8 s budget"
    # The budget went on the alerts: nothing was left for the changes and the history.
    assert got.change_events.unavailable == got.past_incidents.unavailable == got.alerts.unavailable
    assert set(record.as_data(got)) == {"computed", "timeline", "notes"}
    assert "alert_count" not in got.computed


def test_running_out_of_time_while_paging_keeps_the_pages_read(pagerduty: PagerDutyStandIn) -> None:
    pagerduty.add_incident(INCIDENT, log_entries=entries(230))
    pagerduty.enqueue("log_entries", Fault(), Fault.delay(30))

    started = time.monotonic()
    got = read_record(client(pagerduty.base_url), INCIDENT, 0.6)

    assert time.monotonic() - started < 0.6 + 0.5
    assert got.log_entries.total == 230 and len(got.log_entries.entries) == 50 and got.log_entries.omitted == 50
    assert got.log_entries.unavailable == "only 100 of 230 log entries were read before the time budget ran out"


# A note whose answer is lost


@pytest.mark.parametrize(
    "fault",
    [
        Fault.create_then_reset(),
        Fault(status_code=201, body=b'{"note": {"id": '),  # a 2xx cut short
        Fault.status(500, create=True),  # written, then an error
        Fault.status(503),
    ],
    ids=["reset-after-writing", "unreadable-2xx", "500-after-writing", "503"],
)
def test_a_note_whose_answer_is_lost_is_not_sent_again(pagerduty: PagerDutyStandIn, clock: Clock, fault: Fault) -> None:
    pagerduty.add_incident(INCIDENT)
    pagerduty.enqueue("notes_post", fault)

    with pytest.raises(PagerDutyOutcomeUnknown):
        client(pagerduty.base_url, clock, from_email=SENDER).post_note(INCIDENT, "x", clock() + 5)

    assert len(pagerduty.requests) == 1 and clock.sleeps == []
    if fault.process:
        assert [n["content"] for n in pagerduty.notes_posted(INCIDENT)] == ["x"]


def test_a_note_slower_than_the_read_timeout_is_unknown_yet_exists(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT)
    pagerduty.enqueue("notes_post", Fault.create_then_hang(30))

    with pytest.raises(PagerDutyOutcomeUnknown):
        client(pagerduty.base_url, clock, from_email=SENDER, read_timeout=0.2).post_note(INCIDENT, "x", clock() + 5)

    assert len(pagerduty.notes_posted(INCIDENT)) == 1


def test_a_rate_limited_note_is_sent_again_because_nothing_was_written(
    pagerduty: PagerDutyStandIn, clock: Clock
) -> None:
    pagerduty.add_incident(INCIDENT)
    pagerduty.enqueue("notes_post", Fault.status(429, headers={"ratelimit-reset": "1"}))

    client(pagerduty.base_url, clock, from_email=SENDER).post_note(INCIDENT, "x", clock() + 5)

    assert clock.sleeps == [1.0] and len(pagerduty.notes_posted(INCIDENT)) == 1


def test_a_201_answer_to_a_note_is_accepted_like_the_specifications_200(
    pagerduty: PagerDutyStandIn, clock: Clock
) -> None:
    # PagerDuty's developer docs say creates answer 201; its specification says 200, which the stand-in answers
    pagerduty.add_incident(INCIDENT)
    pagerduty.enqueue("notes_post", Fault.status(201, create=True))

    created = client(pagerduty.base_url, clock, from_email=SENDER).post_note(INCIDENT, "x", clock() + 5)

    assert created["content"] == "x" and created == pagerduty.notes_posted(INCIDENT)[0]


# Since


def test_since_asks_pagerduty_and_keeps_only_what_came_strictly_after(
    pagerduty: PagerDutyStandIn, clock: Clock
) -> None:
    since = "2024-09-14T05:37:00Z"
    pagerduty.add_incident(
        INCIDENT,
        log_entries=[
            {"type": "annotate_log_entry", "summary": "after", "created_at": "2024-09-13T23:38:00-06:00"},
            {"type": "annotate_log_entry", "summary": "at", "created_at": "2024-09-13T23:37:00-06:00"},
            {"type": "annotate_log_entry", "summary": "before", "created_at": "2024-09-14T05:36:00Z"},
        ],
        notes=[
            {"content": "old note", "created_at": "2024-09-14T05:30:00Z"},
            {"content": "new note", "created_at": "2024-09-14T05:40:00Z"},
        ],
        alerts=[
            {"summary": "old alert", "created_at": "2024-09-13T23:31:00-06:00"},
            {"summary": "new alert", "created_at": "2024-09-13T23:45:00-06:00"},
        ],
    )

    got = read_record(client(pagerduty.base_url, clock), INCIDENT, 5, since=since, clock=clock)

    assert reads(pagerduty, "/log_entries")[0].query["since"] == [since]
    # PagerDuty's bound may be inclusive (the stand-in's is): the entry at the very instant is filtered here
    assert [e.what for e in got.log_entries.entries] == ["after"] and got.log_entries.total == 1
    assert [n.content for n in got.notes.entries] == ["new note"] and got.notes.total == 1
    assert [a.summary for a in got.alerts.entries] == ["new alert"]


def test_a_since_without_an_offset_is_refused_before_any_request(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    with pytest.raises(ValueError):
        read_record(client(pagerduty.base_url, clock), INCIDENT, 5, since="2024-09-14T05:37:00", clock=clock)

    assert pagerduty.requests == []


# The preflight check


def test_incidents_and_incident_read_what_pagerduty_has(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    c = client(pagerduty.base_url, clock)

    assert [i["id"] for i in c.incidents(clock() + 5)] == [INCIDENT]
    assert pagerduty.requests[0].query["limit"] == ["1"]
    assert c.incident(INCIDENT, clock() + 5)["title"] == "Checkout API 5xx error rate above 5% — payments failing"
    with pytest.raises(PagerDutyRefused):
        client(pagerduty.base_url, clock, api_key="wrong").incidents(clock() + 5)


# The key never leaks


def _texts(error: BaseException) -> Iterator[str]:
    seen: BaseException | None = error
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        yield from (str(arg) for arg in seen.args)
        seen = seen.__cause__ or seen.__context__


def test_the_key_appears_in_no_error_reason_or_repr(pagerduty: PagerDutyStandIn, clock: Clock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    pagerduty.add_incident(INCIDENT)
    errors: list[PagerDutyError] = []

    def attempt(call: Any) -> None:
        try:
            call()
        except PagerDutyError as error:
            errors.append(error)

    c = client(pagerduty.base_url, clock, from_email=SENDER, read_timeout=0.2)
    for status in (400, 401, 402, 403, 404, 408, 429, 500):
        pagerduty.enqueue("notes", *[Fault.status(status)] * (3 if status in (408, 429, 500) else 1))
        attempt(lambda: c.notes(INCIDENT, clock() + 5))
    for fault in (Fault.create_then_reset(), Fault.create_then_hang(30), Fault.status(503)):
        pagerduty.enqueue("notes_post", fault)
        attempt(lambda: c.post_note(INCIDENT, "x", clock() + 5))
    attempt(lambda: client(nowhere, clock).notes(INCIDENT, clock() + 5))
    attempt(lambda: client(nowhere, clock, from_email=SENDER).post_note(INCIDENT, "x", clock() + 5))
    attempt(lambda: client(pagerduty.base_url, clock).post_note(INCIDENT, "x", clock() + 5))
    attempt(lambda: client(pagerduty.base_url, clock, api_key=KEY[::-1]).notes(INCIDENT, clock() + 5))
    got = read_record(client(pagerduty.base_url, clock, api_key=KEY + "x"), INCIDENT, 5, clock=clock)

    assert len(errors) == 15
    texts = [text for error in errors for text in _texts(error)]
    texts += [repr(c), str(got)]
    assert not [text for text in texts if KEY in text or KEY[::-1] in text]
    # nor PagerDuty's own error text: the reasons are ours
    assert not [e for e in errors if "Authentication failed" in e.reason or "Rate Limit Exceeded" in e.reason]
