"""Regenerate the signed API Gateway HTTP API (payload 2.0) sample events in events/ from events/payloads/.

Usage:
    python scripts/make_events.py           # (re)write events/*.json
    python scripts/make_events.py --check   # exit 1 if a committed event is missing or differs

Each event wraps a PagerDuty v3 delivery body exactly as API Gateway hands it to the function, signed with
TEST_SIGNING_SECRET the way PagerDuty signs (HMAC-SHA256 over the raw body bytes, hex, ``v1=`` prefix).
Everything is derived from the file name or the payload, never from the clock or a random source, so running
the script twice gives byte-identical files and a test can check that the committed events never drift.
Only the standard library is used, so the script runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The signing secret the sample events are signed with. Tests configure it as the PagerDuty signing secret
# in (mocked) Parameter Store; it is not a real secret and must never be used for a real subscription.
TEST_SIGNING_SECRET = "pd-test-signing-secret"  # noqa: S105 - a published test value, see above
# A secret the function is never configured with: events signed with it must be rejected as forged.
FORGED_SIGNING_SECRET = "not-the-secret"  # noqa: S105 - a published test value

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = REPO_ROOT / "events"
PAYLOADS_DIR = EVENTS_DIR / "payloads"

# Fictional API Gateway identity; the values only need to look like what AWS sends.
ACCOUNT_ID = "123456789012"
API_ID = "a1b2c3d4e5"
DOMAIN_NAME = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
ROUTE_KEY = "POST /pagerduty"
PATH = "/pagerduty"
USER_AGENT = "PagerDuty-Webhook/V3.0"
SUBSCRIPTION_ID = "PXSUIZH"
# One of PagerDuty's published US webhook source addresses (developer docs, "Webhook IPs").
SOURCE_IP = "44.242.69.192"
# Deliveries whose body has no occurred_at (the malformed ones) get this fixed arrival time.
DEFAULT_ARRIVAL = datetime(2026, 3, 14, 10, 30, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# PagerDuty delivers a moment after the event occurred; a fixed lag keeps arrival times realistic and stable.
DELIVERY_LAG = timedelta(milliseconds=614)
# Namespace for the per-event X-Webhook-Id, so ids are stable UUIDs rather than random ones.
WEBHOOK_ID_NAMESPACE = uuid.UUID("6f1c2a9e-4b7d-5e38-9a0c-3d8e7f215b64")
# strftime("%b") depends on the locale; API Gateway always uses English month names.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class EventSpec:
    """One generated event: where its body comes from, how it is signed, and what the function must answer."""

    name: str
    # A file in events/payloads/ whose exact bytes are the body, or None when raw_body is given instead.
    payload: str | None
    # The expected answer: (HTTP status, the JSON answer's "status" field, or None for an error answer).
    expected: tuple[int, str | None]
    raw_body: bytes | None = None
    # Secret to sign with; None leaves the X-PagerDuty-Signature header out entirely.
    secret: str | None = TEST_SIGNING_SECRET
    base64_body: bool = False


# What each event shows. The expected answers assume the function runs with the contract's defaults
# (EVENT_TYPES=incident.resolved, PRIORITIES=P1,P2, URGENCIES=high), TEST_SIGNING_SECRET as the PagerDuty
# signing secret, no custom-header secret, and an empty ledger (so the P1 resolve starts a new session).
SPECS: tuple[EventSpec, ...] = (
    EventSpec("resolved-p1-starts-session.json", "incident-resolved-p1.json", (200, "started")),
    # Priority is null, so the urgency rule applies, and "low" is not in URGENCIES.
    EventSpec("resolved-low-urgency-ignored.json", "incident-resolved-low-urgency.json", (200, "ignored")),
    # P2/high would qualify, but resolve_reason says it was merged into the P1 incident.
    EventSpec("resolved-merged-ignored.json", "incident-resolved-merged.json", (200, "ignored")),
    # Same incident as the P1 resolve, but incident.triggered is not in EVENT_TYPES.
    EventSpec("triggered-ignored.json", "incident-triggered-p1.json", (200, "ignored")),
    # data.type is incident_note, not incident.
    EventSpec("annotated-ignored.json", "incident-annotated.json", (200, "ignored")),
    # The "Send Test Event" ping: must get a 2xx or PagerDuty counts it as a failed delivery.
    EventSpec("ping-ignored.json", "pagey-ping.json", (200, "ignored")),
    # The lifecycle incident (an incident of its own): with the defaults its acknowledgement, note and reopening are
    # types that neither start a session nor are forwarded. LIFECYCLE says what they get when they are.
    EventSpec("lifecycle-acknowledged-ignored.json", "lifecycle-acknowledged.json", (200, "ignored")),
    EventSpec("lifecycle-annotated-ignored.json", "lifecycle-annotated.json", (200, "ignored")),
    EventSpec("lifecycle-reopened-ignored.json", "lifecycle-reopened.json", (200, "ignored")),
    # API Gateway may hand the body over base64-encoded; the signature is still over the decoded bytes.
    EventSpec("resolved-p1-base64-body.json", "incident-resolved-p1.json", (200, "started"), base64_body=True),
    EventSpec(
        "bad-signature-unauthorized.json",
        "incident-resolved-p1.json",
        (401, None),
        secret=FORGED_SIGNING_SECRET,
    ),
    EventSpec("missing-signature-unauthorized.json", "incident-resolved-p1.json", (401, None), secret=None),
    # Correctly signed, so only the body can be blamed: truncated JSON.
    EventSpec("malformed-body-bad-request.json", None, (400, None), raw_body=b'{"event": '),
    # Correctly signed valid JSON that is not a v3 envelope (a v2-style shape with no "event" object).
    EventSpec("no-event-object-bad-request.json", None, (400, None), raw_body=b'{"messages": []}'),
)

# File name -> (HTTP status, answer "status" or None); the handler's tests invoke each event with it.
EXPECTED: dict[str, tuple[int, str | None]] = {spec.name: spec.expected for spec in SPECS}

# The lifecycle, tried by hand (docs/local.md): the template parameters that start a session early and forward the
# rest to it, and the lifecycle incident's payloads in the order they happened, each with its answer on a stack so
# configured (an empty ledger, the age check off). The tests deliver them in this order and check each answer.
LIFECYCLE_PARAMETERS = {
    "EventTypes": "incident.resolved,incident.acknowledged",
    "FollowUpEventTypes": "incident.annotated,incident.reopened",
}
LIFECYCLE: tuple[tuple[str, str], ...] = (
    ("lifecycle-acknowledged.json", "started"),
    ("lifecycle-annotated.json", "messaged"),
    ("lifecycle-resolved.json", "messaged"),
    ("lifecycle-reopened.json", "messaged"),
    ("lifecycle-resolved-again.json", "messaged"),
)


def sign(body: bytes, secret: str) -> str:
    """Return the X-PagerDuty-Signature value PagerDuty would send for body: "v1=<hex hmac-sha256>"."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def _raw_body(spec: EventSpec) -> bytes:
    # Read bytes, not text: the signature must be over exactly what is on disk, and re-serialising the JSON
    # would change whitespace and escaping.
    if spec.payload is not None:
        return (PAYLOADS_DIR / spec.payload).read_bytes()
    if spec.raw_body is None:
        raise ValueError(f"{spec.name}: needs a payload file or a raw body")
    return spec.raw_body


