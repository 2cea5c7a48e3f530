"""No secret value ever leaves the function: not in logs, metrics, answers, exception messages or the ledger.

The deployment is configured with distinctive secrets (a Devin API key, a PagerDuty signing secret and a
custom-header secret), then every kind of delivery runs through the real lambda_handler: started, duplicate,
ignored, forged, malformed, in flight, every Devin fault, SSM and DynamoDB errors, and an unexpected exception.
Everything the function produced is scanned for each secret, and for any ten characters of one in a row:
Powertools' JSON log lines, everything else on stdout and stderr (EMF metrics included), every logging record
(message, extra fields, formatted traceback), each HTTP answer, each exception that reached the resolver's error
handlers (with its whole cause chain), what the ledger stored, and what was sent to Devin apart from the
Authorization header that must carry the key.
"""

from __future__ import annotations

import json
import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from bridge.devin.client import DevinClient
from bridge.errors import BridgeError
from bridge.ledger import Ledger

from local.devin_standin import DevinStandIn, Fault
from local.pagerduty_standin import PagerDutyStandIn, sample_record
from tests.conftest import (
    FakeContext,
    delete_parameter,
    hold_claim,
    ledger_items,
    put_parameter,
)
from tests.support.aws_faults import CLAIM, READ_SECRETS, RECORD, RELEASE
from tests.support.events import api_event, incident, payload

API_KEY = "cog_k3yMARKERapi_9f2c47d1e0b86a35"
SIGNING_SECRET = "whsec_s1gMARKERsign_5e8a0c3b7d2f9146"
WEBHOOK_SECRET = "hdr_w3bMARKERhook_1b7f4e9a2c6d8035"
PAGERDUTY_KEY = "u+pdMARKERkey_7c1e9a"  # 20 characters, as PagerDuty's keys are
SECRETS = (API_KEY, SIGNING_SECRET, WEBHOOK_SECRET, PAGERDUTY_KEY)
# A leak of part of a secret (truncated, split, wrapped) still shows some ten characters of it in a row.
WINDOW = 10
FRAGMENTS = frozenset(secret[i : i + WINDOW] for secret in SECRETS for i in range(len(secret) - WINDOW + 1))

INCIDENT = "QLEAK0001"


@dataclass
class Captured:
    texts: list[str] = field(default_factory=list)

    def add(self, label: str, value: Any) -> None:
        self.texts.append(f"--- {label}\n{value}")

    def leaks(self) -> list[str]:
        """Every captured text that holds a secret, or any ten characters of one in a row."""
        return [text[:400] for text in self.texts if any(fragment in text for fragment in FRAGMENTS)]


@pytest.fixture
def distinctive_secrets(secrets: None, devin: DevinStandIn) -> None:
    put_parameter("devin-api-key", API_KEY)
    put_parameter("pagerduty-signing-secret", SIGNING_SECRET)
    put_parameter("webhook-secret", WEBHOOK_SECRET)
    devin.api_key = API_KEY


@pytest.fixture
def captured(distinctive_secrets, handler_module, caplog) -> Iterator[Captured]:
    """Records each exception that reaches the resolver's error handlers, with its cause chain; the deployed
    log level (INFO) for every logger."""
    caplog.set_level(logging.INFO)
    capture = Captured()

    def planned(error: BridgeError) -> Any:
        capture.add("planned exception", "".join(traceback.format_exception(error)))
        return handler_module.planned_failure(error)

    def unplanned(error: Exception) -> Any:
        capture.add("unplanned exception", "".join(traceback.format_exception(error)))
        return handler_module.unplanned_failure(error)

    handler_module.app.exception_handler(BridgeError)(planned)
    handler_module.app.exception_handler(Exception)(unplanned)
    yield capture
    handler_module.app.exception_handler(BridgeError)(handler_module.planned_failure)
    handler_module.app.exception_handler(Exception)(handler_module.unplanned_failure)


@pytest.fixture
def deliver(invoke, captured: Captured) -> Callable[..., Any]:
    def run(body: dict[str, Any] | None = None, *, secret: str | None = SIGNING_SECRET, hook: str | None = None, **kw):
        headers = {"x-webhook-secret": WEBHOOK_SECRET if hook is None else hook}
        event = api_event(body or incident(INCIDENT), secret=secret, headers=headers)
        answer = invoke(event, FakeContext(**kw))
        captured.add("answer", repr(answer))
        return answer

    return run


