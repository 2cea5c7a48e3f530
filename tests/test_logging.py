"""What the function's structured logs say about each delivery."""

from __future__ import annotations

from tests.support.events import api_event, incident, payload


def test_one_deliverys_incident_keys_do_not_leak_into_the_next_deliverys_logs(invoke, devin, logs) -> None:
    invoke(api_event(incident("QFIRST1")))
    seen = len(logs())

    invoke(api_event(payload("pagey-ping.json")))

    ping_lines = logs()[seen:]
    assert ping_lines, "the ping was logged"
    assert all("incident_id" not in line and "session_id" not in line for line in ping_lines)


def test_a_started_session_is_logged_with_its_incident_and_webhook_ids(invoke, devin, logs) -> None:
    invoke(api_event(incident("QLOG1"), webhook_id="wh-123"))

    started = [line for line in logs() if "session_id" in line]
    assert len(started) == 1
    assert started[0]["incident_id"] == "QLOG1"
    assert started[0]["webhook_id"] == "wh-123"
    assert started[0]["session_id"] == devin.sessions[0]["session_id"]
