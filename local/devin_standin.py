"""A stand-in for the Devin v3 sessions API on 127.0.0.1, with scripted faults, for tests and local dev.

It speaks the calls the Lambda makes (create, list by tag, get, send a message) over real HTTP/1.1 keep-alive
connections, keeps every request, session and message in memory for assertions, and misbehaves on cue:
`standin.enqueue(Fault.status(503, retry_after="2"), Fault.create_then_reset())` (and enqueue_list, enqueue_get,
enqueue_message for the other calls), or at random:
`DevinStandIn(failure_rate=0.1, failure_seed=7)` fails about one create in ten with a transient fault drawn
from TRANSIENT_FAULTS (a seeded sequence; `standin.injected` counts what was drawn).

    python -m local.devin_standin --port 8081 --api-key cog_local --org-id org-local [--failure-rate 0.1]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import random
import re
import signal
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.http_server import ClosableHTTPServer

_COLLECTION = re.compile(r"^/v3/organizations/(?P<org>[^/]+)/sessions/?$")
_ITEM = re.compile(r"^/v3/organizations/(?P<org>[^/]+)/sessions/(?P<sid>[^/]+)/?$")
_MESSAGES = re.compile(r"^/v3/organizations/(?P<org>[^/]+)/sessions/(?P<sid>[^/]+)/messages/?$")
# The methods each route answers; any other gets 405 with Allow. (The real API also lists a session's messages
# with GET on _MESSAGES; the stand-in does not.)
_ROUTES: dict[re.Pattern[str], tuple[str, ...]] = {
    _COLLECTION: ("GET", "POST"),
    _ITEM: ("GET",),
    _MESSAGES: ("POST",),
}
_JSON = "application/json"
_PROBLEM = "application/problem+json"
_PROMPT_MISSING = {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}
_BAD_FIRST = {"detail": [{"loc": ["query", "first"], "msg": "Input should be 1..200", "type": "int_parsing"}]}
_MESSAGE_MISSING = {"detail": [{"loc": ["body", "message"], "msg": "Field required", "type": "missing"}]}

Answer = tuple[int, dict[str, Any]]


class _Problem(dict[str, Any]):
    """A ProblemDetail answer from the work of a call: sent as application/problem+json."""


def _problem(status: int, detail: str) -> bytes:
    """An RFC 9457 ProblemDetail body, the shape v3 uses for its errors."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()


def _not_found(session_id: str) -> Answer:
    return 404, _Problem(json.loads(_problem(404, f"Session {session_id} not found")))


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it; header names are lowercased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, used up by one call of the kind it was enqueued for (create, list, get, message).
    Build it with the class methods."""

    process: bool = True  # do the real work first: make the session, record the message, read the list or session
    wait_before: float = 0.0
    wait_after: float = 0.0
    drop: bool = False  # reset the connection instead of answering
    status_code: int | None = None  # None: the real answer's status
    body: bytes | None = None  # None: the real answer's JSON, or a ProblemDetail when there is none
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()
    omit: tuple[str, ...] = ()  # keys left out of the real answer's JSON

    @classmethod
    def status(
        cls,
        code: int,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        *,
        retry_after: str | int | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        create: bool = False,
    ) -> Fault:
        """Answer `code` with `body` (default: a ProblemDetail; or, with create=True, the real answer's JSON after
        doing the real work: the session made, the message recorded)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        raw = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        # A non-JSON error body is usually a load balancer's HTML page.
        guessed = "text/html; charset=utf-8" if isinstance(body, bytes) else _JSON
        return cls(
            process=create,
            status_code=code,
            body=raw,
            content_type=content_type or guessed,
            headers=tuple(extra.items()),
        )

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally after `seconds`; the session is made after the wait."""
        return cls(wait_before=seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Reset the connection without doing anything."""
        return cls(process=False, drop=True)

    @classmethod
    def create_then_reset(cls) -> Fault:
        """Make the session (record the message), then reset the connection: the caller cannot know it worked."""
        return cls(drop=True)

    @classmethod
    def create_then_hang(cls, seconds: float) -> Fault:
        """Make the session, then answer only after `seconds`, so the caller times out first."""
        return cls(wait_after=seconds)

    @classmethod
    def bad_body_created(cls) -> Fault:
        """Make the session and answer 201 with JSON cut short, as a proxy that drops the tail would."""
        return cls(status_code=201, body=b'{"session_id": "devin-')

    @classmethod
    def missing_id_created(cls) -> Fault:
        """Make the session and answer 201 with its JSON minus session_id."""
        return cls(status_code=201, omit=("session_id",))


