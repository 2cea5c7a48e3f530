"""A stand-in for the Devin v3 sessions API on 127.0.0.1, with scripted faults, for tests and local dev.

It speaks the calls the Lambda makes (create, list by tag, get, send a message), and the credential check
scripts/doctor makes (GET /v3/self), over real HTTP/1.1 keep-alive connections, keeps every request, session
and message in memory for assertions, and misbehaves on cue:
`standin.enqueue(Fault.status(503, retry_after="2"), Fault.create_then_reset())` (and enqueue_list, enqueue_get,
enqueue_message for the other calls), or at random:
`DevinStandIn(failure_rate=0.1, failure_seed=7)` fails about one create in ten with a transient fault drawn
from TRANSIENT_FAULTS (a seeded sequence; `standin.injected` counts what was drawn).

    python -m local.devin_standin --port 8081 --api-key cog_local --org-id org-local [--failure-rate 0.1]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

# Fault and RecordedRequest are shared with the PagerDuty stand-in, and imported from here too.
from local.http_server import (
    PROBLEM_JSON,
    Answer,
    Fault,
    Problem,
    RecordedRequest,
    StandIn,
    StandInHandler,
    StandInServer,
    serve_until_stopped,
)

_COLLECTION = re.compile(r"^/v3/organizations/(?P<org>[^/]+)/sessions/?$")
_ITEM = re.compile(r"^/v3/organizations/(?P<org>[^/]+)/sessions/(?P<sid>[^/]+)/?$")
_MESSAGES = re.compile(r"^/v3/organizations/(?P<org>[^/]+)/sessions/(?P<sid>[^/]+)/messages/?$")
# Who the credential is (scripts/doctor's first call); outside any organization, so it is routed apart.
_SELF = re.compile(r"^/v3/self/?$")
# The stand-in's own route, not Devin's: what each session was asked (python -m local.prompt reads it).
_PROMPTS = re.compile(r"^/_standin/prompts/?$")
# The methods each route answers; any other gets 405 with Allow.
_ROUTES: dict[re.Pattern[str], tuple[str, ...]] = {
    _COLLECTION: ("GET", "POST"),
    _ITEM: ("GET",),
    _MESSAGES: ("GET", "POST"),
}
_PROMPT_MISSING = {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}
_BAD_FIRST = {"detail": [{"loc": ["query", "first"], "msg": "Input should be 1..200", "type": "int_parsing"}]}
_MESSAGE_MISSING = {"detail": [{"loc": ["body", "message"], "msg": "Field required", "type": "missing"}]}
_SCHEMA_INVALID = {
    "detail": [
        {
            "loc": ["body", "structured_output_schema"],
            "msg": "Must be a JSON Schema object of at most 64 KB",
            "type": "value_error",
        }
    ]
}
# Devin's documented limit on structured_output_schema (devin-api.md §2).
SCHEMA_LIMIT = 64 * 1024
# update_session's "leave structured_output as it is": None is a value there (null, as before any result).
_UNCHANGED: Any = object()


def _problem(status: int, detail: str) -> bytes:
    """An RFC 9457 ProblemDetail body, the shape v3 uses for its errors."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()


def _not_found(session_id: str) -> Answer:
    return 404, Problem(json.loads(_problem(404, f"Session {session_id} not found")))


@dataclass(frozen=True)
class TransientFault:
    """One kind of transient failure a random create may get, with its share of the draws."""

    name: str
    weight: float
    fault: Fault


# What the real API (or what sits in front of it) does now and then that a later try can fix. Waits are a few
# seconds at most, so a storm with these stays short. The last three create the session and lose the answer:
# the caller cannot know, and must find the session by tag before creating another.
TRANSIENT_FAULTS: tuple[TransientFault, ...] = (
    TransientFault("429 with Retry-After", 2.0, Fault.status(429, retry_after="1")),
    TransientFault("429 without Retry-After", 2.0, Fault.status(429)),
    TransientFault("500", 1.0, Fault.status(500)),
    TransientFault("502 from a proxy", 1.0, Fault.status(502, b"<html><body>502 Bad Gateway</body></html>")),
    TransientFault("503 with Retry-After", 1.0, Fault.status(503, retry_after="1")),
    TransientFault("reset before creating", 1.0, Fault.reset()),
    TransientFault("created, then reset (answer lost)", 1.5, Fault.create_then_reset()),
    TransientFault("created, 201 cut short (answer lost)", 0.5, Fault.bad_body_created()),
    # Longer than the function's 10 s read timeout, so it gives up; the caller's own 5 s timeout expires first.
    TransientFault("created, answer after 11 s (answer lost)", 0.5, Fault.create_then_hang(11.0)),
)


