"""Checks the PagerDuty REST stand-in from a real client on 127.0.0.1: the API it imitates, its faults, its lifecycle.

Other tests trust this server to behave as PagerDuty's docs and captured answers say PagerDuty does, and to fail
exactly as scripted, so each behaviour is observed as `requests` sees it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from local.http_server import Fault
from local.pagerduty_standin import (
    LIFECYCLE_INCIDENT,
    P1_INCIDENT,
    SAMPLE_FROM_EMAIL,
    PagerDutyStandIn,
    sample_record,
)
from scripts.make_events import PAYLOADS_DIR

KEY = "u+pdTESTkey0123456789"
AUTH = {"Authorization": f"Token token={KEY}", "Accept": "application/vnd.pagerduty+json;version=2"}
WRITER = {**AUTH, "From": "postmortem-bot@example.com"}
INCIDENT = "Q0TUTXDJ0P1RRT"
NOTE = {"note": {"content": "Postmortem draft: https://example.com/pm/1"}}
MISSING_FROM = 'You must specify a user\'s email address in the "From" header to perform this action'


@pytest.fixture(scope="module")
def shared_standin() -> Iterator[PagerDutyStandIn]:
    # One server for the module (stopping one takes 50 ms), emptied before each test.
    with PagerDutyStandIn(api_key=KEY) as server:
        yield server


@pytest.fixture
def standin(shared_standin: PagerDutyStandIn) -> PagerDutyStandIn:
    shared_standin.reset()
    return shared_standin


@pytest.fixture
def api() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session


def url(standin: PagerDutyStandIn, path: str = "") -> str:
    return f"{standin.base_url}/incidents/{INCIDENT}{path}"


def numbered(count: int) -> list[dict[str, Any]]:
    return [{"id": f"R{n}", "type": "trigger_log_entry", "created_at": "2024-09-14T05:31:38Z"} for n in range(count)]


# Pagination


def test_log_entries_page_with_pagerdutys_defaults(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT, log_entries=numbered(30))

    page = api.get(url(standin, "/log_entries"), timeout=5).json()

    # THEN 25 by default, in the order added, `more` set and `total` null unless asked for
    assert [e["id"] for e in page["log_entries"]] == [f"R{n}" for n in range(25)]
    assert (page["limit"], page["offset"], page["more"], page["total"]) == (25, 0, True, None)


def test_the_last_page_says_no_more_and_total_true_counts_everything(
    standin: PagerDutyStandIn, api: requests.Session
) -> None:
    standin.add_incident(INCIDENT, log_entries=numbered(30))

    page = api.get(url(standin, "/log_entries"), params={"offset": 25, "total": "true"}, timeout=5).json()

    assert [e["id"] for e in page["log_entries"]] == [f"R{n}" for n in range(25, 30)]
    assert (page["offset"], page["more"], page["total"]) == (25, False, 30)


def test_limit_is_at_most_100(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT, alerts=[{"id": f"A{n}", "type": "alert"} for n in range(150)])

    page = api.get(url(standin, "/alerts"), params={"limit": 500}, timeout=5).json()

    assert len(page["alerts"]) == 100 and page["limit"] == 100 and page["more"] is True


@pytest.mark.parametrize(
    "params", [{"offset": 9950, "limit": 100}, {"limit": "ten"}, {"offset": -1}], ids=["past-10000", "nan", "negative"]
)
def test_bad_pagination_is_a_400_in_pagerdutys_error_shape(
    standin: PagerDutyStandIn, api: requests.Session, params: dict[str, Any]
) -> None:
    standin.add_incident(INCIDENT, log_entries=numbered(1))

    answer = api.get(url(standin, "/log_entries"), params=params, timeout=5)

    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "Invalid Input Provided" and answer.json()["error"]["code"] == 2001


def test_since_keeps_entries_at_or_after_it_whatever_their_offset(
    standin: PagerDutyStandIn, api: requests.Session
) -> None:
    standin.add_incident(
        INCIDENT,
        log_entries=[
            {"id": "before", "created_at": "2024-09-13T23:36:59-06:00"},
            {"id": "at", "created_at": "2024-09-14T05:37:00Z"},
            {"id": "after", "created_at": "2024-09-13T23:37:01-06:00"},
        ],
    )

    page = api.get(url(standin, "/log_entries"), params={"since": "2024-09-14T05:37:00Z"}, timeout=5).json()
    bad = api.get(url(standin, "/log_entries"), params={"since": "last tuesday"}, timeout=5)

    assert [e["id"] for e in page["log_entries"]] == ["at", "after"]
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 2004


def test_notes_are_not_paginated(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT, notes=[{"id": f"N{n}", "content": "x"} for n in range(40)])

    document = api.get(url(standin, "/notes"), params={"limit": 5}, timeout=5).json()

    assert set(document) == {"notes"} and len(document["notes"]) == 40


def test_incidents_lists_and_an_incident_is_found_by_id(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT, **sample_record(INCIDENT))
    standin.add_incident("QOTHER")

    listed = api.get(f"{standin.base_url}/incidents", params={"limit": 1, "total": "true"}, timeout=5).json()
    one = api.get(url(standin), timeout=5).json()

    assert len(listed["incidents"]) == 1 and listed["more"] is True and listed["total"] == 2
    assert one["incident"]["id"] == INCIDENT and one["incident"]["priority"]["summary"] == "P1"


@pytest.mark.parametrize("path", ["", "/log_entries", "/alerts", "/notes"])
def test_an_unknown_incident_is_pagerdutys_404(standin: PagerDutyStandIn, api: requests.Session, path: str) -> None:
    answer = api.get(f"{standin.base_url}/incidents/QUNKNOWN{path}", timeout=5)

    assert answer.status_code == 404
    assert answer.json() == {"error": {"message": "Not Found", "code": 2100}}


def test_an_unknown_path_is_a_404(standin: PagerDutyStandIn, api: requests.Session) -> None:
    answer = api.delete(url(standin, "/notes"), timeout=5)

    assert answer.status_code == 404 and answer.json()["error"]["code"] == 2100


def test_a_percent_encoded_incident_id_is_decoded(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident("Q/1?x", notes=[{"id": "N1"}])

    answer = api.get(f"{standin.base_url}/incidents/Q%2F1%3Fx/notes", timeout=5)

    assert answer.status_code == 200 and answer.json() == {"notes": [{"id": "N1"}]}


# Writing a note


def test_posting_a_note_answers_200_as_the_specification_says_with_the_note_and_keeps_it(
    standin: PagerDutyStandIn, api: requests.Session
) -> None:
    standin.add_incident(INCIDENT, notes=[{"id": "OLD", "content": "older"}])

    answer = api.post(url(standin, "/notes"), json=NOTE, headers={"From": WRITER["From"]}, timeout=5)

    assert answer.status_code == 200
    note = answer.json()["note"]
    assert re.fullmatch(r"P[0-9A-F]{6}", note["id"])
    assert note["content"] == NOTE["note"]["content"]
    assert note["user"]["type"] == "user_reference" and note["user"]["summary"] == WRITER["From"]
    assert note["channel"] == {"summary": "The PagerDuty website or APIs"}
    assert datetime.fromisoformat(note["created_at"]).utcoffset() is not None
    # AND it is listed after the older notes, and kept for assertions
    listed = api.get(url(standin, "/notes"), timeout=5).json()["notes"]
    assert [n["id"] for n in listed] == ["OLD", note["id"]]
    assert standin.notes_posted(INCIDENT) == [note]


def test_a_note_without_from_is_a_400_with_pagerdutys_message(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT)

    answer = api.post(url(standin, "/notes"), json=NOTE, timeout=5)

    assert answer.status_code == 400 and answer.json()["error"]["message"] == MISSING_FROM
    assert standin.notes_posted(INCIDENT) == []


@pytest.mark.parametrize(
    ("sender", "body"),
    [("Postmortem Bot", NOTE), (WRITER["From"], {"note": {"content": ""}}), (WRITER["From"], {"content": "x"})],
    ids=["from-not-an-email", "empty-content", "no-note-object"],
)
def test_a_malformed_note_request_is_a_400(
    standin: PagerDutyStandIn, api: requests.Session, sender: str, body: dict[str, Any]
) -> None:
    standin.add_incident(INCIDENT)

    answer = api.post(url(standin, "/notes"), json=body, headers={"From": sender}, timeout=5)

    assert answer.status_code == 400 and "error" in answer.json()
    assert standin.notes_posted(INCIDENT) == []


def test_headers_are_recorded(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT)

    api.post(url(standin, "/notes"), json=NOTE, headers={"From": WRITER["From"]}, timeout=5)

    [sent] = standin.requests
    assert (sent.method, sent.path) == ("POST", f"/incidents/{INCIDENT}/notes")
    assert sent.headers["accept"] == "application/vnd.pagerduty+json;version=2"
    assert sent.headers["from"] == WRITER["From"] and sent.json() == NOTE


# Credentials


@pytest.mark.parametrize(
    "authorization",
    [None, "Token token=wrong", f"Bearer {KEY}", f"Token token={KEY} ", f"token token={KEY}"],
    ids=["missing", "wrong-key", "bearer", "trailing-space", "lowercase-scheme"],
)
def test_anything_but_the_exact_token_header_is_a_401(standin: PagerDutyStandIn, authorization: str | None) -> None:
    standin.add_incident(INCIDENT)
    headers = {"Authorization": authorization} if authorization else {}

    answer = requests.get(url(standin, "/log_entries"), headers=headers, timeout=5)

    assert answer.status_code == 401
    assert answer.json() == {"error": {"message": "Authentication failed", "code": 2006}}


def test_without_an_api_key_any_authorization_is_accepted() -> None:
    with PagerDutyStandIn() as open_standin:
        open_standin.add_incident(INCIDENT)
        assert requests.get(url(open_standin, "/notes"), timeout=5).status_code == 200


def test_a_read_only_key_reads_but_every_post_is_a_403() -> None:
    with PagerDutyStandIn(api_key=KEY, read_only=True) as read_only:
        read_only.add_incident(INCIDENT)

        posted = requests.post(url(read_only, "/notes"), json=NOTE, headers=WRITER, timeout=5)
        read = requests.get(url(read_only, "/notes"), headers=AUTH, timeout=5)

    assert posted.status_code == 403 and posted.json()["error"] == {"message": "Access Denied", "code": 2010}
    assert read.status_code == 200 and read_only.notes_posted(INCIDENT) == []


# Faults, as the client sees them


def test_a_status_fault_answers_pagerdutys_error_shape_and_its_headers_then_normal_answers_resume(
    standin: PagerDutyStandIn, api: requests.Session
) -> None:
    standin.add_incident(INCIDENT, log_entries=numbered(1))
    standin.enqueue("log_entries", Fault.status(429, headers={"ratelimit-reset": "1"}), Fault.status(500))

    answers = [api.get(url(standin, "/log_entries"), timeout=5) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 500, 200]
    assert answers[0].headers["ratelimit-reset"] == "1"
    assert answers[0].json() == {"error": {"message": "Rate Limit Exceeded", "code": 2020}}
    assert answers[1].json()["error"]["code"] == 2000


def test_faults_apply_to_their_endpoint_only(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT)
    standin.enqueue("alerts", Fault.status(503))

    assert api.get(url(standin, "/log_entries"), timeout=5).status_code == 200
    assert api.get(url(standin, "/notes"), timeout=5).status_code == 200
    assert api.post(url(standin, "/notes"), json=NOTE, headers={"From": WRITER["From"]}, timeout=5).status_code == 200
    assert api.get(url(standin, "/alerts"), timeout=5).status_code == 503


def test_create_then_reset_loses_the_answer_yet_the_note_exists(
    standin: PagerDutyStandIn, api: requests.Session
) -> None:
    standin.add_incident(INCIDENT)
    standin.enqueue("notes_post", Fault.create_then_reset())

    with pytest.raises(requests.ConnectionError):
        api.post(url(standin, "/notes"), json=NOTE, headers={"From": WRITER["From"]}, timeout=5)

    [kept] = standin.notes_posted(INCIDENT)
    assert kept["content"] == NOTE["note"]["content"]
    assert api.get(url(standin, "/notes"), timeout=5).json()["notes"] == [kept]


def test_reset_fault_writes_nothing(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT)
    standin.enqueue("notes_post", Fault.reset())

    with pytest.raises(requests.ConnectionError):
        api.post(url(standin, "/notes"), json=NOTE, headers={"From": WRITER["From"]}, timeout=5)

    assert standin.notes_posted(INCIDENT) == []


def test_a_delay_answers_late_and_a_hang_outlasts_the_client(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT)
    standin.enqueue("notes", Fault.delay(0.3), Fault.delay(30))

    started = time.monotonic()
    late = api.get(url(standin, "/notes"), timeout=5)
    assert time.monotonic() - started >= 0.3 and late.status_code == 200
    with pytest.raises(requests.ReadTimeout):
        api.get(url(standin, "/notes"), timeout=0.2)


def test_a_fault_on_an_unknown_incident_still_answers_404(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.enqueue("incident", Fault.delay(0.05))

    assert api.get(url(standin), timeout=5).status_code == 404


def test_enqueue_refuses_an_unknown_endpoint(standin: PagerDutyStandIn) -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        standin.enqueue("log_entry", Fault.status(500))


def test_latency_delays_every_answer() -> None:
    with PagerDutyStandIn(latency=0.2) as slow:
        slow.add_incident(INCIDENT)
        started = time.monotonic()
        assert requests.get(url(slow, "/notes"), timeout=5).status_code == 200
        assert requests.get(f"{slow.base_url}/nowhere", timeout=5).status_code == 404

    assert time.monotonic() - started >= 0.4


def test_reset_forgets_incidents_requests_notes_and_faults(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_incident(INCIDENT)
    api.post(url(standin, "/notes"), json=NOTE, headers={"From": WRITER["From"]}, timeout=5)
    standin.enqueue("incidents", Fault.status(500))

    standin.reset()

    assert standin.requests == [] and standin.notes_posted(INCIDENT) == []
    assert api.get(url(standin, "/notes"), timeout=5).status_code == 404
    assert api.get(f"{standin.base_url}/incidents", timeout=5).json()["incidents"] == []


# The sample record


def test_sample_record_is_newest_first_with_one_pair_out_of_order_and_mixed_offsets() -> None:
    sample = sample_record(INCIDENT)
    entries = sample["log_entries"]
    instants = [datetime.fromisoformat(e["created_at"]) for e in entries]

    assert len(entries) == 8
    assert entries[0]["type"] == "resolve_log_entry" and entries[-1]["type"] == "trigger_log_entry"
    assert entries[0]["note"] and entries[-1]["event_details"]["description"]
    assert sum(later > earlier for earlier, later in zip(instants, instants[1:], strict=False)) == 1
    assert {e["created_at"][-6:] for e in entries} >= {"-06:00"} and any(e["created_at"].endswith("Z") for e in entries)
    assert {e["agent"]["type"] for e in entries} == {"user_reference", "service_reference"}
    assert {e["type"] for e in entries} >= {
        "trigger_log_entry",
        "notify_log_entry",
        "acknowledge_log_entry",
        "unacknowledge_log_entry",
        "annotate_log_entry",
        "resolve_log_entry",
    }
    # The lifecycle sample's record has what the P1's has not: an escalation and a second resolve (its reopening has
    # no entry: PagerDuty's specification lists no log entry type for one).
    lifecycle = [e["type"] for e in sample_record(LIFECYCLE_INCIDENT)["log_entries"]]
    assert "escalate_log_entry" in lifecycle and lifecycle.count("resolve_log_entry") == 2
    assert [type(a["body"]["details"]) for a in sample["alerts"]] == [dict, dict]  # an object, as the spec types it
    assert {a["severity"] for a in sample["alerts"]} == {"critical", "warning"}
    assert {n["user"]["type"] for n in sample["notes"]} == {"user_reference", "bot_user_reference"}
    assert {n["created_at"][-1] for n in sample["notes"]} == {"0", "Z"}  # "-06:00" and "Z"


def _webhooks(incident_id: str) -> list[dict[str, Any]]:
    """The sample webhook events (events/payloads/) about the incident, in the order they occurred."""
    events = [json.loads(path.read_text(encoding="utf-8"))["event"] for path in PAYLOADS_DIR.glob("*.json")]
    about = [
        e
        for e in events
        if incident_id in (e["data"].get("id"), (e["data"].get("incident") or {}).get("id"))
        and e["data"]["type"] in ("incident", "incident_note")
    ]
    return sorted(about, key=lambda e: datetime.fromisoformat(e["occurred_at"]))


def _second(at: str) -> datetime:
    """An instant to the second: PagerDuty's log entries carry seconds, its webhooks milliseconds."""
    return datetime.fromisoformat(at).replace(microsecond=0)