def _arrival_time(raw: bytes) -> datetime:
    try:
        occurred = json.loads(raw)["event"]["occurred_at"]
        return datetime.fromisoformat(occurred) + DELIVERY_LAG
    except (ValueError, KeyError, TypeError):
        return DEFAULT_ARRIVAL


def _digest(name: str) -> bytes:
    return hashlib.sha256(name.encode("utf-8")).digest()


def _request_id(name: str) -> str:
    # HTTP API request ids look like "JKJaXmPLvHcESHA=": 14 base64 characters and a padding sign, and in
    # practice letters and digits only, hence the replacement alphabet for "+" and "/".
    return base64.b64encode(_digest(name)[:10], altchars=b"xQ").decode("ascii")[:14] + "="


def _trace_id(name: str, arrival: datetime) -> str:
    # X-Ray format: Root=1-<epoch seconds, 8 hex>-<96-bit id, 24 hex>.
    return f"Root=1-{int(arrival.timestamp()):08x}-{_digest(name)[10:22].hex()}"


def _api_gateway_time(arrival: datetime) -> str:
    return f"{arrival:%d}/{MONTHS[arrival.month - 1]}/{arrival:%Y:%H:%M:%S} +0000"


def build_event(spec: EventSpec) -> dict[str, Any]:
    """Build the API Gateway HTTP API (payload 2.0) event for one spec."""
    raw = _raw_body(spec)
    arrival = _arrival_time(raw)
    headers: dict[str, str] = {
        # HTTP API passes header names lowercased. Sorted below so the file order never depends on code order.
        "accept": "application/json",
        "content-length": str(len(raw)),
        "content-type": "application/json",
        "host": DOMAIN_NAME,
        "user-agent": USER_AGENT,
        "x-amzn-trace-id": _trace_id(spec.name, arrival),
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        "x-webhook-id": str(uuid.uuid5(WEBHOOK_ID_NAMESPACE, spec.name)),
        "x-webhook-subscription": SUBSCRIPTION_ID,
    }
    if spec.secret is not None:
        headers["x-pagerduty-signature"] = sign(raw, spec.secret)
    headers = dict(sorted(headers.items()))
    return {
        "version": "2.0",
        "routeKey": ROUTE_KEY,
        "rawPath": PATH,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": DOMAIN_NAME,
            "domainPrefix": API_ID,
            "http": {
                "method": "POST",
                "path": PATH,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": USER_AGENT,
            },
            "requestId": _request_id(spec.name),
            "routeKey": ROUTE_KEY,
            "stage": "$default",
            "time": _api_gateway_time(arrival),
            # Integer arithmetic: float seconds * 1000 can land one millisecond low.
            "timeEpoch": (arrival - EPOCH) // timedelta(milliseconds=1),
        },
        # The body PagerDuty sent, untouched: UTF-8 text, or base64 of the same bytes.
        "body": base64.b64encode(raw).decode("ascii") if spec.base64_body else raw.decode("utf-8"),
        "isBase64Encoded": spec.base64_body,
    }