@dataclass(frozen=True)
class Step:
    """One transition of a session, `after` seconds (on the stand-in's clock) from when its plan was made. None
    leaves a field as it is; `result` True fills in the schema the session was given (sample_result), False clears
    it; `pull_request` opens one."""

    after: float
    status: str
    status_detail: str | None = None
    result: bool | None = None
    pull_request: str | None = None


@dataclass(frozen=True)
class Lifecycle:
    """How every new session runs by itself, as Devin runs one (devin-api.md §2-3): it works for `work_seconds`,
    finishes (`running`/`finished`, filling in its schema when `result`, opening a pull request when
    `pull_request`), and after `idle_seconds` without news is suspended for inactivity. A message resumes it: it
    works again and finishes again (the same result, unless a test changes it). None: the step never comes."""

    work_seconds: float = 1.0
    idle_seconds: float | None = 5.0
    result: bool = True
    pull_request: bool = True

    def steps(self, session_id: str, resumed: bool = False) -> list[Step]:
        pull_request = f"https://github.com/acme/postmortems/pull/{int(session_id[-4:], 16) % 9000 + 1000}"
        plan = [
            Step(0.0, "running", "working"),
            Step(
                self.work_seconds,
                "running",
                "finished",
                result=self.result if not resumed else None,
                pull_request=pull_request if self.pull_request and not resumed else None,
            ),
        ]
        if self.idle_seconds is not None:
            plan.append(Step(self.work_seconds + self.idle_seconds, "suspended", "inactivity"))
        return plan


class _Handler(StandInHandler):
    server: StandInServer[DevinStandIn]

    def answer(self, request: RecordedRequest) -> None:
        standin = self.server.standin
        path, query, body = request.path, request.query, request.body
        if _SELF.match(path):
            return self._answer_self(standin)
        if _PROMPTS.match(path) and self.command == "GET":
            return self._send(200, json.dumps({"sessions": standin.asked()}).encode())
        match = next(filter(None, (pattern.match(path) for pattern in _ROUTES)), None)
        if match is None:
            return self._send(404, _problem(404, f"No route for {path}"), PROBLEM_JSON)
        pattern, allowed = match.re, _ROUTES[match.re]
        if self.command not in allowed:
            detail = f"{self.command} is not allowed here"
            return self._send(405, _problem(405, detail), PROBLEM_JSON, (("Allow", ", ".join(allowed)),))
        if refusal := standin._refusal(self.headers.get("Authorization"), match["org"]):
            return self._send(*refusal)

        org = match["org"]
        sid = unquote(match["sid"]) if pattern is not _COLLECTION else ""  # decoded, as a server does a path parameter
        if pattern is _MESSAGES and self.command == "GET":
            return self._serve(
                standin._next_fault(standin._message_list_faults), lambda: standin._message_list(org, sid, query)
            )
        if pattern is _MESSAGES:
            return self._serve(standin._next_fault(standin._message_faults), lambda: standin._message(org, sid, body))
        if pattern is _ITEM:
            return self._serve(standin._next_fault(standin._get_faults), lambda: standin._get(org, sid))
        if self.command == "POST":
            return self._serve(standin._next_create_fault(), lambda: standin._create(org, body))
        return self._serve(standin._next_fault(standin._list_faults), lambda: standin._list(org, query))

    def fault_error(self, status: int, fault: Fault) -> tuple[bytes, str]:
        return _problem(status, "Fault injected by the Devin stand-in"), PROBLEM_JSON

    def _answer_self(self, standin: DevinStandIn) -> None:
        if self.command != "GET":
            detail = f"{self.command} is not allowed here"
            return self._send(405, _problem(405, detail), PROBLEM_JSON, (("Allow", "GET"),))
        if refusal := standin._key_refusal(self.headers.get("Authorization")):
            return self._send(*refusal)
        return self._send(200, json.dumps(standin.whoami()).encode())