@pytest.mark.parametrize("incident_id", [P1_INCIDENT, LIFECYCLE_INCIDENT])
def test_a_sample_incidents_record_is_the_one_its_webhooks_tell(incident_id: str) -> None:
    # GIVEN the sample webhooks about the incident, and the record the stand-in serves for it
    webhooks = _webhooks(incident_id)
    record = sample_record(incident_id)
    incident, entries = record["incident"], record["log_entries"]
    assert len(webhooks) >= 3, "a sample incident has its trigger or acknowledgement, a note and a resolve"

    # THEN the incident is the webhooks' incident: number, title, key, creation, service, team, policy, priority
    for data in (e["data"] for e in webhooks if e["data"]["type"] == "incident"):
        assert (incident["incident_number"], incident["title"], incident["incident_key"]) == (
            data["number"],
            data["title"],
            data["incident_key"],
        )
        assert incident["created_at"] == data["created_at"]
        assert (incident["service"]["id"], incident["service"]["summary"]) == (
            data["service"]["id"],
            data["service"]["summary"],
        )
        assert [t["id"] for t in incident["teams"]] == [t["id"] for t in data["teams"]]
        assert incident["escalation_policy"]["id"] == data["escalation_policy"]["id"]
        assert (incident["priority"]["id"], incident["priority"]["summary"]) == (
            data["priority"]["id"],
            data["priority"]["summary"],
        )
        assert incident["urgency"] == data["urgency"]
    # AND it was triggered when the incident was created, and resolved when its last resolve occurred
    [trigger] = [e for e in entries if e["type"] == "trigger_log_entry"]
    assert _second(trigger["created_at"]) == _second(incident["created_at"])
    last = webhooks[-1]
    assert last["event_type"] == "incident.resolved"
    assert _second(incident["resolved_at"]) == _second(last["occurred_at"])
    assert incident["last_status_change_by"]["id"] == last["agent"]["id"]
    # AND each webhook's event is in the log, at its time, done by its agent; but a reopening, for which PagerDuty's
    # specification lists no log entry type (what PagerDuty logs then is UNCONFIRMED)
    kinds = {
        "incident.triggered": "trigger",
        "incident.acknowledged": "acknowledge",
        "incident.annotated": "annotate",
        "incident.resolved": "resolve",
    }
    for event in (e for e in webhooks if e["event_type"] != "incident.reopened"):
        kind = f"{kinds[event['event_type']]}_log_entry"
        at = _second(event["occurred_at"])
        logged = [e for e in entries if e["type"] == kind and _second(e["created_at"]) == at]
        assert [e["agent"]["id"] for e in logged] == [event["agent"]["id"]], (event["event_type"], at)
    # AND each note of the webhooks is one of the record's, by the same person at the same time
    for event in (e for e in webhooks if e["event_type"] == "incident.annotated"):
        [note] = [n for n in record["notes"] if n["id"] == event["data"]["id"]]
        assert note["content"] == event["data"]["content"]
        assert note["user"]["id"] == event["agent"]["id"]
        assert _second(note["created_at"]) == _second(event["occurred_at"])
    # AND the people in the record are the webhooks' people: nobody else responded
    people = {e["agent"]["id"] for e in webhooks} | {a["id"] for e in webhooks for a in e["data"].get("assignees", [])}
    named = {e["agent"]["id"] for e in entries if e["agent"]["type"] == "user_reference"}
    named |= {e["user"]["id"] for e in entries if "user" in e}
    named |= {a["id"] for e in entries for a in e.get("assignees", [])}
    named |= {n["user"]["id"] for n in record["notes"] if n["user"]["type"] == "user_reference"}
    assert named == people
    # AND nothing in the record happened before the incident was created or after it last resolved
    instants = [_second(e["created_at"]) for e in entries] + [_second(n["created_at"]) for n in record["notes"]]
    assert min(instants) == _second(incident["created_at"])
    assert max(instants) == _second(incident["resolved_at"])


