"""In-process stand-ins for AWS (SSM, DynamoDB), the Devin API and PagerDuty's REST API, answering at the transport
boundary.

They replace only the last step, sending bytes: everything the handler runs in Lambda before and after it
(botocore's serialising, signing, X-Ray subsegments and parsing; requests' preparing, adapter and response
building) still runs, so the benchmark times the handler's real path. No socket is opened.

- AWS: `botocore.endpoint.Endpoint._send` answers from a small in-memory ledger and a fixed parameter set.
- Devin: `urllib3`'s `HTTPConnectionPool.urlopen` answers the sessions API with a new session.
- PagerDuty: the same `urlopen`, for api.pagerduty.com, answers an incident's log entries, alerts, notes, change
  events and past incidents with `local.pagerduty_standin.sample_record` (PagerDuty's shapes: classic pagination,
  8 log entries, 2 alerts, 2 notes, 2 change events, 1 past incident) and a note post with the created note. It is
  called only when the parameters hold a PagerDuty key (`FakeAws(pagerduty=True)`), as in a deployment.

Each stand-in counts its calls and the time it spent, so that the benchmark can report calls per request
and subtract the stand-ins' own time from the handler's.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

DEVIN_KEY = "cog_bench_key_0123456789abcdef"
DEVIN_ORG = "org-bench"
PAGERDUTY_KEY = "u+benchbenchbenchbench"
PAGERDUTY_FROM = "postmortem-bot@example.com"
PAGERDUTY_HOST = "api.pagerduty.com"
SIGNING_SECRET = "pd-test-signing-secret"  # noqa: S105 - the published test secret of scripts/make_events.py
PREFIX = "/pagerduty-postmortem"
REGION = "us-east-1"
ACCOUNT = "123456789012"

_ASSIGNMENT = re.compile(r"(#\w+) = (:\w+)")


class Clock:
    """Time spent inside the stand-ins (wall clock and this thread's CPU), to take away from the handler's."""

    def __init__(self) -> None:
        self.spent = 0.0
        self.spent_cpu = 0.0

    def start(self) -> tuple[float, float]:
        return time.perf_counter(), time.thread_time()

    def stop(self, started: tuple[float, float]) -> None:
        self.spent += time.perf_counter() - started[0]
        self.spent_cpu += time.thread_time() - started[1]


class _Raw:
    """The part of a urllib3 response that botocore's AWSResponse reads."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self._body


class FakeAws:
    """SSM GetParameters and the DynamoDB item calls the ledger makes, answered from memory."""

    # Not secrets (bridge/parameters.py's SECRET_NAMES), so stored as String; the others as SecureString.
    PLAIN = ("devin-org-id", "pagerduty-from-email")

    def __init__(self, clock: Clock, parameters: dict[str, str] | None = None, *, pagerduty: bool = False) -> None:
        """With `pagerduty`, the parameters also hold a PagerDuty key and a From address: the function then reads
        the incident's record and posts the session note (issue 8)."""
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.items: dict[str, dict[str, Any]] = {}
        self.parameters = parameters or {
            f"{PREFIX}/devin-api-key": DEVIN_KEY,
            f"{PREFIX}/devin-org-id": DEVIN_ORG,
            f"{PREFIX}/pagerduty-signing-secret": SIGNING_SECRET,
            **(
                {f"{PREFIX}/pagerduty-api-key": PAGERDUTY_KEY, f"{PREFIX}/pagerduty-from-email": PAGERDUTY_FROM}
                if pagerduty
                else {}
            ),
        }

    def install(self) -> None:
        from botocore.awsrequest import AWSResponse
        from botocore.endpoint import Endpoint

        fake = self

        def _send(endpoint: Any, request: Any) -> Any:
            started = fake.clock.start()
            try:
                target = request.headers.get("X-Amz-Target", b"")
                target = target.decode() if isinstance(target, bytes) else target
                operation = target.rsplit(".", 1)[-1]
                service = "ssm" if target.startswith("AmazonSSM") else "dynamodb"
                fake.calls[f"{service}.{operation}"] += 1
                status, body = getattr(fake, f"_{service}_{operation}")(json.loads(request.body or b"{}"))
                content_type = "application/x-amz-json-1.1" if service == "ssm" else "application/x-amz-json-1.0"
                headers = {"Content-Type": content_type, "x-amzn-RequestId": "bench"}
                return AWSResponse(request.url, status, headers, _Raw(json.dumps(body).encode()))
            finally:
                fake.clock.stop(started)

        Endpoint._send = _send

    # SSM

    def _ssm_GetParameters(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802 - AWS's name
        found = [name for name in params["Names"] if name in self.parameters]
        return 200, {
            "Parameters": [
                {
                    "Name": name,
                    "Type": "String" if name.endswith(self.PLAIN) else "SecureString",
                    "Value": self.parameters[name],
                    "Version": 1,
                    "LastModifiedDate": 1767225600.0,
                    "ARN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}",
                    "DataType": "text",
                }
                for name in found
            ],
            "InvalidParameters": [name for name in params["Names"] if name not in self.parameters],
        }

    # DynamoDB: the three writes bridge/ledger.py makes, with the conditions it uses.

    def _dynamodb_UpdateItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        key = params["Key"]["incident_id"]["S"]
        old = self.items.get(key)
        values = params.get("ExpressionAttributeValues", {})
        condition = params.get("ConditionExpression", "")
        if "attribute_not_exists" in condition:  # the claim
            status = (old or {}).get("status", {}).get("S")
            expired = (
                status == "claimed" and int(old["claim_expires_at"]["N"]) < int(values[":now"]["N"])  # type: ignore[index]
            )
            allowed = old is None or status == "unknown" or expired
        else:  # record / mark unknown: still holding the claim
            allowed = old is not None and old.get("claim_token") == values.get(":token")
        if not allowed:
            return 400, {
                "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                "message": "The conditional request failed",
                **({"Item": old} if old is not None and params.get("ReturnValuesOnConditionCheckFailure") else {}),
            }
        names = params.get("ExpressionAttributeNames", {})
        expression = params["UpdateExpression"]
        set_part, _, remove_part = expression.partition(" REMOVE ")
        item = dict(old or {"incident_id": {"S": key}})
        for name, value in _ASSIGNMENT.findall(set_part):
            item[names[name]] = values[value]
        for name in filter(None, (part.strip() for part in remove_part.split(","))):
            item.pop(names[name], None)
        self.items[key] = item
        return 200, ({"Attributes": old} if old and params.get("ReturnValues") == "ALL_OLD" else {})

    def _dynamodb_DeleteItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        self.items.pop(params["Key"]["incident_id"]["S"], None)
        return 200, {}


class FakeDevin:
    """The Devin sessions API: every create makes a session; counts what was called."""

    def __init__(self, clock: Clock, host: str = "api.devin.ai") -> None:
        self.clock = clock
        self.host = host
        self.calls: Counter[str] = Counter()

    def install(self) -> None:
        import urllib3
        from urllib3.connectionpool import HTTPConnectionPool

        fake = self
        original = HTTPConnectionPool.urlopen

        def urlopen(pool: Any, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> Any:
            if pool.host != fake.host:
                return original(pool, method, url, body=body, headers=headers, **kwargs)
            started = fake.clock.start()
            try:
                path = url.split("?", 1)[0]
                fake.calls[f"{method} {path.rsplit('/', 1)[-1]}"] += 1
                if method == "POST":
                    session_id = f"devin-{uuid.uuid4().hex}"
                    status, document = (
                        201,
                        {
                            "session_id": session_id,
                            "url": f"https://app.devin.ai/sessions/{session_id}",
                            "status": "new",
                        },
                    )
                else:
                    status, document = 200, {"items": [], "has_next_page": False}
                payload = json.dumps(document).encode()
                return urllib3.HTTPResponse(
                    body=io.BytesIO(payload),
                    headers={"Content-Type": "application/json", "Content-Length": str(len(payload))},
                    status=status,
                    reason="Created" if status == 201 else "OK",
                    preload_content=False,
                    decode_content=False,
                    request_method=method,
                    request_url=url,
                )
            finally:
                fake.clock.stop(started)

        HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]


def _response(status: int, document: Any, method: str, url: str, reason: str = "OK") -> Any:
    import urllib3

    payload = json.dumps(document).encode()
    return urllib3.HTTPResponse(
        body=io.BytesIO(payload),
        headers={"Content-Type": "application/json", "Content-Length": str(len(payload))},
        status=status,
        reason=reason,
        preload_content=False,
        decode_content=False,
        request_method=method,
        request_url=url,
    )


class FakePagerDuty:
    """PagerDuty's REST API v2 for the calls the function makes: an incident's log entries, alerts, notes, related
    change events and past incidents (the record of `local.pagerduty_standin.sample_record`, whatever the
    incident), and a note post. Counts the calls as "METHOD endpoint" (e.g. "GET log_entries", "POST notes")."""

    _PATH = re.compile(
        r"^/incidents/(?P<id>[^/]+)/(?P<endpoint>log_entries|alerts|notes|related_change_events|past_incidents)/?$"
    )

    def __init__(self, clock: Clock, host: str = PAGERDUTY_HOST) -> None:
        self.clock = clock
        self.host = host
        self.calls: Counter[str] = Counter()
        self._record: tuple[str, dict[str, Any]] | None = None  # the last incident's, read three times in a row

    def install(self) -> None:
        from urllib3.connectionpool import HTTPConnectionPool

        fake = self
        previous = HTTPConnectionPool.urlopen  # Devin's stand-in, when installed first: both chain to the network

        def urlopen(pool: Any, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> Any:
            if pool.host != fake.host:
                return previous(pool, method, url, body=body, headers=headers, **kwargs)
            started = fake.clock.start()
            try:
                return fake._answer(method, url, body, headers or {})
            finally:
                fake.clock.stop(started)

        HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]

    def _answer(self, method: str, url: str, body: Any, headers: Any) -> Any:
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(url)
        match = self._PATH.match(parts.path)
        endpoint = match["endpoint"] if match else parts.path
        self.calls[f"{method} {endpoint}"] += 1
        if match is None or not (method == "GET" or (method == "POST" and endpoint == "notes")):
            return _response(404, {"error": {"message": "Not Found", "code": 2100}}, method, url, "Not Found")
        incident_id = unquote(match["id"])
        if method == "POST":
            return self._post_note(incident_id, body, headers, url)
        record = self._sample(incident_id)
        if endpoint in ("notes", "related_change_events", "past_incidents"):  # not paginated
            key = "change_events" if endpoint == "related_change_events" else endpoint
            return _response(200, {key: record.get(key, [])}, method, url)
        query = parse_qs(parts.query)
        limit = min(int(query.get("limit", ["25"])[-1]), 100)
        offset = int(query.get("offset", ["0"])[-1])
        items = record[endpoint]
        window = items[offset : offset + limit]
        total = len(items) if query.get("total", [""])[-1] == "true" else None
        document = {
            endpoint: window,
            "limit": limit,
            "offset": offset,
            "more": offset + len(window) < len(items),
            "total": total,
        }
        return _response(200, document, method, url)

    def _sample(self, incident_id: str) -> dict[str, Any]:
        if self._record is None or self._record[0] != incident_id:
            from local.pagerduty_standin import sample_record

            self._record = (incident_id, sample_record(incident_id))
        return self._record[1]

    def _post_note(self, incident_id: str, body: Any, headers: Any, url: str) -> Any:
        sender = str(headers.get("From", "")).strip()
        content = json.loads(body or b"{}").get("note", {}).get("content")
        if "@" not in sender or not content:
            error = {"error": {"message": "Invalid Input Provided", "code": 2001}}
            return _response(400, error, "POST", url, "Bad Request")
        note = {
            "id": "P" + uuid.uuid4().hex[:6].upper(),
            "user": {
                "id": "PSTNDIN",
                "type": "user_reference",
                "summary": sender,
                "self": "https://api.pagerduty.com/users/PSTNDIN",
                "html_url": "https://acme.pagerduty.com/users/PSTNDIN",
            },
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return _response(201, {"note": note}, "POST", url, "Created")


@dataclass(frozen=True)
class StandIns:
    clock: Clock
    aws: FakeAws
    devin: FakeDevin
    pagerduty: FakePagerDuty

    def calls(self) -> dict[str, int]:
        """Every call made so far, as "service.operation" (e.g. "dynamodb.UpdateItem", "pagerduty.GET notes")."""
        return {
            **self.aws.calls,
            **{f"devin.{name}": count for name, count in self.devin.calls.items()},
            **{f"pagerduty.{name}": count for name, count in self.pagerduty.calls.items()},
        }


def install(*, pagerduty: bool = False) -> StandIns:
    """Put the stand-ins in place in this interpreter (after the handler is imported). With `pagerduty`, the
    parameters hold a PagerDuty key and From address, so that a started delivery reads the record and posts its
    note; without it the function makes no PagerDuty call (and the stand-in counts none)."""
    clock = Clock()
    aws, devin, pager = FakeAws(clock, pagerduty=pagerduty), FakeDevin(clock), FakePagerDuty(clock)
    aws.install()
    devin.install()
    pager.install()
    return StandIns(clock, aws, devin, pager)