_NORMAL = Fault()


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


class _Server(ClosableHTTPServer):
    def __init__(self, address: tuple[str, int], standin: DevinStandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections as they would with the real API
    # Headers and body leave in two writes; with Nagle the second waits out the client's delayed ACK.
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection should not hold a thread for ever
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        standin = self.server.standin
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        standin._record(RecordedRequest(self.command, url.path, query, headers, body))
        if not standin._pause(standin.latency):
            return self._drop()

        match = next(filter(None, (pattern.match(url.path) for pattern in _ROUTES)), None)
        if match is None:
            return self._send(404, _problem(404, f"No route for {url.path}"), _PROBLEM)
        pattern, allowed = match.re, _ROUTES[match.re]
        if self.command not in allowed:
            detail = f"{self.command} is not allowed here"
            return self._send(405, _problem(405, detail), _PROBLEM, (("Allow", ", ".join(allowed)),))
        if refusal := standin._refusal(self.headers.get("Authorization"), match["org"]):
            return self._send(*refusal)

        org = match["org"]
        sid = unquote(match["sid"]) if pattern is not _COLLECTION else ""  # decoded, as a server does a path parameter
        if pattern is _MESSAGES:
            return self._serve(standin._next_fault(standin._message_faults), lambda: standin._message(org, sid, body))
        if pattern is _ITEM:
            return self._serve(standin._next_fault(standin._get_faults), lambda: standin._get(org, sid))
        if self.command == "POST":
            return self._serve(standin._next_create_fault(), lambda: standin._create(org, body))
        return self._serve(standin._next_fault(standin._list_faults), lambda: standin._list(org, query))

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _serve(self, scripted: Fault | None, work: Callable[[], Answer]) -> None:
        standin = self.server.standin
        fault = scripted or _NORMAL
        if not standin._pause(fault.wait_before):
            return self._drop()
        status, payload = work() if fault.process else (fault.status_code or 500, None)
        if payload is not None and status >= 400:
            # The real API would reject this request; no script makes it accept one.
            content_type = _PROBLEM if isinstance(payload, _Problem) else _JSON
            return self._send(status, json.dumps(payload).encode(), content_type)
        if not standin._pause(fault.wait_after) or fault.drop:
            return self._drop()
        status = fault.status_code or status
        if fault.body is not None:
            self._send(status, fault.body, fault.content_type, fault.headers)
        elif payload is not None:
            kept = {key: value for key, value in payload.items() if key not in fault.omit}
            self._send(status, json.dumps(kept).encode(), _JSON, fault.headers)
        else:
            problem = _problem(status, "Fault injected by the Devin stand-in")
            self._send(status, problem, _PROBLEM, fault.headers)

    def _send(
        self, status: int, body: bytes, content_type: str = _JSON, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        # Always: a keep-alive client needs it to know where the answer ends.
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drop(self) -> None:
        # SO_LINGER 0 turns close into a TCP reset: the client sees the connection die mid-request.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


class DevinStandIn:
    """A Devin v3 sessions API on a local port that records requests, keeps sessions and misbehaves on cue."""

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
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if failure_rate and not any(kind.weight > 0 for kind in failure_mix):
            raise ValueError("failure_mix needs at least one fault with a positive weight")
        self.host, self.port = host, port
        self.api_key, self.org_id, self.latency = api_key, org_id, latency
        self.failure_rate = failure_rate
        self.failure_mix = tuple(failure_mix)
        # Its own generator: the sequence of draws depends on the seed only, not on whoever else uses `random`.
        # (Fault injection, not cryptography.)
        self._failures = random.Random(failure_seed)  # noqa: S311  # nosec B311
        self.requests: list[RecordedRequest] = []
        # Each as the API returns it. The messages a session received are kept apart, in _messages.
        self.sessions: list[dict[str, Any]] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}  # by session id: [{"message", "created_at"}]
        # How many creates got each random fault, by TransientFault.name (scripted faults are not counted).
        self.injected: Counter[str] = Counter()
        self._create_faults: deque[Fault] = deque()
        self._list_faults: deque[Fault] = deque()
        self._get_faults: deque[Fault] = deque()
        self._message_faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DevinStandIn:
        """Bind (port 0 picks a free one) and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"devin-standin:{self.port}",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port and every open connection; safe to call twice."""
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers waiting out a delay or a hang
        server.shutdown()
        server.server_close()
        server.close_connections()

    def __enter__(self) -> DevinStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def create_requests(self) -> list[RecordedRequest]:
        """The create-session calls received, in order."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and _COLLECTION.match(r.path)]

    def message_requests(self) -> list[RecordedRequest]:
        """The send-message calls received, in order (whatever became of them)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and _MESSAGES.match(r.path)]

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

    def update_session(
        self,
        session_id: str,
        *,
        status: str | None = None,
        status_detail: str | None = None,
        acus_consumed: float | None = None,
    ) -> None:
        """Change what Devin reports for the session, as its work would; None leaves a field as it is.

        Raises KeyError for a session the stand-in does not have.
        """
        with self._lock:
            session = self._live(session_id)
            changes = {"status": status, "status_detail": status_detail, "acus_consumed": acus_consumed}
            session.update({key: value for key, value in changes.items() if value is not None})
            session["updated_at"] = int(time.time())

    def open_pull_request(self, session_id: str, url: str, state: str = "open") -> None:
        """Add a pull request to the session, as Devin does when it opens one. KeyError for an unknown session."""
        with self._lock:
            session = self._live(session_id)
            session["pull_requests"].append({"pr_url": url, "pr_state": state})
            session["updated_at"] = int(time.time())

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
            self.injected.clear()
            self._create_faults.clear()
            self._list_faults.clear()
            self._get_faults.clear()
            self._message_faults.clear()
            self._messages.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

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

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds` unless stop() comes first; False means the stand-in is stopping."""
        return seconds <= 0 or not self._stopping.wait(seconds)

    def _refusal(self, authorization: str | None, org: str) -> tuple[int, bytes, str] | None:
        if self.api_key is not None:
            scheme, _, token = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() != self.api_key:
                return 401, _problem(401, "Missing or invalid API key"), _PROBLEM
        if self.org_id is not None and org != self.org_id:
            return 403, _problem(403, f"This credential has no access to organization {org}"), _PROBLEM
        return None

    def _live(self, session_id: str) -> dict[str, Any]:
        """The stored session itself, for a state helper; the caller holds the lock."""
        found = next((s for s in self.sessions if s["session_id"] == session_id), None)
        if found is None:
            raise KeyError(session_id)
        return found

    def _stored(self, org: str, session_id: str) -> dict[str, Any] | None:
        """The stored session of that org, or None; the caller holds the lock."""
        return next((s for s in self.sessions if s["org_id"] == org and s["session_id"] == session_id), None)

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
            now = int(time.time())
            self._messages.setdefault(session_id, []).append({"message": message, "created_at": now})
            if session["status"] == "suspended":  # "If the session is suspended, it will be automatically resumed."
                session["status"], session["status_detail"] = "running", "working"
            session["updated_at"] = now
            return 200, copy.deepcopy(session)

    def _create(self, org: str, body: bytes) -> Answer:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        prompt = data.get("prompt") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(prompt, str) or not prompt.strip():
            return 422, _PROMPT_MISSING
        session_id = f"devin-{uuid.uuid4().hex}"
        now = int(time.time())
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
        }
        answer = copy.deepcopy(session)  # the state helpers may change the stored one while the answer is sent
        with self._lock:
            self.sessions.append(session)
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
    stop_signals = {signal.SIGINT, signal.SIGTERM}  # SIGTERM is what `docker stop` sends
    masks = hasattr(signal, "pthread_sigmask")  # not on Windows
    if masks:
        # Blocked before start() so every thread inherits the mask and only sigwait() takes them: a second
        # Ctrl-C, or the same signal sent to the whole process group, cannot then break the clean stop.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    standin = DevinStandIn(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        org_id=args.org_id,
        latency=args.latency,
        failure_rate=args.failure_rate,
        failure_seed=args.failure_seed,
    ).start()
    sessions_url = f"{standin.base_url}/v3/organizations/{args.org_id or '<org_id>'}/sessions"
    print(f"Devin stand-in listening on {standin.base_url} (POST {sessions_url}); Ctrl-C stops", flush=True)
    try:
        if masks:
            signal.sigwait(stop_signals)
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