class DevinStandIn(StandIn):
    """A Devin v3 sessions API on a local port that records requests, keeps sessions and misbehaves on cue."""

    handler = _Handler
    thread_name = "devin-standin"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        org_id: str | None = None,
        latency: float = 0.0,
        failure_rate: float = 0.0,
        failure_seed: int | None = None,
        failure_mix: Sequence[TransientFault] = TRANSIENT_FAULTS,
        lifecycle: Lifecycle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if failure_rate and not any(kind.weight > 0 for kind in failure_mix):
            raise ValueError("failure_mix needs at least one fault with a positive weight")
        super().__init__(host, port, latency)
        self.api_key, self.org_id = api_key, org_id
        # What GET /v3/self says of the credential. org_id defaults to the organization it serves; set it to None
        # to answer as the docs' example does (an org-scoped service user may get null there).
        self.service_user_id = "service-user-standin"
        self.service_user_name = "postmortem-bot"
        self.self_org_id: str | None = org_id
        self.failure_rate = failure_rate
        self.failure_mix = tuple(failure_mix)
        # Its own generator: the sequence of draws depends on the seed only, not on whoever else uses `random`.
        # (Fault injection, not cryptography.)
        self._failures = random.Random(failure_seed)  # noqa: S311  # nosec B311
        # Each as the API returns it. The messages a session received are kept apart, in _messages.
        self.sessions: list[dict[str, Any]] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}  # by session id: [{"message", "created_at"}]
        # The structured_output_schema and the prompt each session was created with, by session id (Devin echoes
        # neither).
        self._schemas: dict[str, Any] = {}
        self._prompts: dict[str, str] = {}
        # How many creates got each random fault, by TransientFault.name (scripted faults are not counted).
        self.injected: Counter[str] = Counter()
        self._create_faults: deque[Fault] = deque()
        self._list_faults: deque[Fault] = deque()
        self._get_faults: deque[Fault] = deque()
        self._message_faults: deque[Fault] = deque()
        self._message_list_faults: deque[Fault] = deque()
        # How new sessions run by themselves (None: they stay as created until a test changes them), on `clock`.
        self.lifecycle = lifecycle
        self.clock = clock
        # Each session's transitions still to come: (when, step), in order; applied when the session is next read.
        self._plans: dict[str, deque[tuple[float, Step]]] = {}

    def create_requests(self) -> list[RecordedRequest]:
        """The create-session calls received, in order."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and _COLLECTION.match(r.path)]

    def message_requests(self) -> list[RecordedRequest]:
        """The send-message calls received, in order (whatever became of them)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and _MESSAGES.match(r.path)]

    def asked(self) -> list[dict[str, Any]]:
        """What each session was asked, oldest first: its id, tags, title, prompt and the messages it received."""
        with self._lock:
            return [
                {
                    "session_id": session["session_id"],
                    "tags": list(session.get("tags") or ()),
                    "title": session.get("title"),
                    "prompt": self._prompts.get(session["session_id"], ""),
                    "messages": [m["message"] for m in self._messages.get(session["session_id"], [])],
                }
                for session in self.sessions
            ]

    def messages(self, session_id: str) -> list[str]:
        """The messages the session received and recorded, in order ([] if none, or no such session).

        They outlive forget_session: what the stand-in received stays on record, like `requests`.
        """
        with self._lock:
            return [m["message"] for m in self._messages.get(session_id, [])]

    def enqueue(self, *faults: Fault) -> None:
        """Script the next create calls, one fault each, in order; after them creates behave normally.

        Only calls that pass the auth checks take a fault, and a create the real API would reject (422)
        is rejected whatever its fault says.
        """
        with self._lock:
            self._create_faults.extend(faults)

    def enqueue_list(self, *faults: Fault) -> None:
        """Script the next list calls, one fault each, in order."""
        with self._lock:
            self._list_faults.extend(faults)

    def enqueue_get(self, *faults: Fault) -> None:
        """Script the next get-session calls, one fault each, in order. An unknown session is a 404 whatever its
        fault says (unless the fault answers without doing the work, as Fault.status does)."""
        with self._lock:
            self._get_faults.extend(faults)

    def enqueue_message(self, *faults: Fault) -> None:
        """Script the next send-message calls, one fault each, in order. Fault.create_then_reset() records the
        message, then resets the connection; Fault.reset() and Fault.status() record nothing."""
        with self._lock:
            self._message_faults.extend(faults)

    def enqueue_message_list(self, *faults: Fault) -> None:
        """Script the next list-messages calls (GET …/messages), one fault each, in order."""
        with self._lock:
            self._message_list_faults.extend(faults)

    def update_session(
        self,
        session_id: str,
        *,
        status: str | None = None,
        status_detail: str | None = None,
        acus_consumed: float | None = None,
        structured_output: Any = _UNCHANGED,
    ) -> None:
        """Change what Devin reports for the session, as its work would; None leaves a field as it is (but
        `structured_output=None` sets it back to null, as before the session gave one).

        Raises KeyError for a session the stand-in does not have.
        """
        with self._lock:
            session = self._live(session_id)
            changes = {"status": status, "status_detail": status_detail, "acus_consumed": acus_consumed}
            session.update({key: value for key, value in changes.items() if value is not None})
            if structured_output is not _UNCHANGED:
                session["structured_output"] = copy.deepcopy(structured_output)
            session["updated_at"] = int(self.clock())

    def fill_result(self, session_id: str, *, pull_request: str | None = None, status: str = "exit") -> dict[str, Any]:
        """Do what a session does when its postmortem is done: fill in the schema it was given with a result built
        from its prompt's data block (citing the ids there and copying the computed figures), open `pull_request`
        if given, and end with `status`. Returns the result. KeyError for an unknown session."""
        with self._lock:
            self._live(session_id)
            prompt = self._prompts.get(session_id, "")
        result = sample_result(_data_block(prompt), pull_request)
        if pull_request is not None:
            self.open_pull_request(session_id, pull_request)
        self.update_session(session_id, status=status, structured_output=result)
        return result

    def plan(self, session_id: str, steps: Sequence[Step]) -> None:
        """Run the session through `steps`, each `after` seconds from now on the stand-in's clock, in place of what
        it had planned. KeyError for an unknown session."""
        with self._lock:
            self._live(session_id)
            now = self.clock()
            self._plans[session_id] = deque((now + step.after, step) for step in sorted(steps, key=lambda s: s.after))

    def settle(self, session_id: str | None = None) -> None:
        """Apply every transition that is due now (to one session, or all): what any read of it would do first."""
        with self._lock:
            for session in [self._live(session_id)] if session_id else list(self.sessions):
                self._advance(session)

    def schema(self, session_id: str) -> Any:
        """The structured_output_schema the session was created with (None if none). KeyError for an unknown one."""
        with self._lock:
            self._live(session_id)
            return copy.deepcopy(self._schemas.get(session_id))

    def open_pull_request(self, session_id: str, url: str, state: str = "open") -> None:
        """Add a pull request to the session, as Devin does when it opens one. KeyError for an unknown session."""
        with self._lock:
            session = self._live(session_id)
            session["pull_requests"].append({"pr_url": url, "pr_state": state})
            session["updated_at"] = int(self.clock())

    def forget_session(self, session_id: str) -> None:
        """Drop the session, as if Devin had deleted it: every later call for it (get, message) answers 404, and
        lists leave it out. KeyError for an unknown session."""
        with self._lock:
            self.sessions.remove(self._live(session_id))

    def reset(self) -> None:
        """Forget requests, sessions, messages and scripted faults (in place, so held references see it)."""
        with self._lock:
            self.requests.clear()
            self.sessions.clear()
            self._schemas.clear()
            self._prompts.clear()
            self.injected.clear()
            self._create_faults.clear()
            self._list_faults.clear()
            self._get_faults.clear()
            self._message_faults.clear()
            self._message_list_faults.clear()
            self._messages.clear()
            self._plans.clear()

    def _next_fault(self, faults: deque[Fault]) -> Fault | None:
        with self._lock:
            return faults.popleft() if faults else None

    def _next_create_fault(self) -> Fault | None:
        """A scripted fault first; else, with probability failure_rate, a random transient one."""
        with self._lock:
            if self._create_faults:
                return self._create_faults.popleft()
            # One draw per create, always, so the sequence of faults depends only on the seed and the count.
            if not self.failure_rate or self._failures.random() >= self.failure_rate:
                return None
            weights = [kind.weight for kind in self.failure_mix]
            kind = self._failures.choices(self.failure_mix, weights=weights)[0]
            self.injected[kind.name] += 1
            return kind.fault

    def whoami(self) -> dict[str, Any]:
        """What GET /v3/self answers: the documented shape, `{"principal_type", "service_user_id",
        "service_user_name", "org_id"}`."""
        return {
            "principal_type": "service_user",
            "service_user_id": self.service_user_id,
            "service_user_name": self.service_user_name,
            "org_id": self.self_org_id,
        }

    def _key_refusal(self, authorization: str | None) -> tuple[int, bytes, str] | None:
        if self.api_key is not None:
            scheme, _, token = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() != self.api_key:
                return 401, _problem(401, "Missing or invalid API key"), PROBLEM_JSON
        return None

    def _refusal(self, authorization: str | None, org: str) -> tuple[int, bytes, str] | None:
        if refusal := self._key_refusal(authorization):
            return refusal
        if self.org_id is not None and org != self.org_id:
            return 403, _problem(403, f"This credential has no access to organization {org}"), PROBLEM_JSON
        return None

    def _live(self, session_id: str) -> dict[str, Any]:
        """The stored session itself, for a state helper; the caller holds the lock."""
        found = next((s for s in self.sessions if s["session_id"] == session_id), None)
        if found is None:
            raise KeyError(session_id)
        return found

    def _stored(self, org: str, session_id: str) -> dict[str, Any] | None:
        """The stored session of that org (its due transitions applied), or None; the caller holds the lock."""
        found = next((s for s in self.sessions if s["org_id"] == org and s["session_id"] == session_id), None)
        if found is not None:
            self._advance(found)
        return found

    def _advance(self, session: dict[str, Any]) -> None:
        """Apply the session's transitions that are due; the caller holds the lock."""
        plan = self._plans.get(session["session_id"])
        now = self.clock()
        while plan and plan[0][0] <= now:
            at, step = plan.popleft()
            session["status"] = step.status
            session["status_detail"] = step.status_detail
            if step.result is True:
                data = _data_block(self._prompts.get(session["session_id"], ""))
                session["structured_output"] = sample_result(data, step.pull_request)
            elif step.result is False:
                session["structured_output"] = None
            if step.pull_request is not None:
                session["pull_requests"].append({"pr_url": step.pull_request, "pr_state": "open"})
            session["updated_at"] = int(at)

    def _find(self, org: str, session_id: str) -> dict[str, Any] | None:
        """The stored session as it is now (a copy: the state helpers may change it while it is being sent)."""
        with self._lock:
            return copy.deepcopy(self._stored(org, session_id))

    def _get(self, org: str, session_id: str) -> Answer:
        session = self._find(org, session_id)
        return (200, session) if session is not None else _not_found(session_id)

    def _message(self, org: str, session_id: str, body: bytes) -> Answer:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        message = data.get("message") if isinstance(data, dict) else None
        with self._lock:
            session = self._stored(org, session_id)
            if session is None:
                return _not_found(session_id)
            if not isinstance(message, str) or not message.strip():
                return 422, _MESSAGE_MISSING
            now = int(self.clock())
            self._messages.setdefault(session_id, []).append(
                {"message": message, "created_at": now, "event_id": f"event-{uuid.uuid4().hex}", "source": "api"}
            )
            if session["status"] == "suspended":  # "If the session is suspended, it will be automatically resumed."
                session["status"], session["status_detail"] = "running", "working"
            if self.lifecycle is not None and session["status"] in ("running", "suspended"):
                # It works on the message, then finishes and goes idle again.
                self._plans[session_id] = deque(
                    (now + step.after, step) for step in self.lifecycle.steps(session_id, resumed=True)
                )
            session["updated_at"] = now
            return 200, copy.deepcopy(session)

    def _message_list(self, org: str, session_id: str, query: dict[str, list[str]]) -> Answer:
        """GET …/messages: `{items: [{created_at, event_id, message, source}], end_cursor, has_next_page, total}`,
        oldest first, `first` (1-200) at a time after the cursor `after` ([DOC]; what `source` holds for a message
        sent through the API is UNCONFIRMED: "api" here)."""
        try:
            first = int(query.get("first", ["100"])[-1])
        except ValueError:
            first = 0
        if not 1 <= first <= 200:
            return 422, _BAD_FIRST
        after = query.get("after", [""])[-1]
        with self._lock:
            if self._stored(org, session_id) is None:
                return _not_found(session_id)
            received = self._messages.get(session_id, [])
            start = next((i + 1 for i, m in enumerate(received) if m["event_id"] == after), 0) if after else 0
            page = copy.deepcopy(received[start : start + first])
        more = start + first < len(received)
        end_cursor = page[-1]["event_id"] if more and page else None
        return 200, {"items": page, "end_cursor": end_cursor, "has_next_page": more, "total": len(received)}

    def _create(self, org: str, body: bytes) -> Answer:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        prompt = data.get("prompt") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(prompt, str) or not prompt.strip():
            return 422, _PROMPT_MISSING
        schema = data.get("structured_output_schema")
        if schema is not None and (
            not isinstance(schema, dict) or len(json.dumps(schema, separators=(",", ":")).encode()) > SCHEMA_LIMIT
        ):
            # Documented: a Draft 7 schema of at most 64 KB. The exact refusal is UNCONFIRMED; a 422 as for a field.
            return 422, _SCHEMA_INVALID
        session_id = f"devin-{uuid.uuid4().hex}"
        now = int(self.clock())
        session = {
            "session_id": session_id,
            "url": f"https://app.devin.ai/sessions/{session_id}",
            "status": "new",
            "title": data.get("title"),
            "tags": data.get("tags") or [],
            "playbook_id": data.get("playbook_id"),
            "org_id": org,
            "created_at": now,
            "updated_at": now,
            "acus_consumed": 0,
            "pull_requests": [],
            "is_archived": False,
            "status_detail": None,
            # Null until the session fills in its schema (and always null without one).
            "structured_output": None,
        }
        answer = copy.deepcopy(session)  # the state helpers may change the stored one while the answer is sent
        with self._lock:
            self.sessions.append(session)
            self._prompts[session_id] = prompt
            if schema is not None:
                self._schemas[session_id] = copy.deepcopy(schema)
            if self.lifecycle is not None:
                self._plans[session_id] = deque((now + step.after, step) for step in self.lifecycle.steps(session_id))
        return 200, answer

    def _list(self, org: str, query: dict[str, list[str]]) -> Answer:
        wanted = query.get("tags", [])
        try:
            first = int(query.get("first", ["100"])[-1])
        except ValueError:
            first = 0
        if not 1 <= first <= 200:
            return 422, _BAD_FIRST
        after = query.get("after", [""])[-1]
        with self._lock:
            for session in self.sessions:
                self._advance(session)
            matched = [s for s in self.sessions if s["org_id"] == org and all(t in (s["tags"] or []) for t in wanted)]
            start = next((i + 1 for i, s in enumerate(matched) if s["session_id"] == after), 0) if after else 0
            page = copy.deepcopy(matched[start : start + first])
        more = start + first < len(matched)
        end_cursor = page[-1]["session_id"] if more and page else None
        return 200, {"items": page, "end_cursor": end_cursor, "has_next_page": more, "total": len(matched)}