@pytest.fixture
def everything(captured: Captured, logs, capsys, caplog, devin: DevinStandIn) -> Callable[[], Captured]:
    """Adds what the deliveries left behind: log lines and records, stdout and stderr, the ledger, and what
    Devin received (but the Authorization header, which must carry the key)."""

    def collect() -> Captured:
        formatter = logging.Formatter()
        for record in caplog.records:
            captured.add("log record", record.getMessage())
            fields = {k: v for k, v in record.__dict__.items() if k not in ("exc_info", "args", "msg")}
            captured.add("log record fields", fields)
            if record.exc_info:
                captured.add("log record traceback", formatter.formatException(record.exc_info))
        captured.add("powertools log lines", json.dumps(logs()))
        out, err = capsys.readouterr()
        captured.add("stdout", out)
        captured.add("stderr", err)
        captured.add("ledger", json.dumps(ledger_items(), default=str))
        for request in devin.requests:
            headers = {name: value for name, value in request.headers.items() if name != "authorization"}
            captured.add("sent to Devin", f"{request.method} {request.path} {request.query} {headers} {request.body!r}")
        return captured

    return collect


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DevinClient.__init__.__kwdefaults__, "jitter", lambda: 0.0)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def started(deliver, devin, **_):
    assert deliver().body["status"] == "started"


def duplicate(deliver, devin, **_):
    deliver()
    assert deliver().body["status"] == "duplicate"


def ignored(deliver, devin, **_):
    assert deliver(payload("pagey-ping.json")).body["status"] == "ignored"
    assert deliver(payload("incident-resolved-low-urgency.json")).body["status"] == "ignored"


def forged(deliver, devin, **_):
    assert deliver(secret="someone-elses-secret").status == 401
    assert deliver(secret=None).status == 401
    assert deliver(secret=WEBHOOK_SECRET).status == 401  # signed with the other secret
    assert deliver(hook="guess").status == 401
    assert deliver(hook=WEBHOOK_SECRET[:-1]).status == 401


def malformed(deliver, devin, **_):
    assert deliver({"not": "an envelope"}).status == 400
    assert deliver({"event": {"event_type": "incident.resolved", "data": {"type": "incident"}}}).status == 400


def in_flight(deliver, devin, **_):
    hold_claim(INCIDENT, expires_in=20)
    assert deliver().status == 429


def devin_fault(*faults: Fault, expect: int, remaining_ms: int = 25_000):
    def scenario(deliver, devin, **_):
        devin.enqueue(*faults)
        assert deliver(remaining_ms=remaining_ms).status == expect

    return scenario


def devin_rejects_the_key(deliver, devin, **_):
    devin.api_key = "cog_the_key_devin_expects"
    assert deliver().status == 502


