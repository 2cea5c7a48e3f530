"""PagerDuty's API as its own specification says (issue 20, part 3).

The stand-in (local/pagerduty_standin.py) was written with the client, so it agrees with it by construction. Both
are held here to PagerDuty's published OpenAPI specification, vendored in tests/contracts/ (tests/support/openapi.py
says how): every request the client and scripts/doctor send, captured by running them against the stand-in, and
every answer the stand-in serves, validate against it with openapi-core, the answers with every property the
specification does not declare refused; and every field of PagerDuty's JSON the client reads is one it declares.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from bridge.pagerduty.client import PagerDutyClient, read_record, request_headers
from bridge.pagerduty.notes import has_marker
from openapi_spec_validator import validate

from local.http_server import RecordedRequest
from local.pagerduty_standin import LIFECYCLE_INCIDENT, P1_INCIDENT, SAMPLE_FROM_EMAIL, PagerDutyStandIn, sample_record
from scripts import doctor as doctor_module
from tests.conftest import PAGERDUTY_KEY, PREFIX
from tests.support.events import api_event, incident
from tests.support.openapi import SPEC, Contract, Operation, Reads, Recording

# An incident whose log is longer than a page (PagerDuty lists at most 100 a page), so the client asks for a second.
LONG_INCIDENT = "QLONGLOG000001"
INCIDENTS = (P1_INCIDENT, LIFECYCLE_INCIDENT, LONG_INCIDENT)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


@pytest.fixture
def standin() -> Iterator[PagerDutyStandIn]:
    """PagerDuty with the sample incidents, a long one, and its sample users."""
    with PagerDutyStandIn(api_key=PAGERDUTY_KEY, serve_samples=True) as served:
        long_record = sample_record(LONG_INCIDENT)
        entries = long_record["log_entries"]
        long_record["log_entries"] = [
            {**copy.deepcopy(entries[n % len(entries)]), "id": f"RLONG{n:021d}"} for n in range(150)
        ]
        served.add_incident(LONG_INCIDENT, **long_record)
        yield served


def drive_the_client(standin: PagerDutyStandIn, session: requests.Session) -> None:
    """Every call the bridge's PagerDuty client makes, as the bridge makes them: the record with its changes and
    history, the record since a time, the session note after looking for its marker, and the incident itself."""
    client = PagerDutyClient(standin.base_url, PAGERDUTY_KEY, session, from_email=SAMPLE_FROM_EMAIL)
    for incident_id in INCIDENTS:
        record = sample_record(incident_id)["incident"]
        full = read_record(client, incident_id, 10, created_at=record["created_at"], resolved_at=record["resolved_at"])
        assert full.log_entries.unavailable is None and full.past_incidents is not None, full
        read_record(client, incident_id, 10, since=record["created_at"])
        marker = "[pagerduty-postmortem:session]"
        if not has_marker(client.notes(incident_id, time.monotonic() + 5), marker):
            client.post_note(incident_id, f"A postmortem draft is being written.\n{marker}", time.monotonic() + 5)
        client.incident(incident_id, time.monotonic() + 5)
    client.incidents(time.monotonic() + 5)


def drive_the_doctor(
    standin: PagerDutyStandIn, contract: Contract, monkeypatch: pytest.MonkeyPatch, reads: Reads
) -> doctor_module.Check:
    """scripts/doctor's PagerDuty check against the stand-in, noting which fields of the answers it reads."""
    real_get = doctor_module._get

    def reading_get(url: str, headers: Any) -> tuple[int, Any]:
        status, document = real_get(url, headers)
        path = url.removeprefix(standin.base_url).split("?")[0]
        return status, reads.wrap(document, contract.operation("GET", path))

    monkeypatch.setattr(doctor_module, "_get", reading_get)
    target = doctor_module.Target("the local stack", {}, PREFIX, "", standin.base_url, lambda _: None, "", "", "")
    stored = doctor_module.Stored(
        {"pagerduty-api-key": "SecureString", "pagerduty-from-email": "String"},
        {"pagerduty-api-key": PAGERDUTY_KEY, "pagerduty-from-email": SAMPLE_FROM_EMAIL},
    )
    return doctor_module.check_pagerduty(target, stored)


# The vendored specification


def test_the_vendored_specification_is_pagerdutys_openapi_3_0_with_its_source(contract: Contract) -> None:
    vendored = json.loads(SPEC.read_text(encoding="utf-8"))

    validate(vendored)  # a valid OpenAPI 3.0 document, as it was copied
    assert vendored["openapi"].startswith("3.0")
    assert vendored["x-source"].startswith("github.com/PagerDuty/api-schema reference/REST/openapiv3.json at commit")
    assert {str(operation) for operation in contract.operations()} == {
        "GET /incidents",
        "GET /incidents/{id}",
        "GET /incidents/{id}/alerts",
        "GET /incidents/{id}/log_entries",
        "GET /incidents/{id}/notes",
        "POST /incidents/{id}/notes",
        "GET /incidents/{id}/related_change_events",
        "GET /incidents/{id}/past_incidents",
        "GET /users",
    }