def test_another_incident_gets_the_p1_samples_record_under_its_own_id() -> None:
    moved, p1 = sample_record("QANY123"), sample_record(P1_INCIDENT)

    assert moved["incident"]["id"] == "QANY123"
    assert {e["incident"]["id"] for e in moved["log_entries"]} == {"QANY123"}
    assert [e["created_at"] for e in moved["log_entries"]] == [e["created_at"] for e in p1["log_entries"]]
    assert moved["notes"] == p1["notes"]


def test_serve_samples_answers_any_incident_with_the_sample(api: requests.Session) -> None:
    with PagerDutyStandIn(api_key=KEY, serve_samples=True) as samples:
        entries = api.get(f"{samples.base_url}/incidents/QANY123/log_entries", timeout=5).json()["log_entries"]
        posted = api.post(
            f"{samples.base_url}/incidents/QANY123/notes", json=NOTE, headers={"From": WRITER["From"]}, timeout=5
        )
        notes = api.get(f"{samples.base_url}/incidents/QANY123/notes", timeout=5).json()["notes"]

    assert entries == sample_record("QANY123")["log_entries"][:25]
    assert posted.status_code == 200 and len(notes) == 3


# The account's users: GET /users (scripts/doctor checks the from-email with it)


def _users(api: requests.Session, standin: PagerDutyStandIn, **params: Any) -> requests.Response:
    return api.get(f"{standin.base_url}/users", params=params, timeout=5)