def main(argv: list[str] | None = None) -> int:
    """Serve the stand-in until Ctrl-C (or SIGTERM, as `docker stop` sends)."""
    parser = argparse.ArgumentParser(prog="python -m local.devin_standin", description="Stand-in Devin v3 API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--api-key", help="require this Bearer token (default: accept any)")
    parser.add_argument("--org-id", help="answer 403 for any other organization (default: accept any)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument(
        "--failure-rate", type=float, default=0.0, help="share of creates that get a random transient fault (0-1)"
    )
    parser.add_argument("--failure-seed", type=int, help="seed for the random faults (default: unseeded)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.failure_rate <= 1.0:
        parser.error("--failure-rate must be between 0 and 1")
    standin = DevinStandIn(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        org_id=args.org_id,
        latency=args.latency,
        failure_rate=args.failure_rate,
        failure_seed=args.failure_seed,
    )

    def banner() -> str:
        sessions_url = f"{standin.base_url}/v3/organizations/{args.org_id or '<org_id>'}/sessions"
        return f"Devin stand-in listening on {standin.base_url} (POST {sessions_url}); Ctrl-C stops"

    serve_until_stopped(standin, banner)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


_DATA_BLOCK = re.compile(r"<pagerduty-incident>\n(.*?)\n</pagerduty-incident>", re.S)


def _data_block(prompt: str) -> dict[str, Any]:
    found = _DATA_BLOCK.search(prompt)
    try:
        data = json.loads(found.group(1)) if found else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def sample_result(data: dict[str, Any], pull_request: str | None = None) -> dict[str, Any]:
    """A result as a session would fill in the bridge's schema, built from a prompt's data block: the timeline and
    evidence cite the block's ids, the response times are its computed figures, each change gets a verdict. Made up
    to be plausible, not true: the stand-in investigates nothing."""
    timeline = [entry for entry in data.get("timeline") or [] if isinstance(entry, dict)]
    alerts = [alert for alert in data.get("alerts") or [] if isinstance(alert, dict)]
    changes = [change for change in data.get("changes") or [] if isinstance(change, dict)]
    computed = data.get("computed") if isinstance(data.get("computed"), dict) else {}
    trigger = next((entry for entry in timeline if entry.get("kind") == "trigger"), timeline[0] if timeline else {})
    resolve = next((entry for entry in reversed(timeline) if entry.get("kind") == "resolve"), {})
    suspect = changes[-1] if changes else None
    service = data.get("service") or "the service"
    evidence = [item["id"] for item in (trigger, *alerts[:1]) if item.get("id")]
    result: dict[str, Any] = {
        "summary": f"{data.get('title') or 'The incident'}: {service} failed requests until it was rolled back.",
        "root_cause": {
            "statement": (
                f"{suspect.get('summary')} changed {service} just before the first alert."
                if suspect
                else f"A change to {service} just before the first alert (not yet identified)."
            ),
            "confidence": "likely" if suspect else "hypothesis",
            "evidence": [*evidence, *([suspect["id"]] if suspect and suspect.get("id") else [])],
        },
        "action_items": [
            {
                "title": f"Gate deploys of {service} on an error-rate canary",
                "type": "prevent",
                "priority": "P1",
                "owner": f"{service} on-call",
                "verification": "A canary with a 5xx rate above 1% stops the rollout in staging.",
            },
            {
                "title": "Page on the error rate two minutes sooner",
                "type": "detect",
                "priority": "P2",
                "owner": "observability team",
                "verification": "The alert's evaluation window is 3 minutes in the monitoring repository.",
            },
        ],
        "timeline": [
            {"at": entry["at"], "what": str(entry.get("what") or entry.get("kind"))[:500], "evidence": [entry["id"]]}
            for entry in (trigger, resolve)
            if entry.get("id") and isinstance(entry.get("at"), str) and entry["at"].endswith("Z")
        ],
        "changes": [
            {"id": change["id"], "verdict": "implicated" if change is suspect else "ruled_out", "reason": "timing"}
            for change in changes
            if change.get("id")
        ],
        "impact": {
            "what": f"Requests to {service} failed with 5xx",
            "who": f"Customers of {service}",
            "quantity": {
                "value": 1840,
                "unit": "failed requests",
                "estimate": True,
                "basis": "the error rate times the request rate over the incident",
            },
        },
        "resolution": {
            "what": str(resolve.get("what") or "The change was rolled back")[:1000],
            **({"at": resolve["at"]} if str(resolve.get("at") or "").endswith("Z") else {}),
            "evidence": [resolve["id"]] if resolve.get("id") else [],
        },
        "detection": {
            "how": "The error rate alert paged the on-call engineer",
            **({"detected_at": trigger["at"]} if str(trigger.get("at") or "").endswith("Z") else {}),
            "gap": "An alert on the change's own health check would have paged before customers saw errors.",
            "evidence": [trigger["id"]] if trigger.get("id") else [],
        },
        "contributing_factors": [
            {
                "statement": "No canary compared the error rate before and after the change.",
                "confidence": "likely",
                "evidence": evidence[:1],
            }
        ],
        "evidence_gaps": [{"what": "Traces", "why": "no tracing integration is connected to the stand-in"}],
        "went_well": ["The rollback took minutes."],
        "went_poorly": ["Nothing stopped the change before it reached production."],
        "got_lucky": ["The incident started outside the busiest hours."],
        "recurrence": {"checked": True, "related": [], "notes": "No earlier postmortem describes the same failure."},
    }
    response = {name: computed[name] for name in ("seconds_to_first_ack", "seconds_to_resolve") if name in computed}
    if response:
        result["response"] = response
    if pull_request is not None:
        result["pull_request_url"] = pull_request
    return result