# The requests


def test_every_request_the_client_makes_validates_against_the_specification(
    contract: Contract, standin: PagerDutyStandIn
) -> None:
    drive_the_client(standin, requests.Session())

    sent = standin.requests
    errors = [error for request in sent for error in contract.request_errors(request)]
    assert not errors, "\n".join(errors)
    # All but GET /users, which only scripts/doctor calls; a second page of log entries among them
    assert {contract.operation(r.method, r.path) for r in sent} == contract.operations() - {Operation("get", "/users")}
    assert any(r.path.endswith("/log_entries") and r.query.get("offset") == ["100"] for r in sent)
    assert any(r.path.endswith("/log_entries") and "since" in r.query for r in sent)


def test_every_request_of_the_doctors_pagerduty_check_validates_against_the_specification(
    contract: Contract, standin: PagerDutyStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = drive_the_doctor(standin, contract, monkeypatch, Reads())

    assert check.problem is None, check
    assert [(r.method, r.path) for r in standin.requests] == [("GET", "/incidents"), ("GET", "/users")]
    errors = [error for request in standin.requests for error in contract.request_errors(request)]
    assert not errors, "\n".join(errors)


def test_every_request_a_delivery_sends_to_pagerduty_validates_against_the_specification(
    contract: Contract, pagerduty_writes: None, pagerduty: PagerDutyStandIn, invoke: Any, devin: Any
) -> None:
    # GIVEN the deployed function with PagerDuty's key and a From address
    pagerduty.add_incident("QCONTRACT0001", **sample_record("QCONTRACT0001"))

    # WHEN a resolve starts a session: the record is read, then the session's note posted
    assert invoke(api_event(incident("QCONTRACT0001"))).body["status"] == "started"

    # THEN each of those requests is one PagerDuty's specification allows
    assert [r.method for r in pagerduty.requests] == ["GET"] * 5 + ["POST"]
    errors = [error for request in pagerduty.requests for error in contract.request_errors(request)]
    assert not errors, "\n".join(errors)


# The answers


@pytest.fixture
def driven(contract: Contract, standin: PagerDutyStandIn, monkeypatch: pytest.MonkeyPatch) -> Recording:
    """The client, then the doctor, run against the stand-in: the answers the client got, the fields both read."""
    session = Recording(contract)
    drive_the_client(standin, session)
    drive_the_doctor(standin, contract, monkeypatch, session.reads)
    return session


def test_every_answer_the_standin_serves_to_the_client_and_the_doctor_has_only_declared_fields(
    contract: Contract, standin: PagerDutyStandIn, driven: Recording
) -> None:
    session = driven
    # The doctor reads with urllib: its two answers are asked for again, as it asked
    for request in standin.requests[len(session.answers) :]:
        session.get(f"{standin.base_url}{request.path}", params=request.query, headers=request_headers(PAGERDUTY_KEY))

    answered = {contract.operation(a.request.method, a.request.path) for a in session.answers}
    assert answered == contract.operations()
    assert all(200 <= answer.status < 300 for answer in session.answers)
    errors = [
        error
        for answer in session.answers
        for error in contract.response_errors(answer.request, answer.status, answer.body, answer.content_type)
    ]
    assert not errors, "\n".join(errors)


def _sent(method: str, path: str, query: dict[str, list[str]] | None = None, **headers: str) -> RecordedRequest:
    return RecordedRequest(method, path, query or {}, {k.lower(): v for k, v in headers.items()}, b"")


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "body", "status"),
    [
        ("GET", "/incidents/QUNKNOWN/log_entries", {}, {}, None, 404),
        ("GET", "/incidents/QUNKNOWN/past_incidents", {}, {}, None, 404),
        ("GET", "/incidents/QUNKNOWN", {}, {}, None, 404),
        ("GET", f"/incidents/{P1_INCIDENT}/log_entries", {"since": ["yesterday"]}, {}, None, 400),
        ("GET", f"/incidents/{P1_INCIDENT}/alerts", {"offset": ["9950"], "limit": ["100"]}, {}, None, 400),
        ("GET", f"/incidents/{P1_INCIDENT}/past_incidents", {"limit": ["0"]}, {}, None, 400),
        ("POST", f"/incidents/{P1_INCIDENT}/notes", {}, {}, {"note": {"content": "x"}}, 400),
        ("POST", f"/incidents/{P1_INCIDENT}/notes", {}, {"From": "Dana"}, {"note": {"content": "x"}}, 400),
        ("POST", f"/incidents/{P1_INCIDENT}/notes", {}, {"From": SAMPLE_FROM_EMAIL}, {"note": {}}, 400),
        ("GET", "/users", {}, {"Authorization": "Token token=wrong"}, None, 401),
        ("GET", f"/incidents/{P1_INCIDENT}/past_incidents", {}, {"Authorization": "Bearer x"}, None, 401),
    ],
)
def test_the_standins_own_refusals_are_pagerdutys_error_answers(
    contract: Contract,
    standin: PagerDutyStandIn,
    method: str,
    path: str,
    query: dict[str, list[str]],
    headers: dict[str, str],
    body: dict[str, Any] | None,
    status: int,
) -> None:
    standin.serve_samples = False  # an unknown incident is one
    standin.add_incident(P1_INCIDENT, **sample_record(P1_INCIDENT))

    answer = requests.request(
        method,
        f"{standin.base_url}{path}",
        params=query,
        headers={**request_headers(PAGERDUTY_KEY), **headers},
        json=body,
        timeout=5,
    )

    assert answer.status_code == status
    # An error status the operation does not list (e.g. 401 on past_incidents) is held to the error schema
    errors = contract.response_errors(_sent(method, path), answer.status_code, answer.content)
    assert not errors, "\n".join(errors)


