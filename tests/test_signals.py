"""What an operator reads about each delivery: one summary log line and the metrics (their names are what the
alarms and the dashboard use), and stale or replayed deliveries turned away before any ledger or Devin call."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bridge.devin.client import DevinClient
from bridge.ledger import Ledger

from local.devin_standin import Fault
from tests.conftest import delete_parameter, hold_claim
from tests.support import metrics
from tests.support.aws_faults import CLAIM, READ_SECRETS
from tests.support.events import api_event, incident, note_event, payload

INCIDENT = "Q2CKYRLH85UNN4"
DEPENDENCY_KEYS = {"ssm_ms", "dynamodb_ms", "devin_ms", "pagerduty_ms", "total_ms"}


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def emitted(capsys) -> list[tuple[str, dict[str, str]]]:  # noqa: ANN001 - pytest's capsys
    """Every metric printed (EMF) as (name, dimensions)."""
    return [(metric.name, metric.dimensions) for metric in metrics.emitted(capsys.readouterr().out)]


def summaries(logs) -> list[dict[str, Any]]:  # noqa: ANN001 - the logs fixture
    return [line for line in logs() if line.get("message") == "delivery"]


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DevinClient.__init__.__kwdefaults__, "jitter", lambda: 0.0)


# --- Stale and replayed deliveries ---------------------------------------------------------------------------


@pytest.mark.parametrize(("hours_ago", "status"), [(73, "ignored"), (71, "started")])
def test_an_event_older_than_max_event_age_hours_is_ignored_before_any_call(
    invoke, devin, aws_calls, capsys, monkeypatch, hours_ago, status
) -> None:
    monkeypatch.setenv("MAX_EVENT_AGE_HOURS", "72")
    body = incident(INCIDENT)
    body["event"]["occurred_at"] = iso(datetime.now(UTC) - timedelta(hours=hours_ago))
    invoke(api_event(payload("pagey-ping.json")))
    aws_calls.clear()
    capsys.readouterr()

    answer = invoke(api_event(body))

    assert (answer.status, answer.body["status"]) == (200, status)
    if status == "ignored":
        assert "stale" in answer.body["reason"]
        assert "72" in answer.body["reason"]
        assert aws_calls == []
        assert devin.requests == []
        assert ("Ignored", {"Reason": "stale", "service": "pagerduty-postmortem"}) in emitted(capsys)


def test_an_event_without_a_readable_time_is_judged_as_before(invoke, devin, monkeypatch) -> None:
    monkeypatch.setenv("MAX_EVENT_AGE_HOURS", "72")
    body = incident(INCIDENT)
    body["event"]["occurred_at"] = "yesterday, roughly"

    assert invoke(api_event(body)).body["status"] == "started"


def test_zero_turns_the_age_check_off(invoke, devin, monkeypatch) -> None:
    monkeypatch.setenv("MAX_EVENT_AGE_HOURS", "0")
    body = incident(INCIDENT)
    body["event"]["occurred_at"] = "2019-01-01T00:00:00Z"

    assert invoke(api_event(body)).body["status"] == "started"


# --- One summary line and the metrics, for each outcome --------------------------------------------------------


def _lifecycle(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("EVENT_TYPES", "incident.resolved")
    monkeypatch.setenv("FOLLOW_UP_EVENT_TYPES", "incident.annotated")


def started(invoke, **_: Any) -> Any:
    return invoke(api_event(incident(INCIDENT)))


def duplicate(invoke, **_: Any) -> Any:
    invoke(api_event(incident(INCIDENT)))
    return invoke(api_event(incident(INCIDENT)))


def messaged(invoke, monkeypatch, **_: Any) -> Any:
    _lifecycle(monkeypatch)
    invoke(api_event(incident(INCIDENT)))
    return invoke(api_event(note_event("01JPNOTE9", "2026-03-14T10:05:00Z", "rolled back")))


def ignored(invoke, **_: Any) -> Any:
    return invoke(api_event(payload("incident-resolved-low-urgency.json")))


def unauthorized(invoke, **_: Any) -> Any:
    return invoke(api_event(incident(INCIDENT), secret="not-the-secret"))


def malformed(invoke, **_: Any) -> Any:
    return invoke(api_event(b'{"event": '))


def in_flight(invoke, **_: Any) -> Any:
    hold_claim(INCIDENT, expires_in=20)
    return invoke(api_event(incident(INCIDENT)))


def devin_unavailable(invoke, devin, **_: Any) -> Any:
    devin.enqueue(*[Fault.status(503, retry_after=0)] * 4)
    return invoke(api_event(incident(INCIDENT)))


def devin_refused(invoke, devin, **_: Any) -> Any:
    devin.enqueue(Fault.status(403))
    return invoke(api_event(incident(INCIDENT)))


def ssm_unavailable(invoke, aws_faults, **_: Any) -> Any:
    aws_faults.fail(READ_SECRETS, "ThrottlingException")
    return invoke(api_event(incident(INCIDENT)))


def dynamodb_unavailable(invoke, aws_faults, **_: Any) -> Any:
    aws_faults.fail(CLAIM, "ProvisionedThroughputExceededException")
    return invoke(api_event(incident(INCIDENT)))


def configuration_missing(invoke, **_: Any) -> Any:
    delete_parameter("devin-api-key")
    return invoke(api_event(incident(INCIDENT)))


def unexpected(invoke, monkeypatch, **_: Any) -> Any:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the ledger exploded")

    monkeypatch.setattr(Ledger, "claim", broken)
    return invoke(api_event(incident(INCIDENT)))


# scenario → (HTTP status, outcome in the summary line, the metric it counts)
OUTCOMES: dict[str, tuple[Callable[..., Any], int, str, str]] = {
    "started": (started, 200, "started", "SessionStarted"),
    "duplicate": (duplicate, 200, "duplicate", "Duplicate"),
    "messaged": (messaged, 200, "messaged", "Messaged"),
    "ignored": (ignored, 200, "ignored", "Ignored"),
    "unauthorized": (unauthorized, 401, "Unauthorized", "Unauthorized"),
    "malformed": (malformed, 400, "BadRequest", "BadRequest"),
    "in-flight": (in_flight, 429, "IncidentInFlight", "IncidentInFlight"),
    "devin-unavailable": (devin_unavailable, 503, "DevinUnavailable", "DevinUnavailable"),
    "devin-refused": (devin_refused, 502, "DevinRefused", "DevinRefused"),
    "parameter-store-unavailable": (ssm_unavailable, 503, "ParameterStoreUnavailable", "ParameterStoreUnavailable"),
    "ledger-unavailable": (dynamodb_unavailable, 503, "LedgerUnavailable", "LedgerUnavailable"),
    "configuration-missing": (configuration_missing, 500, "ConfigurationError", "ConfigurationError"),
    "unexpected-error": (unexpected, 500, "UnexpectedError", "UnexpectedError"),
}


@pytest.mark.parametrize("scenario", OUTCOMES.values(), ids=OUTCOMES.keys())
def test_each_delivery_ends_with_one_summary_line_and_its_outcome_metric(
    invoke, devin, logs, capsys, aws_faults, monkeypatch, quick_backoff, scenario
) -> None:
    run, status, outcome, metric = scenario

    answer = run(invoke=invoke, devin=devin, aws_faults=aws_faults, monkeypatch=monkeypatch)

    assert answer.status == status
    last = summaries(logs)[-1]
    assert last["outcome"] == outcome
    assert last["http_status"] == status
    assert set(last) >= DEPENDENCY_KEYS
    assert all(isinstance(last[key], int | float) and last[key] >= 0 for key in DEPENDENCY_KEYS)
    assert last["function_request_id"]
    if status != 401:
        assert last["webhook_id"] == "3a9b6f0e-6c2d-4a8e-9b1f-0d2c4e6a8b10"
    if status not in (400, 401) and outcome != "ParameterStoreUnavailable":  # those end before the body is read
        assert last["event_type"] and last["event_id"]
    assert "body" not in json.dumps(last).lower().replace("_body", "")
    names = [name for name, _ in emitted(capsys)]
    assert metric in names


def test_the_summary_line_says_where_the_time_went(invoke, devin, logs, monkeypatch) -> None:
    devin.latency = 0.05

    invoke(api_event(incident(INCIDENT)))

    (summary,) = summaries(logs)
    assert summary["incident_id"] == INCIDENT
    assert summary["devin_ms"] >= 50
    assert summary["ssm_ms"] > 0
    assert summary["dynamodb_ms"] > 0
    assert summary["pagerduty_ms"] == 0
    assert summary["total_ms"] >= summary["devin_ms"] + summary["ssm_ms"] + summary["dynamodb_ms"] - 1


def test_the_time_in_pagerduty_is_counted_and_published_as_a_latency(
    pagerduty_reads, pagerduty, invoke, devin, logs, capsys
) -> None:
    from local.pagerduty_standin import sample_record

    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.latency = 0.02

    invoke(api_event(incident(INCIDENT)))

    (summary,) = summaries(logs)
    assert summary["pagerduty_ms"] >= 60  # three reads
    names = {name for name, _ in emitted(capsys)}
    assert {"ParameterStoreLatency", "LedgerLatency", "DevinLatency", "PagerDutyLatency", "Qualified"} <= names


def test_an_ignored_delivery_is_counted_by_reason_class(invoke, devin, capsys) -> None:
    for body in (
        payload("pagey-ping.json"),
        payload("incident-annotated.json"),
        payload("incident-resolved-merged.json"),
    ):
        invoke(api_event(body))
    invoke(api_event(payload("incident-resolved-low-urgency.json")))

    reasons = [dims.get("Reason") for name, dims in emitted(capsys) if name == "Ignored" and "Reason" in dims]
    assert reasons == ["ping", "event_type", "merged", "severity"]


def test_no_summary_line_holds_the_body_or_a_secret(invoke, devin, logs) -> None:
    from scripts.make_events import TEST_SIGNING_SECRET

    invoke(api_event(incident(INCIDENT)))
    invoke(api_event(incident(INCIDENT), secret="forged"))

    text = json.dumps(summaries(logs))
    assert TEST_SIGNING_SECRET not in text
    assert "Checkout API 5xx" not in text  # the incident's title is in the body, not the summary


def test_with_tracing_off_the_x_ray_sdk_is_never_loaded(tmp_path) -> None:
    import subprocess
    import sys

    from bench.lambda_env import lambda_environ, lambda_path

    paths = lambda_path(tmp_path)
    probe = (
        f"import sys, json; sys.path[:0] = {[paths['task'], paths['layer'], paths['runtime']]!r}\n"
        "import app\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('aws_xray_sdk'))[:3]))\n"
    )
    results = {}
    for tracing in ("PassThrough", "Active"):
        env = {**lambda_environ(), "TRACING": tracing}
        env.pop("POWERTOOLS_TRACE_DISABLED", None)
        run = subprocess.run(  # noqa: S603 - a fixed argv of our own
            [sys.executable, "-S", "-B", "-c", probe],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        results[tracing] = json.loads(run.stdout.strip().splitlines()[-1])

    assert results["PassThrough"] == []
    assert results["Active"] != []
