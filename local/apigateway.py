"""The local stack's API Gateway: an HTTP API front end that turns each request into the payload 2.0 event.

It does what the deployed HTTP API does around the function, as far as a webhook can tell: it matches the
route (anything else is `404 {"message":"Not Found"}` without invoking the function), builds the event
(raw body, base64 for non-text content types, lowercased headers with repeated ones joined by ",", cookies,
query parameters, request context), invokes the function, and turns its answer back into HTTP (decoding a
base64 body). A function that raises, crashes or times out gives `500 {"message":"Internal Server Error"}`,
and no answer within the integration's 30 s gives `503 {"message":"Service Unavailable"}`, as API Gateway does.

Routes under /_local/ are the local stack's own (POST /_local/follow-up runs the scheduled follow-up now): they are
answered without building an event, and the deployed HTTP API has no such route.

Not emulated: the HTTP API's route throttling (template.yaml's burst and rate limits), custom domains, TLS.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.http_server import ClosableHTTPServer
from local.runtime import Invocation

# HTTP APIs accept request bodies up to 10 MB.
MAX_BODY_BYTES = 10 * 1024 * 1024
# API Gateway stops waiting for an HTTP API integration after 30 s.
INTEGRATION_TIMEOUT_SECONDS = 30.0
# The documentation says only that a binary body is base64-encoded; measured against AWS, a body arrives as text
# only for text/* and these types. Everything else (a missing Content-Type, form posts too) arrives base64-encoded.
TEXT_MEDIA_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})
# Fictional identity, matching the sample events in events/.
ACCOUNT_ID = "123456789012"
API_ID = "local"
STAGE = "$default"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Invoke = Callable[[dict[str, Any], str, float], Invocation]
# A local-only route's handler: the request as it came, the answer as it goes.
LocalHandler = Callable[["HttpRequest"], "HttpResponse"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class HttpRequest:
    """A request as it reached the gateway: header names as sent, repeated headers kept, body as bytes."""

    method: str
    target: str  # the request line's path and query, as sent
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"
    scheme: str = "http"
    port: int = 80


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class Exchange:
    """One request the gateway passed to the function: the event it built and what came back."""

    event: dict[str, Any]
    invocation: Invocation
    response: HttpResponse
    seconds: float


def gateway_error(status: int, message: str) -> HttpResponse:
    """An answer API Gateway makes itself, in its own shape."""
    body = json.dumps({"message": message}).encode()
    return HttpResponse(status, [("Content-Type", "application/json")], body)


def is_text(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES


def _header_map(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """HTTP API's header map: names lowercased, repeated headers joined with ","."""
    joined: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _request_id() -> str:
    # HTTP API request ids look like "JKJaXmPLvHcESHA=": 14 letters or digits and a padding sign.
    return base64.b64encode(os.urandom(10), altchars=b"xQ").decode("ascii")[:14] + "="


def _gateway_time(now: datetime) -> str:
    return f"{now:%d}/{MONTHS[now.month - 1]}/{now:%Y:%H:%M:%S} +0000"


