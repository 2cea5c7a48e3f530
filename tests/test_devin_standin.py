"""Checks the Devin stand-in from a real client on 127.0.0.1: the API it imitates, its faults, its lifecycle.

Other tests trust this server to fail exactly as scripted, so each fault is observed as `requests` sees it.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from local.devin_standin import DevinStandIn, Fault

KEY = "cog_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ORG = "org-test"
TAG = "pd-incident-Q1ABC2"


@pytest.fixture
def standin() -> Iterator[DevinStandIn]:
    with DevinStandIn(api_key=KEY, org_id=ORG) as server:
        yield server


@pytest.fixture
def api() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session


def _sessions_url(standin: DevinStandIn, org: str = ORG) -> str:
    return f"{standin.base_url}/v3/organizations/{org}/sessions"


def _create(api: requests.Session, standin: DevinStandIn, timeout: float = 5, **body: Any) -> requests.Response:
    payload = {"prompt": "Draft a postmortem", "tags": ["pagerduty", TAG], **body}
    return api.post(_sessions_url(standin), json=payload, timeout=timeout)


def _list_ids(api: requests.Session, standin: DevinStandIn, *tags: str) -> list[str]:
    answer = api.get(_sessions_url(standin), params={"tags": list(tags)}, timeout=5)
    answer.raise_for_status()
    return [item["session_id"] for item in answer.json()["items"]]


# The API the Lambda calls


def test_create_answers_a_new_session_and_records_the_request(standin: DevinStandIn, api: requests.Session) -> None:
    answer = _create(api, standin, title="Postmortem: Q1ABC2", playbook_id="playbook-pm")

    assert answer.status_code == 200
    session = answer.json()
    assert session["session_id"].startswith("devin-") and len(session["session_id"]) == len("devin-") + 32
    assert session["url"] == f"https://app.devin.ai/sessions/{session['session_id']}"
    assert session["status"] == "new" and session["org_id"] == ORG
    assert session["tags"] == ["pagerduty", TAG] and session["playbook_id"] == "playbook-pm"
    assert isinstance(session["created_at"], int) and session["pull_requests"] == []
    assert standin.sessions == [session]
    [recorded] = standin.create_requests()
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.json()["title"] == "Postmortem: Q1ABC2"


def test_get_returns_the_created_session(standin: DevinStandIn, api: requests.Session) -> None:
    created = _create(api, standin).json()

    answer = api.get(f"{_sessions_url(standin)}/{created['session_id']}", timeout=5)

    assert answer.status_code == 200 and answer.json() == created


def test_get_unknown_session_is_a_404_problem(standin: DevinStandIn, api: requests.Session) -> None:
    answer = api.get(f"{_sessions_url(standin)}/devin-{'0' * 32}", timeout=5)

    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["status"] == 404


def test_list_by_tag_returns_only_sessions_carrying_every_tag(standin: DevinStandIn, api: requests.Session) -> None:
    # GIVEN one session for our incident and one for another
    ours = _create(api, standin).json()["session_id"]
    _create(api, standin, tags=["pagerduty", "pd-incident-OTHER"])

    # THEN only ours matches both tags, and a tag nobody has matches nothing
    assert _list_ids(api, standin, "pagerduty", TAG) == [ours]
    assert _list_ids(api, standin, "pd-incident-NONE") == []
    assert len(_list_ids(api, standin)) == 2


def test_list_answers_a_page_envelope(standin: DevinStandIn, api: requests.Session) -> None:
    _create(api, standin)

    page = api.get(_sessions_url(standin), params={"tags": TAG}, timeout=5).json()

    assert page["total"] == 1 and page["has_next_page"] is False and page["end_cursor"] is None


def test_missing_prompt_is_a_422(standin: DevinStandIn, api: requests.Session) -> None:
    answer = api.post(_sessions_url(standin), json={"title": "no prompt"}, timeout=5)

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "prompt"]
    assert standin.sessions == []


def test_non_json_body_is_a_422(standin: DevinStandIn, api: requests.Session) -> None:
    answer = api.post(_sessions_url(standin), data=b"prompt=hello", timeout=5)

    assert answer.status_code == 422 and standin.sessions == []


@pytest.mark.parametrize(
    "authorization", [None, "Bearer cog_wrong", KEY], ids=["missing", "wrong-key", "no-bearer-scheme"]
)
def test_bad_credentials_are_a_401_problem(standin: DevinStandIn, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    answer = requests.post(_sessions_url(standin), json={"prompt": "x"}, headers=headers, timeout=5)

    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert (problem["type"], problem["title"], problem["status"]) == ("about:blank", "Unauthorized", 401)
    assert standin.sessions == []


def test_another_org_is_a_403_problem(standin: DevinStandIn, api: requests.Session) -> None:
    answer = api.post(_sessions_url(standin, org="org-someone-else"), json={"prompt": "x"}, timeout=5)

    assert answer.status_code == 403 and answer.json()["title"] == "Forbidden"


def test_unknown_path_is_a_404(standin: DevinStandIn, api: requests.Session) -> None:
    assert api.get(f"{standin.base_url}/v1/sessions", timeout=5).status_code == 404


def test_unsupported_method_is_a_405(standin: DevinStandIn, api: requests.Session) -> None:
    answer = api.delete(_sessions_url(standin), timeout=5)

    assert answer.status_code == 405 and answer.headers["Allow"] == "GET, POST"


def test_keep_alive_serves_several_requests_on_one_connection(standin: DevinStandIn) -> None:
    conn = http.client.HTTPConnection(standin.host, standin.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", _sessions_url(standin).removeprefix(standin.base_url), headers=AUTH)
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200 and not answer.will_close
    finally:
        conn.close()


# Faults, as the client sees them


def test_status_fault_answers_its_status_and_retry_after_without_creating(
    standin: DevinStandIn, api: requests.Session
) -> None:
    standin.enqueue(Fault.status(503, retry_after="2"))

    answer = _create(api, standin)

    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert answer.json()["status"] == 503
    assert standin.sessions == [] and len(standin.create_requests()) == 1


def test_status_fault_can_answer_a_body_that_is_not_json(standin: DevinStandIn, api: requests.Session) -> None:
    standin.enqueue(Fault.status(502, body=b"<html>oops</html>"))

    answer = _create(api, standin)

    assert answer.status_code == 502 and answer.content == b"<html>oops</html>"
    with pytest.raises(requests.JSONDecodeError):
        answer.json()


def test_2xx_status_fault_creates_a_session_only_when_asked(standin: DevinStandIn, api: requests.Session) -> None:
    standin.enqueue(Fault.status(200), Fault.status(201, create=True))

    bare, created = _create(api, standin), _create(api, standin)

    # A bare 2xx answers a body without session_id and makes nothing; create=True answers the real session.
    assert bare.status_code == 200 and "session_id" not in bare.json()
    assert created.status_code == 201 and created.json() == standin.sessions[0]
    assert len(standin.sessions) == 1


def test_reset_fault_is_a_connection_error_and_creates_nothing(standin: DevinStandIn, api: requests.Session) -> None:
    standin.enqueue(Fault.reset())

    with pytest.raises(requests.ConnectionError):
        _create(api, standin)

    assert standin.sessions == []


def test_create_then_reset_is_a_connection_error_yet_the_session_exists(
    standin: DevinStandIn, api: requests.Session
) -> None:
    standin.enqueue(Fault.create_then_reset())

    # WHEN the create call dies without an answer
    with pytest.raises(requests.ConnectionError):
        _create(api, standin)

    # THEN a list by the incident tag still finds the session it made
    assert _list_ids(api, standin, TAG) == [standin.sessions[0]["session_id"]]


def test_create_then_hang_times_out_the_client_yet_the_session_exists(
    standin: DevinStandIn, api: requests.Session
) -> None:
    standin.enqueue(Fault.create_then_hang(30))

    with pytest.raises(requests.ReadTimeout):
        _create(api, standin, timeout=0.3)

    assert len(standin.sessions) == 1


def test_delay_fault_answers_normally_after_the_delay(standin: DevinStandIn, api: requests.Session) -> None:
    standin.enqueue(Fault.delay(0.3))

    started = time.monotonic()
    answer = _create(api, standin)

    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 200 and len(standin.sessions) == 1


def test_bad_body_created_answers_201_that_does_not_parse_but_creates(
    standin: DevinStandIn, api: requests.Session
) -> None:
    standin.enqueue(Fault.bad_body_created())

    answer = _create(api, standin)

    assert answer.status_code == 201
    with pytest.raises(requests.JSONDecodeError):
        answer.json()
    assert len(standin.sessions) == 1


def test_missing_id_created_answers_201_without_session_id_but_creates(
    standin: DevinStandIn, api: requests.Session
) -> None:
    standin.enqueue(Fault.missing_id_created())

    answer = _create(api, standin)

    assert answer.status_code == 201 and "session_id" not in answer.json()
    assert answer.json()["url"] == standin.sessions[0]["url"]


def test_faults_apply_in_fifo_order_then_creates_behave_normally(standin: DevinStandIn, api: requests.Session) -> None:
    standin.enqueue(Fault.status(429, retry_after=1), Fault.status(500))

    statuses = [_create(api, standin).status_code for _ in range(3)]

    assert statuses == [429, 500, 200] and len(standin.sessions) == 1


def test_list_faults_apply_to_list_calls_only(standin: DevinStandIn, api: requests.Session) -> None:
    standin.enqueue_list(Fault.status(503))

    assert _create(api, standin).status_code == 200
    assert api.get(_sessions_url(standin), timeout=5).status_code == 503
    assert api.get(_sessions_url(standin), timeout=5).status_code == 200


def test_reset_forgets_requests_sessions_and_faults(standin: DevinStandIn, api: requests.Session) -> None:
    _create(api, standin)
    standin.enqueue(Fault.status(500))
    standin.enqueue_list(Fault.status(500))

    standin.reset()

    assert standin.requests == [] and standin.sessions == []
    assert _create(api, standin).status_code == 200
    assert api.get(_sessions_url(standin), timeout=5).status_code == 200


# One session: get, send a message, and the state helpers


def _session_url(standin: DevinStandIn, session_id: str, org: str = ORG) -> str:
    return f"{_sessions_url(standin, org)}/{session_id}"


def _message(api: requests.Session, standin: DevinStandIn, session_id: str, message: Any = "hi") -> requests.Response:
    return api.post(f"{_session_url(standin, session_id)}/messages", json={"message": message}, timeout=5)


def test_a_new_session_has_no_status_detail_and_no_messages_in_its_json(
    standin: DevinStandIn, api: requests.Session
) -> None:
    created = _create(api, standin).json()

    assert created["status_detail"] is None
    assert "messages" not in created
    assert standin.messages(created["session_id"]) == []


def test_message_is_recorded_and_answers_the_session(standin: DevinStandIn, api: requests.Session) -> None:
    sid = _create(api, standin).json()["session_id"]

    first, second = _message(api, standin, sid, "Look at the deploy."), _message(api, standin, sid, "And the DB.")

    assert first.status_code == 200 and first.headers["Content-Type"] == "application/json"
    assert second.json() == standin.sessions[0] and "messages" not in second.json()
    assert standin.messages(sid) == ["Look at the deploy.", "And the DB."]
    assert [r.json() for r in standin.message_requests()] == [
        {"message": "Look at the deploy."},
        {"message": "And the DB."},
    ]
    assert standin.create_requests() == [standin.requests[0]]  # a message is not a create


def test_message_resumes_a_suspended_session_only(standin: DevinStandIn, api: requests.Session) -> None:
    suspended, finished = (_create(api, standin).json()["session_id"] for _ in range(2))
    standin.update_session(suspended, status="suspended", status_detail="inactivity")
    standin.update_session(finished, status="exit")

    resumed = _message(api, standin, suspended).json()
    _message(api, standin, finished)

    assert resumed["status"] == "running"
    assert api.get(_session_url(standin, suspended), timeout=5).json()["status"] == "running"
    assert api.get(_session_url(standin, finished), timeout=5).json()["status"] == "exit"


def test_message_to_an_unknown_session_is_a_404_problem(standin: DevinStandIn, api: requests.Session) -> None:
    answer = _message(api, standin, f"devin-{'0' * 32}")

    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["status"] == 404
    assert standin.messages(f"devin-{'0' * 32}") == []


@pytest.mark.parametrize(
    "body",
    [{}, {"message": ""}, {"message": "   "}, {"message": 5}, {"message": None}, ["hi"], b"message=hi"],
    ids=["no-message", "empty", "blank", "number", "null", "array", "not-json"],
)
def test_message_without_a_message_is_a_422(standin: DevinStandIn, api: requests.Session, body: Any) -> None:
    sid = _create(api, standin).json()["session_id"]
    url = f"{_session_url(standin, sid)}/messages"

    answer = api.post(url, data=body, timeout=5) if isinstance(body, bytes) else api.post(url, json=body, timeout=5)

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "message"]
    assert standin.messages(sid) == []


@pytest.mark.parametrize(
    ("headers", "org", "status"),
    [({"Authorization": "Bearer cog_wrong"}, ORG, 401), ({}, ORG, 401), (AUTH, "org-someone-else", 403)],
    ids=["wrong-key", "no-key", "other-org"],
)
def test_message_and_get_check_credentials_and_org(
    standin: DevinStandIn, api: requests.Session, headers: dict[str, str], org: str, status: int
) -> None:
    sid = _create(api, standin).json()["session_id"]
    url = _session_url(standin, sid, org)

    posted = requests.post(f"{url}/messages", json={"message": "hi"}, headers=headers, timeout=5)
    got = requests.get(url, headers=headers, timeout=5)

    assert (posted.status_code, got.status_code) == (status, status)
    assert posted.headers["Content-Type"] == "application/problem+json"
    assert standin.messages(sid) == []


@pytest.mark.parametrize(
    ("method", "suffix", "allow"),
    [
        ("POST", "", "GET"),
        ("DELETE", "", "GET"),
        ("DELETE", "/messages", "GET, POST"),
        ("PUT", "/messages", "GET, POST"),
    ],
)
def test_other_methods_on_a_session_or_its_messages_are_a_405(
    standin: DevinStandIn, api: requests.Session, method: str, suffix: str, allow: str
) -> None:
    sid = _create(api, standin).json()["session_id"]

    answer = api.request(method, f"{_session_url(standin, sid)}{suffix}", json={"message": "hi"}, timeout=5)

    assert answer.status_code == 405 and answer.headers["Allow"] == allow
    assert standin.messages(sid) == []


def test_a_percent_encoded_session_id_is_decoded(standin: DevinStandIn, api: requests.Session) -> None:
    _create(api, standin)
    standin.sessions[0]["session_id"] = "devin-a/b c"

    assert api.get(_session_url(standin, "devin-a%2Fb%20c"), timeout=5).status_code == 200
    assert _message(api, standin, "devin-a%2Fb%20c").status_code == 200
    assert standin.messages("devin-a/b c") == ["hi"]


def test_get_faults_apply_to_get_calls_only(standin: DevinStandIn, api: requests.Session) -> None:
    sid = _create(api, standin).json()["session_id"]
    standin.enqueue_get(Fault.status(503, retry_after="1"), Fault.reset(), Fault.delay(0.2))

    assert _create(api, standin).status_code == 200
    assert api.get(_sessions_url(standin), timeout=5).status_code == 200
    assert _message(api, standin, sid).status_code == 200
    unavailable = api.get(_session_url(standin, sid), timeout=5)
    with pytest.raises(requests.ConnectionError):
        api.get(_session_url(standin, sid), timeout=5)
    started = time.monotonic()
    delayed = api.get(_session_url(standin, sid), timeout=5)

    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "1"
    assert delayed.status_code == 200 and time.monotonic() - started >= 0.2
    assert delayed.json() == standin.sessions[0]


def test_message_faults_decide_whether_the_message_is_recorded(standin: DevinStandIn, api: requests.Session) -> None:
    sid = _create(api, standin).json()["session_id"]
    standin.enqueue_message(Fault.status(503), Fault.reset(), Fault.create_then_reset())

    assert _create(api, standin).status_code == 200  # creates take no message fault
    refused = _message(api, standin, sid, "refused")
    with pytest.raises(requests.ConnectionError):
        _message(api, standin, sid, "reset before")
    with pytest.raises(requests.ConnectionError):
        _message(api, standin, sid, "recorded, then reset")
    normal = _message(api, standin, sid, "normal")

    assert refused.status_code == 503 and normal.status_code == 200
    assert standin.messages(sid) == ["recorded, then reset", "normal"]
    assert len(standin.message_requests()) == 4


def test_a_message_fault_for_an_unknown_session_still_answers_404(standin: DevinStandIn, api: requests.Session) -> None:
    standin.enqueue_message(Fault.create_then_reset())

    assert _message(api, standin, "devin-gone").status_code == 404


def test_update_session_and_open_pull_request_show_in_get_and_list(
    standin: DevinStandIn, api: requests.Session
) -> None:
    sid = _create(api, standin).json()["session_id"]

    standin.update_session(sid, status="running", status_detail="working", acus_consumed=1.25)
    standin.open_pull_request(sid, "https://github.com/acme/api/pull/7")
    standin.open_pull_request(sid, "https://github.com/acme/api/pull/8", state="merged")
    standin.update_session(sid, status="exit")  # None leaves the other fields as they are

    got = api.get(_session_url(standin, sid), timeout=5).json()
    assert (got["status"], got["status_detail"], got["acus_consumed"]) == ("exit", "working", 1.25)
    assert got["pull_requests"] == [
        {"pr_url": "https://github.com/acme/api/pull/7", "pr_state": "open"},
        {"pr_url": "https://github.com/acme/api/pull/8", "pr_state": "merged"},
    ]
    assert api.get(_sessions_url(standin), timeout=5).json()["items"] == [got]


def test_forget_session_makes_every_later_call_for_it_a_404(standin: DevinStandIn, api: requests.Session) -> None:
    sid = _create(api, standin).json()["session_id"]
    _message(api, standin, sid, "before")

    standin.forget_session(sid)

    assert api.get(_session_url(standin, sid), timeout=5).status_code == 404
    assert _message(api, standin, sid, "after").status_code == 404
    assert _list_ids(api, standin) == []
    assert standin.messages(sid) == ["before"]  # what it received stays on record


@pytest.mark.parametrize(
    "helper",
    [
        lambda s: s.update_session("devin-none", status="running"),
        lambda s: s.open_pull_request("devin-none", "https://github.com/acme/api/pull/1"),
        lambda s: s.forget_session("devin-none"),
    ],
    ids=["update_session", "open_pull_request", "forget_session"],
)
def test_state_helpers_refuse_an_unknown_session(standin: DevinStandIn, helper: Any) -> None:
    with pytest.raises(KeyError):
        helper(standin)


def test_reset_also_forgets_messages_and_get_and_message_faults(standin: DevinStandIn, api: requests.Session) -> None:
    old = _create(api, standin).json()["session_id"]
    _message(api, standin, old)
    standin.enqueue_get(Fault.status(500))
    standin.enqueue_message(Fault.status(500))

    standin.reset()

    assert standin.messages(old) == [] and standin.message_requests() == []
    sid = _create(api, standin).json()["session_id"]
    assert api.get(_session_url(standin, sid), timeout=5).status_code == 200
    assert _message(api, standin, sid).status_code == 200


# Who the credential is: GET /v3/self (scripts/doctor's first call)


def test_self_answers_the_service_user_and_its_org(standin: DevinStandIn, api: requests.Session) -> None:
    answer = api.get(f"{standin.base_url}/v3/self", timeout=5)

    assert answer.status_code == 200
    assert answer.json() == {
        "principal_type": "service_user",
        "service_user_id": standin.service_user_id,
        "service_user_name": standin.service_user_name,
        "org_id": ORG,
    }
    assert standin.sessions == [] and standin.create_requests() == []


def test_self_can_answer_a_null_org_as_the_docs_example_does(standin: DevinStandIn, api: requests.Session) -> None:
    standin.self_org_id = None

    assert api.get(f"{standin.base_url}/v3/self", timeout=5).json()["org_id"] is None


@pytest.mark.parametrize("authorization", [None, "Bearer cog_wrong", f"Token {KEY}"])
def test_self_refuses_a_wrong_or_missing_key_with_a_401_problem(
    standin: DevinStandIn, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    answer = requests.get(f"{standin.base_url}/v3/self", headers=headers, timeout=5)

    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["detail"] == "Missing or invalid API key"


def test_self_answers_get_only(standin: DevinStandIn, api: requests.Session) -> None:
    answer = api.post(f"{standin.base_url}/v3/self", json={}, timeout=5)

    assert answer.status_code == 405 and answer.headers["Allow"] == "GET"


def test_self_without_a_configured_key_or_org_accepts_any_key_and_answers_a_null_org() -> None:
    with DevinStandIn() as open_standin:
        answer = requests.get(f"{open_standin.base_url}/v3/self", headers={"Authorization": "Bearer x"}, timeout=5)

    assert answer.status_code == 200 and answer.json()["org_id"] is None


# Concurrency and lifecycle


def test_concurrent_creates_are_all_recorded_with_distinct_ids(standin: DevinStandIn) -> None:
    def create_one(n: int) -> str:
        with requests.Session() as session:  # one connection per caller, as 30 Lambdas would have
            session.headers.update(AUTH)
            return _create(session, standin, title=f"t{n}").json()["session_id"]

    with ThreadPoolExecutor(max_workers=30) as pool:
        ids = list(pool.map(create_one, range(30)))

    assert len(set(ids)) == 30
    assert len(standin.create_requests()) == 30
    assert {s["session_id"] for s in standin.sessions} == set(ids)


def test_latency_delays_answers_without_serialising_them() -> None:
    with DevinStandIn(latency=0.5) as standin, ThreadPoolExecutor(max_workers=10) as pool:
        started = time.monotonic()
        answers = list(pool.map(lambda _: requests.get(_sessions_url(standin), timeout=5), range(10)))
        elapsed = time.monotonic() - started

    assert all(a.status_code == 200 for a in answers)
    assert 0.5 <= elapsed < 2.5  # ten answers in series would take 5 s


def test_stop_returns_promptly_with_an_open_keep_alive_connection(standin: DevinStandIn, api: requests.Session) -> None:
    # GIVEN a client holding an idle keep-alive connection, and a request hanging on the server
    _create(api, standin)
    standin.enqueue(Fault.create_then_hang(30))
    with pytest.raises(requests.ReadTimeout):
        requests.post(_sessions_url(standin), json={"prompt": "x"}, headers=api.headers, timeout=0.2)

    started = time.monotonic()
    standin.stop()

    assert time.monotonic() - started < 2


def test_stop_leaves_the_port_closed(standin: DevinStandIn) -> None:
    standin.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((standin.host, standin.port), timeout=1).close()


def test_stop_twice_is_harmless(standin: DevinStandIn) -> None:
    standin.stop()
    standin.stop()


@pytest.mark.slow
def test_main_serves_until_ctrl_c_and_exits_cleanly() -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "local.devin_standin", "--port", "0", "--org-id", ORG]
    with subprocess.Popen(  # noqa: S603 - a fixed argv of our own
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            # WHEN it says where it listens, it answers there
            assert proc.stdout is not None
            listening = re.search(r"http://[\d.]+:\d+", proc.stdout.readline())
            assert listening, "it did not say where it listens"
            answer = requests.get(f"{listening[0]}/v3/organizations/{ORG}/sessions", timeout=5)
            assert answer.status_code == 200
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=5)
        finally:
            proc.kill()

    # THEN Ctrl-C ends it without a traceback
    assert proc.returncode == 0 and stderr == ""


# The structured result (issue 14)


def test_a_session_keeps_the_schema_it_was_created_with_and_starts_without_a_result(
    api: requests.Session, standin: DevinStandIn
) -> None:
    schema = {"type": "object", "required": ["summary"]}

    created = _create(api, standin, structured_output_schema=schema).json()

    assert created["structured_output"] is None
    assert standin.schema(created["session_id"]) == schema
    fetched = api.get(f"{_sessions_url(standin)}/{created['session_id']}", timeout=5).json()
    assert fetched["structured_output"] is None


def test_a_schema_over_64_kb_is_refused_as_invalid(api: requests.Session, standin: DevinStandIn) -> None:
    too_big = {"type": "object", "description": "x" * (64 * 1024)}

    answer = _create(api, standin, structured_output_schema=too_big)

    assert answer.status_code == 422
    assert standin.sessions == []


def test_a_filled_result_cites_the_prompts_ids_and_satisfies_the_bridges_schema(
    api: requests.Session, standin: DevinStandIn
) -> None:
    import json

    import jsonschema

    from tests.support.template import ROOT

    schema = json.loads((ROOT / "handler" / "bridge" / "result" / "postmortem.schema.json").read_text(encoding="utf-8"))
    data = {
        "title": "Checkout API 5xx",
        "service": "Checkout API",
        "computed": {"seconds_to_first_ack": 138, "seconds_to_resolve": 3034},
        "timeline": [
            {"id": "Q02JTSNZWHSEKV", "at": "2026-03-14T09:12:44Z", "kind": "trigger", "what": "Triggered"},
            {"id": "RNAJ8DLJGWHBXXYX1CC5G50C9O", "at": "2026-03-14T10:03:18Z", "kind": "resolve", "what": "Resolved"},
        ],
        "changes": [{"id": "CHDEPLOY412", "summary": "Deploy 412", "at": "2026-03-14T09:05:00Z"}],
    }
    prompt = f"Draft it.\n<pagerduty-incident>\n{json.dumps(data)}\n</pagerduty-incident>\n"
    session_id = _create(api, standin, prompt=prompt, structured_output_schema=schema).json()["session_id"]

    result = standin.fill_result(session_id, pull_request="https://github.com/acme/checkout/pull/7")

    jsonschema.Draft7Validator(schema).validate(result)
    fetched = api.get(f"{_sessions_url(standin)}/{session_id}", timeout=5).json()
    assert fetched["structured_output"] == result and fetched["status"] == "exit"
    assert fetched["pull_requests"] == [{"pr_url": "https://github.com/acme/checkout/pull/7", "pr_state": "open"}]
    assert "CHDEPLOY412" in result["root_cause"]["evidence"]
    assert result["response"] == {"seconds_to_first_ack": 138, "seconds_to_resolve": 3034}
    assert [change["verdict"] for change in result["changes"]] == ["implicated"]
