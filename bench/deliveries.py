"""The deliveries the benchmark sends, one kind per path through the handler, built from events/.

Each is a full HTTP API (payload 2.0) event as API Gateway hands it over, signed with the test secret the
stand-ins configure, and dated now (`occurred_at`), as PagerDuty sends them: the samples' own dates are months old,
and a stale delivery is ignored. A "started" delivery needs an incident the ledger has never seen, so those are made
fresh (new incident id, new signature) before the clock starts.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.make_events import TEST_SIGNING_SECRET, sign

EVENTS = Path(__file__).resolve().parents[1] / "events"
STARTS = "resolved-p1-starts-session.json"
SAMPLE_INCIDENT_ID = "Q2CKYRLH85UNN4"
_OCCURRED_AT = re.compile(r'("occurred_at":\s*")[^"]*(")')

# path name -> the answer it must get (status, body "status" or None)
EXPECTED = {
    "started": (200, "started"),
    "duplicate": (200, "duplicate"),
    "ignored": (200, "ignored"),
    "unauthorised": (401, None),
    "malformed": (400, None),
}
PATHS = tuple(EXPECTED)


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def _dated_now(event: dict[str, Any], body: str) -> dict[str, Any]:
    """`event` with `body`, its `occurred_at` set to now, and signed again."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = _OCCURRED_AT.sub(lambda match: f"{match[1]}{now}{match[2]}", body)
    event["body"] = body
    event["headers"]["content-length"] = str(len(body.encode()))
    event["headers"]["x-pagerduty-signature"] = sign(body.encode(), TEST_SIGNING_SECRET)
    return event


def for_incident(incident_id: str) -> dict[str, Any]:
    """The P1 resolve sample, for another incident, dated now and signed again."""
    event = load(STARTS)
    return _dated_now(event, event["body"].replace(SAMPLE_INCIDENT_ID, incident_id))


def low_urgency() -> dict[str, Any]:
    """The low-urgency resolve sample, dated now: ignored for its urgency, not for its age."""
    event = load("resolved-low-urgency-ignored.json")
    return _dated_now(event, event["body"])


def new_incident_id() -> str:
    return "QB" + uuid.uuid4().hex[:12].upper()


def makers(duplicate_of: str) -> dict[str, Callable[[], dict[str, Any]]]:
    """For each path, a function giving one fresh delivery (a new dict, as Lambda hands each invocation)."""
    duplicate = for_incident(duplicate_of)
    ignored = low_urgency()
    unauthorised = load("bad-signature-unauthorized.json")
    malformed = load("malformed-body-bad-request.json")
    return {
        "started": lambda: for_incident(new_incident_id()),
        "duplicate": lambda: copy.deepcopy(duplicate),
        "ignored": lambda: copy.deepcopy(ignored),
        "unauthorised": lambda: copy.deepcopy(unauthorised),
        "malformed": lambda: copy.deepcopy(malformed),
    }
