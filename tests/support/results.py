"""Structured results as a Devin session fills them in (handler/bridge/result/postmortem.schema.json), for the tests."""

from __future__ import annotations

import copy
from typing import Any

PR_URL = "https://github.com/acme/checkout/pull/412"

# The sample P1 incident's postmortem (local/pagerduty_standin.py's record): ids are its log entries and alerts.
_VALID: dict[str, Any] = {
    "summary": (
        "Checkout API returned 5xx to 7% of requests for 51 minutes after deploy 412; rolling back to"
        " 2026.03.13-2 ended it."
    ),
    "root_cause": {
        "statement": "Deploy 412 shipped a connection pool size of 2, exhausting connections under peak load.",
        "confidence": "likely",
        "evidence": ["Q02JTSNZWHSEKV", "Q1RPVEX3LK98BU", "https://github.com/acme/checkout/pull/398"],
    },
    "action_items": [
        {
            "title": "Check pool size against peak concurrency in the deploy pipeline",
            "type": "prevent",
            "priority": "P1",
            "owner": "payments platform on-call",
            "verification": "A deploy with a pool below peak concurrency fails the pipeline's check.",
        },
        {
            "title": "Alert on connection pool saturation above 90%",
            "type": "detect",
            "priority": "P2",
            "owner": "observability team",
            "verification": "The alert fires in the staging load test.",
        },
    ],
    "impact": {
        "what": "Checkout requests failed with 5xx",
        "who": "Customers paying in us-west-2",
        "started_at": "2026-03-14T09:12:44Z",
        "ended_at": "2026-03-14T10:03:18Z",
        "quantity": {"value": 1840, "unit": "failed checkouts", "estimate": True, "basis": "7% of 26,300 requests"},
    },
    "detection": {
        "how": "The 5xx error rate alert",
        "detected_at": "2026-03-14T09:12:44Z",
        "evidence": ["Q1RPVEX3LK98BU"],
    },
    "timeline": [
        {"at": "2026-03-14T09:12:44Z", "what": "Triggered by the 5xx rate alert", "evidence": ["Q02JTSNZWHSEKV"]},
        {
            "at": "2026-03-14T10:03:18Z",
            "what": "Resolved after the rollback",
            "evidence": ["RNAJ8DLJGWHBXXYX1CC5G50C9O"],
        },
    ],
    "contributing_factors": [
        {"statement": "No load test ran before the deploy", "confidence": "confirmed", "evidence": []},
    ],
    "response": {"seconds_to_first_ack": 138, "seconds_to_resolve": 3034},
    "went_well": ["The rollback took four minutes"],
    "went_poorly": ["The acknowledgement timed out once"],
    "got_lucky": ["The incident started outside peak hours"],
    "recurrence": {"checked": True, "related": [], "notes": "No earlier postmortem under docs/postmortems/ matches."},
    "pull_request_url": PR_URL,
}


def valid_result(**changes: Any) -> dict[str, Any]:
    """A result that satisfies the default schema, with top-level `changes` applied (None removes a field)."""
    result = copy.deepcopy(_VALID)
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result