def devin_unreachable(deliver, devin, monkeypatch, **_):
    monkeypatch.setenv("DEVIN_API_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    assert deliver().status == 503


def aws_fault(step: str, code: str, *, expect: int, devin_faults: tuple[Fault, ...] = ()):
    def scenario(deliver, devin, aws_faults, **_):
        devin.enqueue(*devin_faults)
        aws_faults.fail(step, code)
        assert deliver().status == expect

    return scenario


def devin_key_missing(deliver, devin, **_):
    delete_parameter("devin-api-key")
    assert deliver().status == 500


def unexpected_exception(deliver, devin, monkeypatch, **_):
    def broken(*args, **kwargs):
        raise RuntimeError("the ledger exploded")

    monkeypatch.setattr(Ledger, "claim", broken)
    assert deliver().status == 500


SCENARIOS: dict[str, Callable[..., None]] = {
    "started": started,
    "duplicate": duplicate,
    "ignored": ignored,
    "forged": forged,
    "malformed": malformed,
    "in-flight": in_flight,
    "devin-429": devin_fault(*[Fault.status(429, retry_after=0)] * 4, expect=503),
    "devin-500": devin_fault(*[Fault.status(500)] * 4, expect=503),
    "devin-401-wrong-key": devin_rejects_the_key,
    "devin-403": devin_fault(Fault.status(403), expect=502),
    "devin-422": devin_fault(Fault.status(422), expect=502),
    "devin-reset": devin_fault(Fault.reset(), expect=503),
    "devin-reset-after-create": devin_fault(Fault.create_then_reset(), expect=503),
    "devin-too-slow": devin_fault(Fault.create_then_hang(2), expect=503, remaining_ms=3200),
    "devin-201-not-json": devin_fault(Fault.bad_body_created(), expect=503),
    "devin-201-without-id": devin_fault(Fault.missing_id_created(), expect=503),
    "devin-unreachable": devin_unreachable,
    "ssm-throttled": aws_fault(READ_SECRETS, "ThrottlingException", expect=503),
    "ssm-parameter-missing": devin_key_missing,
    "dynamodb-claim-throttled": aws_fault(CLAIM, "ProvisionedThroughputExceededException", expect=503),
    "dynamodb-final-write-failed": aws_fault(RECORD, "InternalServerError", expect=503),
    "dynamodb-release-failed": aws_fault(
        RELEASE, "InternalServerError", expect=503, devin_faults=(Fault.status(503, retry_after=0),) * 4
    ),
    "unexpected-exception": unexpected_exception,
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_no_secret_appears_in_anything_the_function_produces(
    deliver, everything, devin, aws_faults, monkeypatch, quick_backoff, scenario
) -> None:
    # GIVEN distinctive secrets WHEN the scenario's deliveries run
    scenario(deliver, devin, aws_faults=aws_faults, monkeypatch=monkeypatch)

    # THEN nothing the function produced holds any of them, or even a fragment of one
    produced = everything()
    assert len(produced.texts) > 5
    assert not produced.leaks(), "\n".join(produced.leaks())


def test_no_secret_reaches_the_logs_even_with_every_logger_at_debug(deliver, everything, devin, caplog) -> None:
    # GIVEN an operator who turned the function's logging up to DEBUG (botocore would log the decrypted SSM
    # answer at that level)
    caplog.set_level(logging.DEBUG)

    # WHEN a cold container reads its secrets and starts a session
    started(deliver, devin)

    # THEN no log record holds a secret
    produced = everything()
    assert any(text.startswith("--- log record\n") for text in produced.texts)
    assert not produced.leaks(), "\n".join(produced.leaks())


# --- With PagerDuty's REST API configured (issue 8): its key joins the secrets -------------------------------


@pytest.fixture
def pagerduty_configured(distinctive_secrets, env, monkeypatch) -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn(api_key=PAGERDUTY_KEY) as standin:
        standin.add_incident(INCIDENT, **sample_record(INCIDENT))
        monkeypatch.setenv("PAGERDUTY_API_BASE_URL", standin.base_url)
        put_parameter("pagerduty-api-key", PAGERDUTY_KEY)
        put_parameter("pagerduty-from-email", "postmortem-bot@example.com", secure=False)
        yield standin


def _pagerduty_fails(*faults: Fault, endpoints=("log_entries", "alerts", "notes", "notes_post")):
    def scenario(deliver, pagerduty: PagerDutyStandIn) -> None:
        for endpoint in endpoints:
            pagerduty.enqueue(endpoint, *faults)
        assert deliver().body["status"] == "started"
        assert deliver().body["status"] == "duplicate"

    return scenario


def _pagerduty_refuses_the_key(deliver, pagerduty: PagerDutyStandIn) -> None:
    pagerduty.api_key = "u+someoneELSESkey123"
    assert deliver().body["status"] == "started"


PAGERDUTY_SCENARIOS: dict[str, Callable[..., None]] = {
    "record-and-note": _pagerduty_fails(),
    "key-refused": _pagerduty_refuses_the_key,
    "every-call-500": _pagerduty_fails(*[Fault.status(500)] * 5),
    "rate-limited": _pagerduty_fails(*[Fault.status(429, headers={"ratelimit-reset": "0"})] * 5),
    "note-answer-lost": _pagerduty_fails(Fault.create_then_reset(), endpoints=("notes_post",)),
    "reads-reset": _pagerduty_fails(*[Fault.reset()] * 5, endpoints=("log_entries", "alerts", "notes")),
}


@pytest.mark.parametrize("scenario", PAGERDUTY_SCENARIOS.values(), ids=PAGERDUTY_SCENARIOS.keys())
def test_no_secret_appears_when_pagerduty_is_read_and_written(
    pagerduty_configured, deliver, everything, quick_backoff, scenario
) -> None:
    scenario(deliver, pagerduty_configured)

    produced = everything()
    for request in pagerduty_configured.requests:
        headers = {name: value for name, value in request.headers.items() if name != "authorization"}
        produced.add("sent to PagerDuty", f"{request.method} {request.path} {request.query} {headers} {request.body!r}")
    assert any(text.startswith("--- sent to PagerDuty") for text in produced.texts)
    assert not produced.leaks(), "\n".join(produced.leaks())