def build_events() -> dict[str, dict[str, Any]]:
    """Return {file name: event} for every generated event, in SPECS order."""
    return {spec.name: build_event(spec) for spec in SPECS}


def render(event: dict[str, Any]) -> str:
    """Return the exact text an event file holds, so writing and drift checks agree byte for byte."""
    # ensure_ascii=False keeps non-ASCII payload text readable in the file; it is the same string either way.
    return json.dumps(event, indent=2, ensure_ascii=False) + "\n"


def stale_files(events: dict[str, dict[str, Any]]) -> list[str]:
    """Return the generated file names whose committed copy is missing or differs from events."""
    stale = []
    for name, event in events.items():
        path = EVENTS_DIR / name
        # Compare bytes so a line-ending or encoding change counts as drift too.
        if not path.is_file() or path.read_bytes() != render(event).encode("utf-8"):
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if an event file is missing or stale"
    )
    args = parser.parse_args(argv)
    events = build_events()
    if args.check:
        stale = stale_files(events)
        for name in stale:
            print(f"stale or missing: events/{name}", file=sys.stderr)
        if stale:
            print("run: python scripts/make_events.py", file=sys.stderr)
            return 1
        print(f"{len(events)} events up to date")
        return 0
    # Only write: other files in events/ (e.g. env*.json for sam local) belong to someone else.
    for name, event in events.items():
        (EVENTS_DIR / name).write_bytes(render(event).encode("utf-8"))
        print(f"wrote events/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