# What the client reads


def test_every_field_the_client_and_the_doctor_read_is_one_the_specification_declares(
    contract: Contract, driven: Recording
) -> None:
    read = set(driven.reads)

    undeclared = contract.undeclared(read)
    assert not undeclared, "\n".join(undeclared)
    # The reads were noted: the past incidents' fields, an alert's details, the users' e-mail addresses
    past = Operation("get", "/incidents/{id}/past_incidents")
    assert (past, ("past_incidents", "[]", "incident", "self")) in read
    assert (past, ("past_incidents", "[]", "score")) in read
    assert (Operation("get", "/incidents/{id}/alerts"), ("alerts", "[]", "body", "details")) in read
    assert (Operation("get", "/users"), ("users", "[]", "email")) in read


# The checks themselves can fail


PAST_INCIDENT = {
    "past_incidents": [
        {
            "incident": {
                "id": "Q1LQ8ZP2XK4MDA",
                "created_at": "2026-01-22T16:40:03Z",
                "self": "https://api.pagerduty.com/incidents/Q1LQ8ZP2XK4MDA",
                "title": "Checkout API 5xx error rate above 5% after a deploy",
                "incident_number": 977,  # invented: the specification has no such field here
            },
            "score": 46.8249,
        }
    ],
    "limit": 5,
    "total": 1,
}


def test_a_field_the_specification_does_not_declare_fails_the_strict_check_though_plain_validation_accepts_it(
    contract: Contract,
) -> None:
    request = _sent("GET", "/incidents/Q2CKYRLH85UNN4/past_incidents", {"limit": ["5"]})
    body = json.dumps(PAST_INCIDENT).encode()

    strict = contract.response_errors(request, 200, body)

    assert strict == [
        "GET /incidents/{id}/past_incidents → 200: past_incidents/0/incident: Additional properties are not allowed"
        " ('incident_number' was unexpected)"
    ]
    # PagerDuty's schemas as published allow any extra property: that is why the strict copy exists
    assert Contract(strict=False).response_errors(request, 200, body) == []


def test_reading_a_field_the_specification_does_not_declare_is_reported(contract: Contract) -> None:
    reads = Reads()
    past = Operation("get", "/incidents/{id}/past_incidents")
    document = reads.wrap(copy.deepcopy(PAST_INCIDENT), past)

    [item] = document["past_incidents"]
    item["incident"].get("html_url")
    item.get("score")

    assert contract.undeclared(reads) == ["GET /incidents/{id}/past_incidents: past_incidents.[].incident.html_url"]


def test_a_request_without_the_headers_the_specification_requires_fails(contract: Contract) -> None:
    request = _sent(
        "GET",
        "/incidents/Q2CKYRLH85UNN4/past_incidents",
        {"limit": ["5"], "incident_number": ["1"]},
        Authorization=f"Token token={PAGERDUTY_KEY}",
    )

    assert contract.request_errors(request) == [
        "GET /incidents/{id}/past_incidents: query parameter 'incident_number' is not declared",
        "GET /incidents/{id}/past_incidents: header Accept is required",
        "GET /incidents/{id}/past_incidents: header Content-Type is required",
    ]
