"""A stand-in for PagerDuty's REST API v2 (an incident's log entries, alerts and notes) on 127.0.0.1, for tests and
local dev.

It answers the calls the bridge makes to read an incident's record and to write a note back, in PagerDuty's shapes
(classic pagination, `{"error": {"message", "code"}}` errors, `Authorization: Token token=<key>`, the `From` header
on writes), keeps every request and every posted note for assertions, and misbehaves on cue, per endpoint:
`standin.enqueue("log_entries", Fault.status(429))`, `standin.enqueue("notes_post", Fault.create_then_reset())`.
Endpoint names are in ENDPOINTS. It also lists the account's users (`GET /users`), which scripts/doctor reads to
check that the from-email is a user's: the ones added with `add_user`, and with `serve_samples` the sample account's
(SAMPLE_FROM_EMAIL among them), as any incident id is an incident.

Every answer holds only what [OAS] declares for it (tests/test_pagerduty_contract.py checks each one with every
undeclared property refused): fields real answers carry beyond it ([CAP-a]: an incident's `description`, an alert's
`resolved_at` and `cef_details`) are left out, so that no client comes to rely on them.

Sources: [OAS] PagerDuty's OpenAPI schema (PagerDuty/api-schema), [DD] its developer docs (PagerDuty/developer-docs,
docs/REST-API/NN-*.md by number), [KB] support.pagerduty.com, [CAP-a/b/c] real captured answers (iyusufhpe/
cope_pagerduty, bradweinstein/pagerduty-challenge, faros-ai/airbyte-connectors). UNCONFIRMED marks a guess.

    python -m local.pagerduty_standin --port 8082 --api-key KEY [--latency S] [--read-only]

serves `sample_record(id)` for whatever incident id it is asked about, and the sample account's users.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, unquote

from local.http_server import (
    Answer,
    Fault,
    RecordedRequest,
    StandIn,
    StandInHandler,
    StandInServer,
    serve_until_stopped,
)

ENDPOINTS = frozenset(
    {
        "log_entries",
        "alerts",
        "notes",
        "notes_post",
        "incident",
        "incidents",
        "users",
        "related_change_events",
        "past_incidents",
    }
)

_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"^/incidents/?$"), "incidents"),
    ("GET", re.compile(r"^/incidents/(?P<id>[^/]+)/?$"), "incident"),
    ("GET", re.compile(r"^/incidents/(?P<id>[^/]+)/log_entries/?$"), "log_entries"),
    ("GET", re.compile(r"^/incidents/(?P<id>[^/]+)/alerts/?$"), "alerts"),
    ("GET", re.compile(r"^/incidents/(?P<id>[^/]+)/notes/?$"), "notes"),
    ("POST", re.compile(r"^/incidents/(?P<id>[^/]+)/notes/?$"), "notes_post"),
    ("GET", re.compile(r"^/incidents/(?P<id>[^/]+)/related_change_events/?$"), "related_change_events"),
    ("GET", re.compile(r"^/incidents/(?P<id>[^/]+)/past_incidents/?$"), "past_incidents"),
    ("GET", re.compile(r"^/users/?$"), "users"),
)

# Classic pagination ([DD] 09, [OAS] Pagination).
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_OFFSET_PLUS_LIMIT = 10_000

# The account's time zone: PagerDuty answers some times in it ([CAP-a]: alerts in -06:00, the incident in Z).
ACCOUNT_ZONE = timezone(timedelta(hours=-6))


def _error(message: str, code: int, errors: Sequence[str] = ()) -> dict[str, Any]:
    """PagerDuty's error body ([DD] 14); `errors` is left out when there are none, as PagerDuty does."""
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = list(errors)
    return {"error": body}


# Messages and codes from [DD] 14 unless marked.
_INVALID = "Invalid Input Provided", 2001
_NOT_FOUND = "Not Found", 2100
_AUTH_FAILED = "Authentication failed", 2006
# UNCONFIRMED: that a read-only key writing gets 403, and with this body ([KB] says only "GET calls").
_ACCESS_DENIED = "Access Denied", 2010
_RATE_LIMITED = "Rate Limit Exceeded", 2020  # [DD] 04
_INTERNAL = "An internal error has occurred. PagerDuty team has been notified.", 2000
_TOO_LONG = "The request took too long to process", 2016
# The message is the one seen on POST /incidents (pdpyras#78); the same body on the notes endpoint and the code
# (2016, from one report, quintoandar/airflow-pagerduty-plugin#1) are UNCONFIRMED. Clients branch on the status.
_FROM_MISSING = 'You must specify a user\'s email address in the "From" header to perform this action', 2016
_FROM_MALFORMED = 'Malformed "From" header', 1028  # go-pagerduty#336, on the notes endpoint
_BAD_TIME = "Invalid time values in 'since' and/or 'until' parameters", 2004

