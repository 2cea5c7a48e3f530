"""Who the bridge says it is: both clients send `User-Agent: pagerduty-postmortem-bridge/<version>` on every request
(issue 20, part 3), and the PagerDuty client the `Content-Type: application/json` PagerDuty's specification marks
required on every operation, its GETs included."""

from __future__ import annotations

import re

from bridge.http import USER_AGENT, VERSION

from local.pagerduty_standin import sample_record
from tests.support.events import api_event, payload

INCIDENT = "Q2CKYRLH85UNN4"


def test_the_user_agent_names_the_bridge_and_its_version() -> None:
    assert re.fullmatch(r"pagerduty-postmortem-bridge/\d+\.\d+\.\d+", USER_AGENT)
    assert USER_AGENT.endswith(f"/{VERSION}")


def test_every_request_of_a_delivery_and_a_follow_up_names_the_bridge(
    pagerduty_writes, pagerduty, invoke, devin, follow_up_run
) -> None:
    # GIVEN a deployment with PagerDuty's key and a From address, and PagerDuty knowing the incident
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))

    # WHEN a resolve starts a session (the record read, the session created, its note posted), then the follow-up
    # reads the session and posts on the incident
    assert invoke(api_event(payload())).body["status"] == "started"
    follow_up_run()

    # THEN every request to Devin and to PagerDuty says it comes from the bridge, at this version
    devin_sent = [f"{r.method} {r.path}" for r in devin.requests]
    assert "POST /v3/organizations/org-test123/sessions" in devin_sent
    assert any(re.fullmatch(r"GET /v3/organizations/org-test123/sessions/[^/]+", sent) for sent in devin_sent)
    assert {r.headers.get("user-agent") for r in devin.requests} == {USER_AGENT}
    assert {r.headers.get("user-agent") for r in pagerduty.requests} == {USER_AGENT}
    # AND every PagerDuty request, the GETs too, carries Content-Type: application/json
    assert {r.method for r in pagerduty.requests} == {"GET", "POST"}
    assert {r.headers.get("content-type") for r in pagerduty.requests} == {"application/json"}