def test_users_lists_the_added_users_and_the_query_matches_names_not_email_addresses(
    standin: PagerDutyStandIn, api: requests.Session
) -> None:
    bot = standin.add_user("postmortem-bot@example.com", "Postmortem Bot")
    laura = standin.add_user("laura@example.com", "Laura Haley")

    by_email = _users(api, standin, query="postmortem-bot@example.com")
    by_name = _users(api, standin, query="haley")
    everyone = _users(api, standin)

    # PagerDuty's specification says `query` filters by name: an e-mail address finds no one
    assert by_email.status_code == 200
    assert by_email.json() == {"users": [], "limit": 25, "offset": 0, "more": False, "total": None}
    assert by_name.json()["users"] == [laura]
    assert everyone.json()["users"] == [bot, laura]
    assert bot["email"] == "postmortem-bot@example.com" and bot["type"] == "user" and bot["id"].startswith("P")


def test_users_without_samples_knows_no_one_it_was_not_given(standin: PagerDutyStandIn, api: requests.Session) -> None:
    answer = _users(api, standin)

    assert answer.status_code == 200 and answer.json()["users"] == []


def test_serve_samples_lists_the_sample_accounts_users_the_bot_among_them(api: requests.Session) -> None:
    with PagerDutyStandIn(api_key=KEY, serve_samples=True) as samples:
        users = _users(api, samples).json()["users"]
        made_up = _users(api, samples, query="anyone@acme.example").json()["users"]

    assert [(user["name"], user["email"]) for user in users] == [
        ("Dana Whitfield", "dana.whitfield@example.com"),
        ("Ravi Iyer", "ravi.iyer@example.com"),
        ("Postmortem Bot", SAMPLE_FROM_EMAIL),
    ]
    # The responders are the users the sample record's references name
    assert [user["id"] for user in users[:2]] == ["PJ4RT2K", "PM7QW3N"]
    assert made_up == []  # no address asked about is made up