_FAULT_ERRORS: dict[int, tuple[str, int]] = {
    400: _INVALID,
    401: _AUTH_FAILED,
    403: _ACCESS_DENIED,
    404: _NOT_FOUND,
    408: _TOO_LONG,
    429: _RATE_LIMITED,
}


@dataclass
class _Incident:
    incident: dict[str, Any]
    log_entries: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    change_events: list[dict[str, Any]] = field(default_factory=list)
    past_incidents: list[dict[str, Any]] = field(default_factory=list)  # PagerDuty's best match first
    posted: list[dict[str, Any]] = field(default_factory=list)  # through POST .../notes, oldest first


class _Handler(StandInHandler):
    server: StandInServer[PagerDutyStandIn]

    def answer(self, request: RecordedRequest) -> None:
        standin = self.server.standin
        query, headers, body = request.query, request.headers, request.body
        if refusal := standin._refusal(self.command, headers.get("authorization")):
            return self._send(refusal[0], json.dumps(refusal[1]).encode())
        route = _route(self.command, request.path)
        if route is None:
            return self._send(404, json.dumps(_error(*_NOT_FOUND)).encode())
        endpoint, incident_id = route
        fault = standin._next_fault(endpoint)
        self._serve(fault, lambda: standin._answer(endpoint, incident_id, query, headers, body))

    def fault_error(self, status: int, fault: Fault) -> tuple[bytes, str]:
        # PagerDuty's error shape, sent as the fault's content type.
        message, code = _FAULT_ERRORS.get(status, _INTERNAL)
        return json.dumps(_error(message, code)).encode(), fault.content_type


def _route(method: str, path: str) -> tuple[str, str | None] | None:
    for allowed, pattern, endpoint in _ROUTES:
        if method == allowed and (match := pattern.match(path)):
            incident_id = match.groupdict().get("id")
            return endpoint, unquote(incident_id) if incident_id is not None else None
    return None


def _integer(query: Mapping[str, list[str]], name: str, default: int) -> int | None:
    values = query.get(name)
    if not values:
        return default
    value = values[-1].strip()
    try:
        return int(value) if value.isdecimal() else None
    except ValueError:  # longer than int() reads
        return None


def _paginate(key: str, items: Sequence[dict[str, Any]], query: Mapping[str, list[str]]) -> Answer:
    limit = _integer(query, "limit", DEFAULT_LIMIT)
    offset = _integer(query, "offset", 0)
    if limit is None or offset is None or limit < 1:
        return 400, _error(*_INVALID)
    # UNCONFIRMED: whether PagerDuty caps a larger limit or refuses it; capping is the kinder guess.
    limit = min(limit, MAX_LIMIT)
    if offset + limit > MAX_OFFSET_PLUS_LIMIT:
        return 400, _error(*_INVALID, [f"Offset must be less than or equal to {MAX_OFFSET_PLUS_LIMIT - limit}."])
    window = list(items[offset : offset + limit])
    wants_total = query.get("total", [""])[-1].lower() == "true"
    return 200, {
        key: window,
        "limit": limit,
        "offset": offset,
        "more": offset + len(window) < len(items),
        "total": len(items) if wants_total else None,
    }


