"""local.send: signs a payload's exact bytes as PagerDuty v3 does, posts it, and exits by the answer's status."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from local import send as sender
from scripts.make_events import TEST_SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]
# Not the JSON a serialiser would write: odd spacing, escapes and non-ASCII, so any re-encoding would show.
PAYLOAD = '{ "event" :{"id":"E1", "title":"caf\\u00e9 — 5xx ✓"} }\n'.encode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Capture(BaseHTTPRequestHandler):
    """Records each request; answers the status named by the path (/status/503), else 200."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        status = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else 200
        answer = json.dumps({"status": "seen"} if status < 400 else {"message": "no"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if status == 429:
            self.send_header("Retry-After", "7")
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def capture() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    server.daemon_threads = True
    server.received = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def payload_file(tmp_path: Path) -> Path:
    path = tmp_path / "payload.json"
    path.write_bytes(PAYLOAD)
    return path


def _hmac(secret: str, body: bytes) -> str:
    # Computed here, not with the code under test.
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_signature_is_hmac_sha256_of_the_files_exact_bytes(capture: Any, payload_file: Path) -> None:
    assert sender.main([str(payload_file), "--url", capture.url]) == 0

    [got] = capture.received
    assert got.body == PAYLOAD
    assert got.headers["x-pagerduty-signature"] == "v1=" + _hmac(TEST_SIGNING_SECRET, PAYLOAD)


def test_a_second_secret_adds_a_second_v1_entry(capture: Any, payload_file: Path) -> None:
    sender.main([str(payload_file), "--url", capture.url, "--secret", "old", "--second-secret", "new"])

    entries = capture.received[0].headers["x-pagerduty-signature"].split(",")
    assert entries == ["v1=" + _hmac("old", PAYLOAD), "v1=" + _hmac("new", PAYLOAD)]


def test_the_webhook_secret_goes_in_the_x_webhook_secret_header(capture: Any, payload_file: Path) -> None:
    sender.main([str(payload_file), "--url", capture.url, "--webhook-secret", "shared-token"])

    assert capture.received[0].headers["x-webhook-secret"] == "shared-token"


def test_it_sends_the_headers_pagerduty_sends(capture: Any, payload_file: Path) -> None:
    sender.main([str(payload_file), "--url", capture.url])
    sender.main([str(payload_file), "--url", capture.url, "--webhook-id", "given-id"])

    first, second = (r.headers for r in capture.received)
    assert first["user-agent"] == "PagerDuty-Webhook/V3.0"
    assert first["content-type"] == "application/json"
    assert uuid.UUID(first["x-webhook-id"]).version == 4
    assert second["x-webhook-id"] == "given-id"
    assert "x-webhook-secret" not in first


def test_the_default_secret_is_pagerduty_signing_secret_from_the_environment(
    capture: Any, payload_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_SIGNING_SECRET", "from-the-environment")

    sender.main([str(payload_file), "--url", capture.url])

    assert capture.received[0].headers["x-pagerduty-signature"] == "v1=" + _hmac("from-the-environment", PAYLOAD)


def test_unsigned_sends_no_signature_header(capture: Any, payload_file: Path) -> None:
    sender.main([str(payload_file), "--url", capture.url, "--unsigned"])

    assert "x-pagerduty-signature" not in capture.received[0].headers


@pytest.mark.parametrize(("status", "code"), [(200, 0), (202, 0), (400, 1), (401, 1), (429, 1), (500, 1), (503, 1)])
def test_exit_code_is_0_on_2xx_and_1_on_any_other_status(
    capture: Any, payload_file: Path, capsys: pytest.CaptureFixture[str], status: int, code: int
) -> None:
    assert sender.main([str(payload_file), "--url", f"{capture.url}/status/{status}"]) == code

    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"HTTP {status}")
    assert ('"status": "seen"' if status < 400 else '"message": "no"') in out


def test_a_429_shows_its_retry_after(capture: Any, payload_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sender.main([str(payload_file), "--url", f"{capture.url}/status/429"])

    assert capsys.readouterr().out.splitlines()[0] == "HTTP 429 (Retry-After: 7)"


def test_send_returns_status_lowercased_headers_and_body(capture: Any) -> None:
    status, headers, body = sender.send(b"{}", f"{capture.url}/status/429", ["s"])

    assert (status, headers["retry-after"], json.loads(body)) == (429, "7", {"message": "no"})


def test_an_unreachable_url_exits_2_with_one_line(payload_file: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/pagerduty"

    run = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "local.send", str(payload_file), "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [f"error: cannot reach {url}: Connection refused"]


@pytest.mark.parametrize(
    "argv",
    [["missing.json"], [], ["payload.json", "--url", "ftp://example.com/x"], ["payload.json", "--timeout", "x"]],
    ids=["missing-file", "no-file", "not-http", "bad-option"],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "payload.json").write_bytes(PAYLOAD)
    monkeypatch.chdir(tmp_path)

    with pytest.raises(SystemExit) as exited:
        code = sender.main(argv)
        raise SystemExit(code)

    assert exited.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_dash_reads_the_payload_from_stdin(capture: Any) -> None:
    run = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "local.send", "-", "--url", capture.url],
        cwd=ROOT,
        input=PAYLOAD,
        capture_output=True,
        timeout=30,
    )

    assert run.returncode == 0
    assert capture.received[0].body == PAYLOAD
