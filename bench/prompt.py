"""What Devin is asked: the size of the create request's prompt and of the structured result's schema beside it.

The prompt is built by the function's own code (bridge.devin.prompt.build_session_request) for the sample P1
webhook, three ways: without PagerDuty's record (a deployment without the PagerDuty key), with the sample record
read from PagerDuty's stand-in as the function reads it, and with the largest record its caps let through (every
part over its cap, every field at its bound). Tokens are an estimate, characters / 4: Devin's model and tokenizer
are not published, and JSON and ids tokenise worse than prose, so read them as an order of magnitude.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from typing import Any

import requests

from bench.lambda_env import HANDLER, ROOT

if str(HANDLER) not in sys.path:
    sys.path.insert(0, str(HANDLER))

from bridge.devin.prompt import SessionRequest, build_session_request  # noqa: E402
from bridge.pagerduty.client import PagerDutyClient, read_record  # noqa: E402
from bridge.webhook.event import parse_event, read_incident  # noqa: E402

from local.pagerduty_standin import PagerDutyStandIn, sample_record  # noqa: E402

PAYLOAD = ROOT / "events" / "payloads" / "incident-resolved-p1.json"
KEY = "bench-pagerduty-key"
CHARS_PER_TOKEN = 4
# More than each part's cap (bridge.pagerduty.record: 25 + 25 log entries, 10 + 10 alerts, 15 + 15 notes).
LARGE = {"log_entries": 400, "alerts": 60, "notes": 60, "change_events": 30, "past_incidents": 10}


def _size(text: str) -> str:
    return f"{len(text):,} characters, ≈ {len(text) // CHARS_PER_TOKEN:,} tokens"


def _largest(incident_id: str) -> dict[str, Any]:
    """The sample record with every list over its cap and every free-text field far over its bound."""
    sample = sample_record(incident_id)
    long_text = "x" * 5_000

    def many(items: list[dict[str, Any]], count: int, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        made = []
        for number in range(count):
            item = copy.deepcopy(items[number % len(items)])
            item["id"] = f"{item.get('id', 'X')}{number:04d}"
            for name in fields:
                if name in item:
                    item[name] = long_text
            made.append(item)
        return made

    return {
        "incident": sample["incident"],
        "log_entries": many(sample["log_entries"], LARGE["log_entries"], ("summary",)),
        "alerts": many(sample["alerts"], LARGE["alerts"], ("summary",)),
        "notes": many(sample["notes"], LARGE["notes"], ("content",)),
        "change_events": many(sample["change_events"], LARGE["change_events"], ("summary",)),
        "past_incidents": many(sample["past_incidents"], LARGE["past_incidents"], ()),
    }


def _request(record_parts: dict[str, Any] | None) -> SessionRequest:
    event = parse_event(PAYLOAD.read_bytes())
    incident = read_incident(event)
    if record_parts is None:
        return build_session_request(incident, event)
    with PagerDutyStandIn(api_key=KEY) as pagerduty, requests.Session() as http:
        pagerduty.add_incident(incident.id, **record_parts)
        client = PagerDutyClient(pagerduty.base_url, KEY, http)
        record = read_record(client, incident.id, 10.0, created_at=incident.created_at, clock=time.monotonic)
    return build_session_request(incident, event, record=record)


def rows() -> list[tuple[str, str, str, str]]:
    """(what, figure, target, how) rows."""
    incident_id = read_incident(parse_event(PAYLOAD.read_bytes())).id
    plain = _request(None)
    sampled = _request(sample_record(incident_id))
    largest = _request(_largest(incident_id))
    schema = json.dumps(plain.structured_output_schema, separators=(",", ":"))
    body = json.dumps(largest.body(), separators=(",", ":"))
    how = "bridge.devin.prompt.build_session_request on events/payloads/incident-resolved-p1.json"
    counts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in LARGE.items())
    return [
        ("prompt, without PagerDuty's record", _size(plain.prompt), "", how + "; no PagerDuty key"),
        (
            "prompt, with the sample record",
            _size(sampled.prompt),
            "",
            how + "; local.pagerduty_standin's sample record, read by bridge.pagerduty.client.read_record",
        ),
        (
            "prompt, the largest record the caps let through",
            _size(largest.prompt),
            "",
            how + f"; a record of {counts}, every free-text field 5,000 characters",
        ),
        (
            "structured output schema (with every request)",
            _size(schema),
            "< 64 KB (issue 23)" + (" met" if len(schema.encode()) < 64 * 1024 else " MISSED"),
            "handler/bridge/result/postmortem.schema.json as sent: $comment stripped, compact JSON",
        ),
        ("create request, largest", f"{len(body.encode()):,} bytes", "", "prompt + schema + title + tags, as JSON"),
    ]


if __name__ == "__main__":
    for row in rows():
        print(" | ".join(row))
