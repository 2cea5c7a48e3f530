"""The Devin stand-in and what the bridge sends, held to Devin's own v3 reference rather than to each other.

No machine-readable schema of Devin's API is at hand, so the enums and fields below are copied, one line each with
its source, from ../shared/reference/devin-api.md (itself read from docs.devin.ai's pages with the v3 OpenAPI
embedded). What that reference marks UNCONFIRMED is said so here too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from bridge.devin.session import STOPPED_DETAILS, TABLE, WAITING_DETAILS

from local.devin_standin import DevinStandIn, Lifecycle, Step
from tests.conftest import put_parameter
from tests.support.events import api_event, incident, incident_event, note_event

# --- what Devin documents ----------------------------------------------------------------------------------

# SessionResponse.status (devin-api.md §2, [DOC] post-organizations-sessions.md). One translated page also lists
# "creating" (UNCONFIRMED in the English reference): the bridge follows it as work in progress.
STATUSES = {"new", "claimed", "running", "exit", "error", "suspended", "resuming"}
# SessionResponse.status_detail (§2, [DOC] same page): while running, and while suspended.
RUNNING_DETAILS = {"working", "waiting_for_user", "waiting_for_approval", "finished"}
SUSPENDED_DETAILS = {
    "inactivity",
    "user_request",
    "usage_limit_exceeded",
    "out_of_credits",
    "out_of_quota",
    "no_quota_allocation",
    "payment_declined",
    "org_usage_limit_exceeded",
    "total_session_limit_exceeded",
    "error",
}
# SessionResponse fields (§2): required, then optional.
RESPONSE_REQUIRED = {
    "session_id",
    "url",
    "status",
    "tags",
    "org_id",
    "created_at",
    "updated_at",
    "acus_consumed",
    "pull_requests",
}
RESPONSE_OPTIONAL = {
    "title",
    "user_id",
    "service_user_id",
    "playbook_id",
    "origin",
    "parent_session_id",
    "child_session_ids",
    "is_archived",
    "status_detail",
    "structured_output",
    "category",
    "subcategory",
}
# SessionCreateRequest (§2, [DOC]): only prompt is required.
CREATE_FIELDS = {
    "prompt",
    "title",
    "tags",
    "playbook_id",
    "knowledge_ids",
    "secret_ids",
    "session_secrets",
    "max_acu_limit",
    "repos",
    "attachment_urls",
    "structured_output_schema",
    "structured_output_required",
    "devin_mode",
    "platform",
    "bypass_approval",
    "child_playbook_id",
    "session_links",
    "create_as_user_id",
}
# SessionMessageCreateRequest (§3, [DOC] post-organizations-sessions-messages, SDK interface page).
MESSAGE_FIELDS = {"message", "attachment_urls", "message_as_user_id"}
# GET …/messages (§3, [DOC] get-organizations-session-messages): the page and each item.
MESSAGE_PAGE = {"items", "end_cursor", "has_next_page", "total"}
MESSAGE_ITEM = {"created_at", "event_id", "message", "source"}
# The pull_requests entries (§2).
PULL_REQUEST = {"pr_url", "pr_state"}


# --- the bridge's own table ---------------------------------------------------------------------------------


def test_every_documented_status_and_detail_is_in_the_follow_ups_table() -> None:
    statuses = {status for status, _ in TABLE}
    details = {detail for _, detail in TABLE} - {None}

    assert statuses == STATUSES
    assert details == RUNNING_DETAILS | SUSPENDED_DETAILS
    assert {d for s, d in TABLE if s == "running"} - {None} == RUNNING_DETAILS
    assert {d for s, d in TABLE if s == "suspended"} - {None} == SUSPENDED_DETAILS
    assert WAITING_DETAILS <= RUNNING_DETAILS
    assert set(STOPPED_DETAILS) <= SUSPENDED_DETAILS


# --- the stand-in speaks only what Devin documents ---------------------------------------------------------


@pytest.fixture
def standin() -> Any:
    with DevinStandIn(api_key="cog_contract", org_id="org-contract") as running:
        yield running


def _api(standin: DevinStandIn, method: str, path: str = "", **kwargs: Any) -> requests.Response:
    url = f"{standin.base_url}/v3/organizations/org-contract/sessions{path}"
    return requests.request(method, url, headers={"Authorization": "Bearer cog_contract"}, timeout=5, **kwargs)


def _documented_session(document: dict[str, Any]) -> None:
    assert set(document) >= RESPONSE_REQUIRED, set(RESPONSE_REQUIRED) - set(document)
    assert set(document) <= RESPONSE_REQUIRED | RESPONSE_OPTIONAL, set(document) - RESPONSE_REQUIRED - RESPONSE_OPTIONAL
    assert document["status"] in STATUSES
    detail = document.get("status_detail")
    if detail is not None:
        assert detail in (RUNNING_DETAILS if document["status"] == "running" else SUSPENDED_DETAILS)
    assert isinstance(document["created_at"], int) and isinstance(document["updated_at"], int)
    assert all(set(pr) == PULL_REQUEST for pr in document["pull_requests"])


def test_a_session_run_by_the_stand_in_reports_only_documented_statuses_details_and_fields(standin) -> None:
    seen = []
    clock = [1_800_000_000.0]
    standin.clock = lambda: clock[0]
    standin.lifecycle = Lifecycle(work_seconds=10, idle_seconds=60)
    created = _api(standin, "POST", json={"prompt": "p", "structured_output_schema": {"type": "object"}}).json()
    _documented_session(created)
    sid = created["session_id"]
    for step in (0, 5, 10, 75, 100):  # working, finished with a result and a pull request, idle
        clock[0] = 1_800_000_000.0 + step
        seen.append(_api(standin, "GET", f"/{sid}").json())
    resumed = _api(standin, "POST", f"/{sid}/messages", json={"message": "The incident was reopened."}).json()
    for step in (0, 20, 200):
        clock[0] = 1_800_000_100.0 + step
        seen.append(_api(standin, "GET", f"/{sid}").json())
    listed = _api(standin, "GET", params={"first": 10}).json()

    for document in [*seen, resumed, *listed["items"]]:
        _documented_session(document)
    pairs = [(d["status"], d["status_detail"]) for d in seen]
    assert pairs[:4] == [("running", "working"), ("running", "working"), ("running", "finished")] + [
        ("suspended", "inactivity")
    ]
    assert (resumed["status"], resumed["status_detail"]) == ("running", "working")
    assert pairs[-1] == ("suspended", "inactivity")


@pytest.mark.parametrize(("status", "detail"), list(TABLE))
def test_every_pair_a_test_can_plan_is_served_as_documented(standin, status: str, detail: str | None) -> None:
    sid = _api(standin, "POST", json={"prompt": "p"}).json()["session_id"]
    standin.plan(sid, [Step(0, status, detail)])

    _documented_session(_api(standin, "GET", f"/{sid}").json())


def test_the_messages_list_has_the_documented_shape(standin) -> None:
    sid = _api(standin, "POST", json={"prompt": "p"}).json()["session_id"]
    _api(standin, "POST", f"/{sid}/messages", json={"message": "one"})

    page = _api(standin, "GET", f"/{sid}/messages", params={"first": 1}).json()

    assert set(page) == MESSAGE_PAGE
    (item,) = page["items"]
    assert set(item) == MESSAGE_ITEM and item["message"] == "one"


# --- what the bridge sends is what Devin documents ---------------------------------------------------------


def test_every_field_of_the_create_request_is_documented(secrets, invoke, devin) -> None:
    # With a routing rule that sets every field the bridge knows how to send.
    rule = {
        "name": "all",
        "playbook_id": "playbook-1",
        "knowledge_ids": ["note-1"],
        "repos": ["acme/checkout"],
        "max_acu_limit": 5,
        "tags": ["team:payments"],
    }
    put_parameter("routing", json.dumps({"rules": [rule]}), secure=False)

    assert invoke(api_event(incident("QCONTRACT1"))).body["status"] == "started"

    (request,) = devin.create_requests()
    body = request.json()
    assert set(body) <= CREATE_FIELDS, set(body) - CREATE_FIELDS
    assert isinstance(body["prompt"], str) and body["prompt"]
    assert all(isinstance(tag, str) for tag in body["tags"])
    assert isinstance(body["max_acu_limit"], int) and body["max_acu_limit"] > 0
    assert request.headers["content-type"].startswith("application/json")


def test_every_field_of_a_message_is_documented(secrets, env, invoke, devin, monkeypatch) -> None:
    monkeypatch.setenv("EVENT_TYPES", "incident.acknowledged")
    monkeypatch.setenv("FOLLOW_UP_EVENT_TYPES", "incident.annotated")
    acknowledged = ("incident.acknowledged", "01JCONTRACTACK00000000001", "2026-03-14T09:15:00Z")
    started = invoke(api_event(incident_event(*acknowledged, incident_id="QCONTRACT2", status="acknowledged")))
    assert started.body["status"] == "started"

    answer = invoke(api_event(note_event("01JCONTRACT000000000000001", "2026-03-14T09:40:00Z", "n", "QCONTRACT2")))

    assert answer.body["status"] == "messaged"
    (request,) = devin.message_requests()
    assert set(request.json()) <= MESSAGE_FIELDS
    assert isinstance(request.json()["message"], str)