def build_event(
    request: HttpRequest, route: Route, *, request_id: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The HTTP API payload 2.0 event API Gateway would send the function for `request` on `route`."""
    now = now or datetime.now(UTC)
    request_id = request_id or _request_id()
    url = urlsplit(request.target)
    headers = _header_map(request.headers)
    # HTTP API moves cookies out of the headers into their own list.
    cookie_header = headers.pop("cookie", None)
    host = headers.get("host") or "localhost"
    domain = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    forwarded_for = headers.get("x-forwarded-for")
    epoch_seconds = int(now.timestamp())
    # What API Gateway adds on its way to the function.
    headers["x-forwarded-for"] = f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip
    headers["x-forwarded-port"] = str(request.port)
    headers["x-forwarded-proto"] = request.scheme
    headers.setdefault("x-amzn-trace-id", f"Root=1-{epoch_seconds:08x}-{uuid.uuid4().hex[:24]}")

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": url.path,
        "rawQueryString": url.query,
    }
    if cookie_header:
        event["cookies"] = [part.strip() for part in re.split(r"[;,]", cookie_header) if part.strip()]
    event["headers"] = dict(sorted(headers.items()))
    if url.query:
        params: dict[str, str] = {}
        for name, value in parse_qsl(url.query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": url.path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.key,
        "stage": STAGE,
        "time": _gateway_time(now),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if request.body:
        text = None
        if is_text(headers.get("content-type")):
            with contextlib.suppress(UnicodeDecodeError):
                text = request.body.decode("utf-8")
        # Undocumented: what API Gateway does with bytes that are not UTF-8 under a text type. Passing them
        # base64-encoded keeps them exact, so a signature over them still verifies as the sender meant.
        event["body"] = text if text is not None else base64.b64encode(request.body).decode("ascii")
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


def response_from_result(result: Any) -> HttpResponse:
    """The HTTP answer API Gateway makes of a payload 2.0 function result."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Format 2.0: a result without statusCode is itself the JSON body of a 200.
        body = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("Content-Type", "application/json")], body.encode("utf-8"))
    try:
        status = int(result["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(status)
        body = result.get("body") or ""
        if not isinstance(body, str):
            raise TypeError("body must be a string")
        raw = base64.b64decode(body, validate=True) if result.get("isBase64Encoded") else body.encode("utf-8")
        headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((str(name), str(value)) for value in values)
        headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or ())
    except (TypeError, ValueError, AttributeError):
        # A malformed answer from the function is API Gateway's 500.
        return gateway_error(500, "Internal Server Error")
    return HttpResponse(status, headers, raw)


class Gateway:
    """Routes, builds the event, invokes, and translates the answer; the HTTP server below is only transport."""

    def __init__(
        self,
        routes: Iterable[Route],
        invoke: Invoke,
        *,
        function_timeout_seconds: float,
        local_routes: Mapping[Route, LocalHandler] | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self._invoke = invoke
        self._local_routes = dict(local_routes or {})
        self._function_timeout = function_timeout_seconds
        self._lock = threading.Lock()
        # The latest exchanges only: a stack left running for days must not grow without bound.
        self.exchanges: deque[Exchange] = deque(maxlen=1000)

    def handle(self, request: HttpRequest) -> HttpResponse:
        path = urlsplit(request.target).path
        local = self._local_routes.get(Route(request.method, path))
        if local is not None:
            return local(request)
        route = next((r for r in self.routes if r.method == request.method and r.path == path), None)
        if route is None:
            return gateway_error(404, "Not Found")
        request_id = _request_id()
        event = build_event(request, route, request_id=request_id)
        started = time.monotonic()
        invocation = self._invoke(event, request_id, self._function_timeout)
        if invocation.throttled:
            response = gateway_error(503, "Service Unavailable")
        elif invocation.error is not None:
            response = gateway_error(500, "Internal Server Error")
        else:
            response = response_from_result(invocation.result)
        response.headers.append(("Apigw-Requestid", request_id))
        with self._lock:
            self.exchanges.append(Exchange(event, invocation, response, time.monotonic() - started))
        return response


class _Server(ClosableHTTPServer):
    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        super().__init__(address, _Handler)
        self.gateway = gateway


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = INTEGRATION_TIMEOUT_SECONDS  # a client that stops sending mid-request does not hold a thread
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        # Every method, including ones http.server has never heard of, reaches the router (which answers 404).
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Unreadable requests get API Gateway's JSON shape, not http.server's HTML page, and always a status
        # line: http.server would answer a request line it cannot parse as HTTP/0.9, with no status at all.
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        phrase = self.responses.get(code, ("Error",))[0]
        self._write(gateway_error(code, phrase))

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest as error:
            self.close_connection = True
            return self._write(gateway_error(error.status, error.message))
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            port=int(self.server.server_address[1]),
        )
        self._write(self.server.gateway.handle(request))

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            raise _BadRequest(400, "Bad Request") from None
        if length > MAX_BODY_BYTES:
            raise _BadRequest(413, "Request Entity Too Large")
        body = self.rfile.read(length)
        if len(body) < length:
            raise _BadRequest(400, "Bad Request")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400, "Bad Request") from None
            if size == 0:
                # Trailers, up to the blank line that ends the message.
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest(413, "Request Entity Too Large")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise _BadRequest(400, "Bad Request")
            chunks.append(chunk)
            self.rfile.readline(8)  # the CRLF after each chunk

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue  # framing is this server's job
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


class GatewayServer:
    """The front end on host:port, serving from daemon threads until stop()."""

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        # Binding happens here, so a port in use fails before anything else is started.
        self._server = _Server((host, port), gateway)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> GatewayServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"gateway:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.close_connections()