def _instant(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _new_id() -> str:
    return "P" + uuid.uuid4().hex[:6].upper()


class PagerDutyStandIn(StandIn):
    """PagerDuty's REST API v2 on a local port: incidents you add, requests recorded, faults on cue."""

    handler = _Handler
    thread_name = "pagerduty-standin"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        latency: float = 0.0,
        *,
        read_only: bool = False,
        serve_samples: bool = False,
    ) -> None:
        super().__init__(host, port, latency)
        self.api_key = api_key  # None: any Authorization is accepted
        self.read_only = read_only  # every POST is refused with 403, as for a read-only API key
        # An unknown incident id gets sample_record(id) instead of a 404, and an email address asked about in
        # GET /users?query= is a user of the account.
        self.serve_samples = serve_samples
        self._incidents: dict[str, _Incident] = {}
        self._users: list[dict[str, Any]] = []
        self._faults: dict[str, deque[Fault]] = {endpoint: deque() for endpoint in ENDPOINTS}

    def add_incident(
        self,
        incident_id: str,
        *,
        incident: Mapping[str, Any] | None = None,
        log_entries: Sequence[Mapping[str, Any]] | None = None,
        alerts: Sequence[Mapping[str, Any]] | None = None,
        notes: Sequence[Mapping[str, Any]] | None = None,
        change_events: Sequence[Mapping[str, Any]] | None = None,
        past_incidents: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Serve an incident: raw JSON objects as PagerDuty returns them, answered in the order given.

        `incident` is what GET /incidents/{id} answers (default: a minimal incident object). `change_events` and
        `past_incidents` are what its related_change_events and past_incidents list (an account with PagerDuty's
        AIOps add-on; enqueue Fault.status(402) for one without). Replaces an incident of the same id.
        `add_incident(id, **sample_record(id))` serves the sample.
        """
        self._add(incident_id, incident, log_entries, alerts, notes, change_events, past_incidents)

    def add_user(self, email: str, name: str | None = None) -> dict[str, Any]:
        """Make `email` a user of the account (GET /users lists it); returns the user as PagerDuty shows it."""
        added = _user(email, name)
        with self._lock:
            self._users.append(added)
        return copy.deepcopy(added)

    def notes_posted(self, incident_id: str) -> list[dict[str, Any]]:
        """The notes created through POST /incidents/{id}/notes, oldest first, as they were answered."""
        with self._lock:
            found = self._incidents.get(incident_id)
            return copy.deepcopy(found.posted) if found else []

    def enqueue(self, endpoint: str, *faults: Fault) -> None:
        """Script the next calls to `endpoint` (one of ENDPOINTS), one fault each, in order.

        Only calls that pass the auth checks take a fault; an answer the real API would give as an error (an
        unknown incident, a missing From header) is given whatever the fault says, after its waits.
        """
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(ENDPOINTS)}")
        with self._lock:
            self._faults[endpoint].extend(faults)

    def reset(self) -> None:
        """Forget incidents, posted notes, users, requests and scripted faults (in place, so held references see it)."""
        with self._lock:
            self.requests.clear()
            self._incidents.clear()
            self._users.clear()
            for queue in self._faults.values():
                queue.clear()

    def _add(
        self,
        incident_id: str,
        incident: Mapping[str, Any] | None,
        log_entries: Sequence[Mapping[str, Any]] | None,
        alerts: Sequence[Mapping[str, Any]] | None,
        notes: Sequence[Mapping[str, Any]] | None,
        change_events: Sequence[Mapping[str, Any]] | None = None,
        past_incidents: Sequence[Mapping[str, Any]] | None = None,
        *,
        keep_existing: bool = False,
    ) -> _Incident:
        added = _Incident(
            incident=copy.deepcopy(dict(incident)) if incident is not None else _minimal_incident(incident_id),
            log_entries=copy.deepcopy(list(log_entries or ())),
            alerts=copy.deepcopy(list(alerts or ())),
            notes=copy.deepcopy(list(notes or ())),
            change_events=copy.deepcopy(list(change_events or ())),
            past_incidents=copy.deepcopy(list(past_incidents or ())),
        )
        with self._lock:
            if keep_existing:
                return self._incidents.setdefault(incident_id, added)
            self._incidents[incident_id] = added
        return added

    def _next_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            queue = self._faults[endpoint]
            return queue.popleft() if queue else None

    def _refusal(self, method: str, authorization: str | None) -> Answer | None:
        # Exactly "Token token=<key>" ([DD] 02); anything else, "Bearer" included, is a 401.
        if self.api_key is not None and authorization != f"Token token={self.api_key}":
            return 401, _error(*_AUTH_FAILED)
        if self.read_only and method == "POST":
            return 403, _error(*_ACCESS_DENIED)
        return None

    def _incident(self, incident_id: str | None) -> _Incident | None:
        if incident_id is None:
            return None
        with self._lock:
            found = self._incidents.get(incident_id)
        if found is None and self.serve_samples:
            found = self._add(incident_id, **sample_record(incident_id), keep_existing=True)
        return found

    def _answer(
        self,
        endpoint: str,
        incident_id: str | None,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Answer:
        if endpoint == "incidents":
            with self._lock:
                incidents = [copy.deepcopy(found.incident) for found in self._incidents.values()]
            return _paginate("incidents", incidents, query)
        if endpoint == "users":
            return _paginate("users", self._matching_users(query.get("query", [""])[-1]), query)
        found = self._incident(incident_id)
        if found is None:
            return 404, _error(*_NOT_FOUND)
        with self._lock:
            if endpoint == "incident":
                return 200, {"incident": copy.deepcopy(found.incident)}
            if endpoint == "alerts":
                return _paginate("alerts", copy.deepcopy(found.alerts), query)
            if endpoint == "notes":
                # Not paginated ([OAS]). Posted notes come last; PagerDuty's own order is UNCONFIRMED.
                return 200, {"notes": copy.deepcopy(found.notes + found.posted)}
            if endpoint == "log_entries":
                return self._log_entries(found, query)
            if endpoint == "related_change_events":
                # Whether this listing paginates is UNCONFIRMED: the whole list, in one answer.
                return 200, {"change_events": copy.deepcopy(found.change_events)}
            if endpoint == "past_incidents":
                limit = _integer(query, "limit", 5)
                if limit is None or not 1 <= limit <= 999:
                    return 400, _error(*_INVALID)
                chosen = copy.deepcopy(found.past_incidents[:limit])
                return 200, {"past_incidents": chosen, "limit": limit, "total": len(found.past_incidents)}
        return self._post_note(found, headers, body)

    def _matching_users(self, wanted: str) -> list[dict[str, Any]]:
        # `query` filters by name ([OAS] listUsers; whether PagerDuty also matches e-mail addresses is UNCONFIRMED,
        # so the stand-in does not), ignoring case and by substring (UNCONFIRMED). No query: every user.
        needle = wanted.strip().casefold()
        with self._lock:
            users = [*(_SAMPLE_USERS if self.serve_samples else ()), *self._users]
            return copy.deepcopy([user for user in users if needle in user["name"].casefold()])

    def _log_entries(self, found: _Incident, query: Mapping[str, list[str]]) -> Answer:
        entries = found.log_entries
        for name, keep in (("since", lambda at, bound: at >= bound), ("until", lambda at, bound: at < bound)):
            if name not in query:
                continue
            bound = _instant(query[name][-1])
            if bound is None:
                return 400, _error(*_BAD_TIME)
            # UNCONFIRMED: PagerDuty's `since` taken as inclusive and `until` as exclusive. An entry whose time does
            # not parse is kept.
            entries = [e for e in entries if (at := _instant(e.get("created_at"))) is None or keep(at, bound)]
        return _paginate("log_entries", copy.deepcopy(entries), query)

    def _post_note(self, found: _Incident, headers: Mapping[str, str], body: bytes) -> Answer:
        sender = headers.get("from", "").strip()
        if not sender:
            return 400, _error(*_FROM_MISSING)
        if "@" not in sender:
            return 400, _error(*_FROM_MALFORMED)
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        note = document.get("note") if isinstance(document, dict) else None
        content = note.get("content") if isinstance(note, dict) else None
        if not isinstance(content, str) or not content.strip():
            return 400, _error(*_INVALID, ["Content cannot be empty."])
        user_id = "PSTNDIN"
        created = {
            "id": _new_id(),
            "user": {
                "id": user_id,
                "type": "user_reference",
                "summary": sender,
                "self": f"https://api.pagerduty.com/users/{user_id}",
                "html_url": f"https://acme.pagerduty.com/users/{user_id}",
            },
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": datetime.now(ACCOUNT_ZONE).isoformat(timespec="seconds"),
        }
        with self._lock:
            found.posted.append(created)
        # [OAS] says 200 for this one, [DD] 05 that creates answer 201: which PagerDuty sends is UNCONFIRMED, the
        # specification is followed here, and clients accept any 2xx.
        return 200, {"note": copy.deepcopy(created)}


def _user(email: str, name: str | None = None, user_id: str | None = None) -> dict[str, Any]:
    """A user as GET /users lists one ([OAS] User, the fields a client reads); the id follows from the email unless
    given."""
    user_id = user_id or "P" + hashlib.sha256(email.casefold().encode()).hexdigest()[:6].upper()
    return {
        "id": user_id,
        "type": "user",
        "summary": name or email.split("@")[0],
        "name": name or email.split("@")[0],
        "email": email,
        "role": "user",
        "time_zone": "America/Denver",
        "self": f"https://api.pagerduty.com/users/{user_id}",
        "html_url": f"https://acme.pagerduty.com/users/{user_id}",
    }


def _minimal_incident(incident_id: str) -> dict[str, Any]:
    quoted = quote(incident_id, safe="")
    return {
        "id": incident_id,
        "type": "incident",
        "summary": f"Incident {incident_id}",
        "self": f"https://api.pagerduty.com/incidents/{quoted}",
        "html_url": f"https://acme.pagerduty.com/incidents/{quoted}",
        "status": "resolved",
    }


# The sample incidents of events/payloads/, as their webhooks tell them: the same ids, number, title, dates, service,
# team, escalation policy, priority and responders. What PagerDuty records beyond the webhooks (notifications, an
# escalation, the alerts) is made up to fit them.
P1_INCIDENT = "Q2CKYRLH85UNN4"  # incident-resolved-p1.json, incident-triggered-p1.json, incident-annotated.json
LIFECYCLE_INCIDENT = "Q0R5VW3KLT8ZNA"  # lifecycle-*.json: acknowledged, annotated, resolved, reopened, resolved again

_API, _WEB = "https://api.pagerduty.com", "https://acme.pagerduty.com"


class _Account:
    """References to the sample account's objects, as PagerDuty embeds them in an incident's record."""

    service = {
        "id": "PCK8V2Q",
        "type": "service_reference",
        "summary": "Checkout API",
        "self": f"{_API}/services/PCK8V2Q",
        "html_url": f"{_WEB}/services/PCK8V2Q",
    }
    team = {"id": "PTM3K9D", "type": "team_reference", "summary": "Payments Platform"}
    escalation_policy = {"id": "PEP4Z7T", "type": "escalation_policy_reference", "summary": "Checkout API On-Call"}
    p1 = {"id": "PQ7R2XA", "type": "priority", "summary": "P1", "name": "P1"}

    @staticmethod
    def user(user_id: str, name: str) -> dict[str, Any]:
        return {
            "id": user_id,
            "type": "user_reference",
            "summary": name,
            "self": f"{_API}/users/{user_id}",
            "html_url": f"{_WEB}/users/{user_id}",
        }


# The responders: the agents of the sample webhooks.
_DANA = _Account.user("PJ4RT2K", "Dana Whitfield")
_RAVI = _Account.user("PM7QW3N", "Ravi Iyer")
_WEBSITE, _MOBILE = {"type": "website"}, {"type": "mobile"}

# The From address local/stack.py stores for the notes: a user of the sample account.
SAMPLE_FROM_EMAIL = "postmortem-bot@example.com"
# The sample account's users, as GET /users lists them with serve_samples: the responders, and the bot.
_SAMPLE_USERS = (
    _user("dana.whitfield@example.com", "Dana Whitfield", _DANA["id"]),
    _user("ravi.iyer@example.com", "Ravi Iyer", _RAVI["id"]),
    _user(SAMPLE_FROM_EMAIL, "Postmortem Bot"),
)


@dataclass(frozen=True)
class SampleIncident:
    """What a sample incident's record is built from: the incident's own facts, its log (newest first, as PagerDuty
    answers it), its alerts and its notes. Each entry, alert and note is written without the references every one
    of them repeats (the service, the incident), which `record` adds."""

    number: int
    title: str
    incident_key: str
    created_at: str
    resolved_at: str
    resolved_by: dict[str, Any]
    incident_type: str
    log_entries: tuple[dict[str, Any], ...]
    alerts: tuple[dict[str, Any], ...]
    notes: tuple[dict[str, Any], ...]
    # What an account with PagerDuty's AIOps add-on lists for it: change events (without their service, which
    # `record` adds) and similar past incidents.
    change_events: tuple[dict[str, Any], ...] = ()
    past_incidents: tuple[dict[str, Any], ...] = ()

    def record(self, incident_id: str) -> dict[str, Any]:
        """`{"incident", "log_entries", "alerts", "notes", "change_events", "past_incidents"}` for `incident_id`,
        ready for `add_incident(id, **it)`."""
        quoted = quote(incident_id, safe="")
        summary = f"[#{self.number}] {self.title}"
        ref = {
            "id": incident_id,
            "type": "incident_reference",
            "summary": summary,
            "self": f"{_API}/incidents/{quoted}",
            "html_url": f"{_WEB}/incidents/{quoted}",
        }
        service = _Account.service
        log_entries = [
            {
                "id": entry["id"],
                "type": f"{entry['kind']}_log_entry",
                "summary": entry["summary"],
                "self": f"{_API}/log_entries/{entry['id']}",
                "html_url": None,
                "created_at": entry["at"],
                "agent": entry.get("agent", service),
                "channel": entry["channel"],
                "service": service,
                "incident": ref,
                "teams": [_Account.team],
                "contexts": [],
                **entry.get("extra", {}),
            }
            for entry in self.log_entries
        ]
        alerts = [
            {
                "type": "alert",
                "self": f"{_API}/alerts/{alert['id']}",
                "html_url": f"{_WEB}/alerts/{alert['id']}",
                "status": "resolved",
                "suppressed": False,
                "service": service,
                "incident": ref,
                **alert,
            }
            for alert in self.alerts
        ]
        trigger = next(entry for entry in self.log_entries if entry["kind"] == "trigger")
        incident = {
            "id": incident_id,
            "type": "incident",
            "summary": summary,
            "self": ref["self"],
            "html_url": ref["html_url"],
            "incident_number": self.number,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.resolved_at,
            "status": "resolved",
            "urgency": "high",
            "incident_key": self.incident_key,
            "service": service,
            "assignments": [],
            "acknowledgements": [],
            "pending_actions": [],
            "last_status_change_at": self.resolved_at,
            "last_status_change_by": self.resolved_by,
            "resolved_at": self.resolved_at,
            "first_trigger_log_entry": {"id": trigger["id"], "type": "trigger_log_entry_reference"},
            "alert_counts": {"all": len(alerts), "triggered": 0, "resolved": len(alerts)},
            "escalation_policy": _Account.escalation_policy,
            "teams": [_Account.team],
            "priority": _Account.p1,
            "incident_type": {"name": self.incident_type},
        }
        # A change event's services as the specification's example lists them: {id, type}, no name.
        services = [{"id": service["id"], "type": service["type"]}]
        change_events = [{"type": "change_event", "services": services, **change} for change in self.change_events]
        return copy.deepcopy(
            {
                "incident": incident,
                "log_entries": log_entries,
                "alerts": alerts,
                "notes": list(self.notes),
                "change_events": change_events,
                "past_incidents": list(self.past_incidents),
            }
        )


def _entry(entry_id: str, kind: str, summary: str, at: str, channel: dict[str, Any], **extra: Any) -> dict[str, Any]:
    agent = extra.pop("agent", None)
    return {"id": entry_id, "kind": kind, "summary": summary, "at": at, "channel": channel, "extra": extra} | (
        {"agent": agent} if agent is not None else {}
    )


def _notified(entry_id: str, person: dict[str, Any], how: str, at: str) -> dict[str, Any]:
    words = {"push_notification": "push notification", "phone_notification": "phone", "sms_notification": "SMS"}
    channel = {"type": "auto", "notification": {"type": how, "status": "success"}}
    return _entry(entry_id, "notify", f"Notified {person['summary']} by {words[how]}.", at, channel, user=person)


# Checkout API's P1 of 2026-03-14, the incident of the P1 samples: triggered at 09:12:44Z (created_at) by Dana
# Whitfield through the API, acknowledged at 09:15:02, the acknowledgement timed out after 30 minutes and she
# acknowledged again, her note at 09:58:02 (incident-annotated.json), resolved by her at 10:03:18
# (incident-resolved-p1.json). As PagerDuty does ([CAP-b], [CAP-c]), log entries come newest first; one pair (a
# notification and the acknowledgement after it) is out of order, and times mix `Z` with the account's `-06:00`, so
# that sorting by the text of the times, or trusting the order, gives a wrong timeline.
_P1 = SampleIncident(
    number=1042,
    title="Checkout API 5xx error rate above 5% — payments failing",
    incident_key="5b0e6f3c9a2d4e81b7c4d2f09a6e1c38",
    created_at="2026-03-14T09:12:44Z",
    resolved_at="2026-03-14T10:03:18Z",
    resolved_by=_DANA,
    incident_type="major_default",
    log_entries=(
        _entry("RNAJ8DLJGWHBXXYX1CC5G50C9O", "resolve", "Resolved by Dana Whitfield", "2026-03-14T10:03:18Z",
               _WEBSITE, agent=_DANA, note="Rolled back checkout-service to 2026.03.13-2; 5xx rate back under 0.1%."),
        _entry("R0V7B2K9M4Q8W1Z6X3J5N7C2PL", "annotate", "Note added by Dana Whitfield", "2026-03-14T03:58:02-06:00",
               _WEBSITE, agent=_DANA),
        _notified("R8H2D6F4J1K9L3M7N5P0Q2R4ST", _DANA, "push_notification", "2026-03-14T03:45:04-06:00"),
        _entry("RRPP3746OFFZZ742NSP1G67AWC", "acknowledge", "Acknowledged by Dana Whitfield", "2026-03-14T09:45:31Z",
               _MOBILE, agent=_DANA, acknowledgement_timeout=1800),
        _entry("R5T1Y7U3I9O2P6A4S8D0F1G3HJ", "unacknowledge", "Unacknowledged due to timeout", "2026-03-14T09:45:02Z",
               {"type": "timeout"}),
        _entry("R3WQ0M8ZKD4J6YV2C7N1P5X9TA", "acknowledge", "Acknowledged by Dana Whitfield", "2026-03-14T09:15:02Z",
               _MOBILE, agent=_DANA, acknowledgement_timeout=1800),
        _notified("R2K4M6P8R0T1V3X5Z7B9D1F3HK", _DANA, "push_notification", "2026-03-14T03:12:46-06:00"),
        _entry("Q02JTSNZWHSEKV", "trigger", "Triggered through the API", "2026-03-14T09:12:44Z",
               {"type": "api", "summary": "Checkout API 5xx error rate above 5%"}, agent=_DANA,
               event_details={"description": "Checkout API 5xx error rate above 5% for 5 minutes"}),
    ),
    alerts=(
        {
            "id": "Q1RPVEX3LK98BU",
            "summary": "[PROD] Checkout API 5xx error rate above 5%",
            "created_at": "2026-03-14T03:12:44-06:00",
            "alert_key": "checkout-error-rate",
            "severity": "critical",
            "body": {
                "type": "alert_body",
                "contexts": [{"type": "link", "href": "https://wiki.example/runbooks/checkout", "text": "Runbook"}],
                "details": {"error_rate": "7.2%", "deploy": "412", "region": "us-west-2"},
            },
        },
        {
            "id": "Q2LAT9KXW3M0QE",
            "summary": "[PROD] Checkout p99 latency above 2 s",
            "created_at": "2026-03-14T09:14:02Z",
            "alert_key": "checkout-latency",
            "severity": "warning",
            "body": {"type": "alert_body", "details": {"p99": "2.8 s", "threshold": "2 s", "host": "checkout-api"}},
        },
    ),
    notes=(  # newest first, as in [OAS]'s example
        {
            "id": "PNT4X7B",
            "user": _DANA,
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": "Rolled back checkout-service to 2026.03.13-2; 5xx rate back under 0.1% at 09:55 UTC.",
            "created_at": "2026-03-14T03:58:02-06:00",
            "updated_at": "2026-03-14T03:58:02-06:00",
        },
        {
            "id": "PBT3N8R",
            "user": {"id": "PBOT1RX", "type": "bot_user_reference", "summary": "Checkout auto-remediation"},
            "channel": {
                "id": "PRULE42",
                "type": "event_rule_reference",
                "summary": "Restart unhealthy checkout pods",
                "self": f"{_API}/rulesets/PRSET1/rules/PRULE42",
            },
            "content": "Restarted 2 of 6 checkout-api pods that failed their health checks.",
            "created_at": "2026-03-14T09:19:40Z",
            "updated_at": "2026-03-14T09:19:40Z",
        },
    ),
    # The deploy the note rolled back, seven minutes before the trigger, and an unrelated flag change that morning
    # (in the account's zone). The shapes follow PagerDuty's change events ([OAS] ChangeEvent, with
    # correlation_reason as the related_change_events listing adds it).
    change_events=(
        {
            "id": "PCHG7K2D",
            "summary": "Deploy checkout-service 2026.03.14-1 (connection pool settings)",
            "timestamp": "2026-03-14T09:05:31Z",
            "source": "github-actions",
            "links": [{"href": "https://github.com/acme/checkout/pull/398", "text": "PR #398"}],
            "custom_details": {"version": "2026.03.14-1", "previous": "2026.03.13-2"},
            "correlation_reason": {"reason": "most_recent"},
        },
        {
            "id": "PCHG3F9A",
            "summary": "Feature flag checkout-tax-engine-v2 at 10% of traffic",
            "timestamp": "2026-03-14T01:40:12-06:00",
            "source": "launchdarkly",
            "links": [],
            "custom_details": {"flag": "checkout-tax-engine-v2", "rollout": 10},
            "correlation_reason": {"reason": "related_service"},
        },
    ),
    # As [OAS] shapes one: incident{id, created_at, self, title} (no number, no web address) and a score that is
    # not a 0-1 figure (its example's is 46.8249).
    past_incidents=(
        {
            "incident": {
                "id": "Q1LQ8ZP2XK4MDA",
                "created_at": "2026-01-22T16:40:03Z",
                "self": f"{_API}/incidents/Q1LQ8ZP2XK4MDA",
                "title": "Checkout API 5xx error rate above 5% after a deploy",
            },
            "score": 46.8249,
        },
    ),
)  # fmt: skip

# Checkout API's P1 of 2026-03-16, the incident of the lifecycle samples: triggered at 14:02:09Z, escalated from Ravi
# Iyer to Dana Whitfield, acknowledged by her at 14:08:40 (lifecycle-acknowledged.json), her note at 14:21:33
# (lifecycle-annotated.json), resolved by her at 14:30:05 (lifecycle-resolved.json), reopened by Ravi Iyer at
# 14:52:47 (lifecycle-reopened.json) and resolved by him at 15:24:10 (lifecycle-resolved-again.json).
_LIFECYCLE = SampleIncident(
    number=1045,
    title="Checkout API card authorizations timing out",
    incident_key="9d2f4a7c1b3e4f60a8c5d7e9f1a2b3c4",
    created_at="2026-03-16T14:02:09Z",
    resolved_at="2026-03-16T15:24:10Z",
    resolved_by=_RAVI,
    incident_type="major_default",
    log_entries=(
        _entry("RL9Q4W7E2R5T8Y1U3I6O0P4A7S", "resolve", "Resolved by Ravi Iyer", "2026-03-16T15:24:10Z", _WEBSITE,
               agent=_RAVI, note="Primary acquirer's gateway pool resized; authorizations back under 300 ms."),
        _entry("RL2D5F8G1H4J7K0L3Z6X9C2V5B", "acknowledge", "Acknowledged by Ravi Iyer", "2026-03-16T14:53:30Z",
               _MOBILE, agent=_RAVI, acknowledgement_timeout=1800),
        _notified("RL8N1M4Q7W0E3R6T9Y2U5I8O1P", _RAVI, "push_notification", "2026-03-16T08:52:49-06:00"),
        # No entry for the reopening at 14:52:47: [OAS] lists no log entry type for one, and what PagerDuty logs
        # then is UNCONFIRMED.
        _entry("RL0V3B6N9M2Q5W8E1R4T7Y0U3I", "resolve", "Resolved by Dana Whitfield", "2026-03-16T08:30:05-06:00",
               _WEBSITE, agent=_DANA, note="Failed over to the secondary acquirer; authorizations succeed again."),
        _entry("RL6O9P2A5S8D1F4G7H0J3K6L9Z", "annotate", "Note added by Dana Whitfield", "2026-03-16T14:21:33Z",
               _WEBSITE, agent=_DANA),
        _notified("RL7C0V3B6N9M2Q5W8E1R4T7Y0U", _DANA, "phone_notification", "2026-03-16T14:07:11Z"),
        _entry("RL5X8C1V4B7N0M3Q6W9E2R5T8Y", "acknowledge", "Acknowledged by Dana Whitfield", "2026-03-16T14:08:40Z",
               _MOBILE, agent=_DANA, acknowledgement_timeout=1800),
        _entry("RL1U4I7O0P3A6S9D2F5G8H1J4K", "escalate", "Escalated to Dana Whitfield by escalation policy timeout",
               "2026-03-16T08:07:09-06:00", {"type": "timeout"}, assignees=[_DANA]),
        _notified("RL3L6Z9X2C5V8B1N4M7Q0W3E6R", _RAVI, "push_notification", "2026-03-16T14:02:11Z"),
        _entry("QL9T2Y5U8I1O4P", "trigger", "Triggered through the API", "2026-03-16T14:02:09Z",
               {"type": "api", "summary": "Checkout API card authorizations timing out"},
               event_details={"description": "Card authorization p99 above 10 s on checkout-api for 5 minutes"}),
    ),
    alerts=(
        {
            "id": "QL7AUTH0TMO9UT",
            "summary": "[PROD] Checkout card authorization p99 above 10 s",
            "created_at": "2026-03-16T14:02:09Z",
            "alert_key": "checkout-authorization-latency",
            "severity": "critical",
            "body": {
                "type": "alert_body",
                "details": {"p99_ms": "11840", "acquirer": "primary", "region": "us-west-2"},
            },
        },
    ),
    notes=(
        {
            "id": "PNT9K2Q",
            "user": _DANA,
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": "Authorizations time out at the primary acquirer; failed over to the secondary at 14:19 UTC.",
            "created_at": "2026-03-16T14:21:33Z",
            "updated_at": "2026-03-16T14:21:33Z",
        },
    ),
)  # fmt: skip

# Which sample incident has which record; any other incident id gets the P1 sample's, moved to that id.
SAMPLE_INCIDENTS: dict[str, SampleIncident] = {P1_INCIDENT: _P1, LIFECYCLE_INCIDENT: _LIFECYCLE}


def sample_record(incident_id: str) -> dict[str, Any]:
    """A resolved P1 incident as PagerDuty's REST API returns it: `{"incident", "log_entries", "alerts", "notes"}`,
    ready for `add_incident(incident_id, **sample_record(incident_id))`.

    A sample incident of events/payloads/ (SAMPLE_INCIDENTS) gets the record its webhooks tell: the same created_at,
    the same responders doing the same things at the times the webhooks say, the same service, team and priority.
    Any other id gets the P1 sample's record, moved to that id (the demo's other incidents are copies of the P1
    sample). Chronologically, the P1's: trigger 09:12:44Z, notify 09:12:46Z, acknowledge 09:15:02Z, unacknowledge
    09:45:02Z, notify 09:45:04Z, acknowledge 09:45:31Z, annotate 09:58:02Z, resolve 10:03:18Z (2026-03-14).
    """
    return SAMPLE_INCIDENTS.get(incident_id, _P1).record(incident_id)


def main(argv: list[str] | None = None) -> int:
    """Serve sample_record for any incident until Ctrl-C (or SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m local.pagerduty_standin", description="Stand-in PagerDuty REST API v2."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082, help="0 picks a free port")
    parser.add_argument("--api-key", help="require 'Authorization: Token token=KEY' (default: accept any)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--read-only", action="store_true", help="refuse every POST with 403, as a read-only key")
    args = parser.parse_args(argv)
    standin = PagerDutyStandIn(
        args.host, args.port, args.api_key, args.latency, read_only=args.read_only, serve_samples=True
    )
    serve_until_stopped(
        standin,
        lambda: f"PagerDuty stand-in listening on {standin.base_url} (sample_record for any incident id); Ctrl-C stops",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
