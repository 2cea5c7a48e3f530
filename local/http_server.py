"""What the local stand-ins share: a threading HTTP server that can cut every open connection when it stops, a
request handler that records requests and answers scripted faults, and serving until Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit


class ClosableHTTPServer(ThreadingHTTPServer):
    """Keep-alive connections would otherwise hold stop() until each client hangs up."""

    daemon_threads = True
    request_queue_size = 128  # a burst of concurrent requests should not wait on SYN retries

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Tracked in the accept loop, not the handler thread, so no connection accepted before
        # shutdown() can escape close_connections().
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # shutdown() rather than close(): the handler thread sees EOF and closes the socket it owns.
        with self._open_lock:
            open_now = list(self._open)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up, and connections cut by stop() or a reset fault, are part of the job.
        if not isinstance(sys.exception(), OSError):
            super().handle_error(request, client_address)


JSON = "application/json"
PROBLEM_JSON = "application/problem+json"

# What a stand-in's work answers: a status and a JSON payload.
Answer = tuple[int, dict[str, Any]]


class Problem(dict[str, Any]):
    """A payload sent as application/problem+json (an RFC 9457 ProblemDetail) rather than application/json."""


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
    """One scripted misbehaviour, used up by one call of the kind it was enqueued for (in the Devin stand-in:
    create, list, get, message; in the PagerDuty stand-in: an endpoint). Build it with the class methods."""

    process: bool = True  # do the real work first: make the session, record the message or note, read what is asked
    wait_before: float = 0.0
    wait_after: float = 0.0
    drop: bool = False  # reset the connection instead of answering
    status_code: int | None = None  # None: the real answer's status
    body: bytes | None = None  # None: the real answer's JSON, or the API's error body when there is none
    content_type: str = JSON
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
        """Answer `code` with `body` (default: the API's error body, a ProblemDetail for Devin; or, with create=True,
        the real answer's JSON after doing the real work: the session made, the message recorded)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        raw = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        # A non-JSON error body is usually a load balancer's HTML page.
        guessed = "text/html; charset=utf-8" if isinstance(body, bytes) else JSON
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


class StandInServer[S: StandIn](ClosableHTTPServer):
    """The server of one stand-in, which its handlers reach as `self.server.standin`."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], standin: S) -> None:
        super().__init__(address, handler)
        self.standin = standin


class StandInHandler(BaseHTTPRequestHandler):
    """Reads and records every request, and answers it as a fault scripts. A subclass routes it (answer) and says
    what an error that a fault scripts without a body looks like in its API (fault_error)."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections as they would with the real API
    # Headers and body leave in two writes; with Nagle the second waits out the client's delayed ACK.
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection should not hold a thread for ever
    server: StandInServer[Any]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        standin = self.server.standin
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = RecordedRequest(self.command, url.path, query, headers, body)
        standin._record(request)
        if not standin._pause(standin.latency):
            return self._drop()
        self.answer(request)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def answer(self, request: RecordedRequest) -> None:
        """Route `request` (recorded, the stand-in's latency waited out) and answer it, with _send or _serve."""
        raise NotImplementedError

    def fault_error(self, status: int, fault: Fault) -> tuple[bytes, str]:
        """The body and content type of an error answer `fault` scripts without a body, in the API's shape."""
        raise NotImplementedError

    def _serve(self, scripted: Fault | None, work: Callable[[], Answer]) -> None:
        standin = self.server.standin
        fault = scripted or _NORMAL
        if not standin._pause(fault.wait_before):
            return self._drop()
        status, payload = work() if fault.process else (fault.status_code or 500, None)
        if payload is not None and status >= 400:
            # The real API would reject this request; no script makes it accept one.
            content_type = PROBLEM_JSON if isinstance(payload, Problem) else JSON
            return self._send(status, json.dumps(payload).encode(), content_type)
        if not standin._pause(fault.wait_after) or fault.drop:
            return self._drop()
        status = fault.status_code or status
        if fault.body is not None:
            self._send(status, fault.body, fault.content_type, fault.headers)
        elif payload is not None:
            kept = {key: value for key, value in payload.items() if key not in fault.omit}
            self._send(status, json.dumps(kept).encode(), JSON, fault.headers)
        else:
            body, content_type = self.fault_error(status, fault)
            self._send(status, body, content_type, fault.headers)

    def _send(
        self, status: int, body: bytes, content_type: str = JSON, headers: tuple[tuple[str, str], ...] = ()
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


class StandIn:
    """A stand-in API on a local port, served from a daemon thread: it keeps every request received, and stop()
    cuts short the waits of its faults. A subclass names its `handler` and its thread."""

    handler: ClassVar[type[StandInHandler]]
    thread_name: ClassVar[str]

    def __init__(self, host: str, port: int, latency: float) -> None:
        self.host, self.port = host, port
        self.latency = latency  # seconds added before every answer
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: StandInServer[Self] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Bind (port 0 picks a free one) and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = StandInServer((self.host, self.port), self.handler, self)
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}:{self.port}",
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds` unless stop() comes first; False means the stand-in is stopping."""
        return seconds <= 0 or not self._stopping.wait(seconds)


def serve_until_stopped(standin: StandIn, banner: Callable[[], str]) -> None:
    """Start `standin`, print `banner()` and serve until Ctrl-C or SIGTERM (what `docker stop` sends), then stop."""
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    masks = hasattr(signal, "pthread_sigmask")  # not on Windows
    if masks:
        # Blocked before start() so every thread inherits the mask and only sigwait() takes them: a second
        # Ctrl-C, or the same signal sent to the whole process group, cannot then break the clean stop.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    standin.start()
    print(banner(), flush=True)
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