def test_users_needs_the_key_and_takes_faults(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.enqueue("users", Fault.status(500))

    refused = requests.get(f"{standin.base_url}/users", timeout=5)
    failed = _users(api, standin)
    then = _users(api, standin)

    assert refused.status_code == 401 and refused.json()["error"]["code"] == 2006
    assert failed.status_code == 500 and then.status_code == 200


def test_reset_forgets_users(standin: PagerDutyStandIn, api: requests.Session) -> None:
    standin.add_user("postmortem-bot@example.com")

    standin.reset()

    assert _users(api, standin).json()["users"] == []


# Lifecycle


def test_stop_returns_promptly_with_a_hanging_request(api: requests.Session) -> None:
    with PagerDutyStandIn(api_key=KEY) as standin:
        standin.add_incident(INCIDENT)
        standin.enqueue("alerts", Fault.delay(30))
        with pytest.raises(requests.ReadTimeout):
            api.get(url(standin, "/alerts"), timeout=0.2)

        started = time.monotonic()
        standin.stop()

        assert time.monotonic() - started < 2
        with pytest.raises(requests.ConnectionError):  # and the port is closed
            api.get(url(standin, "/alerts"), timeout=1)


@pytest.mark.slow
def test_main_serves_the_sample_for_any_incident_until_ctrl_c() -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "local.pagerduty_standin", "--port", "0", "--api-key", KEY]
    with subprocess.Popen(  # noqa: S603 - a fixed argv of our own
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            listening = re.search(r"http://[\d.]+:\d+", proc.stdout.readline())
            assert listening, "it did not say where it listens"
            answer = requests.get(f"{listening[0]}/incidents/QLOCAL1/log_entries", headers=AUTH, timeout=5)
            refused = requests.get(f"{listening[0]}/incidents/QLOCAL1/log_entries", timeout=5)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=5)
        finally:
            proc.kill()

    assert answer.status_code == 200 and len(answer.json()["log_entries"]) == 8
    assert refused.status_code == 401
    assert proc.returncode == 0 and stderr == ""
