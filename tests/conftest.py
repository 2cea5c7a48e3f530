"""Shared fixtures: moto for SSM and DynamoDB (the table built from template.yaml), a stand-in Devin API on
127.0.0.1, and the real lambda_handler behind a small `invoke` helper."""

from __future__ import annotations

import functools
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.devin_standin import DevinStandIn
from local.pagerduty_standin import PagerDutyStandIn
from scripts.make_events import TEST_SIGNING_SECRET
from tests.support.template import create_ledger_table

TABLE = "ledger"
PREFIX = "/pagerduty-postmortem"
DEVIN_KEY = "cog_test_key_0123456789abcdef"
DEVIN_ORG = "org-test123"
WEBHOOK_SECRET = "test-webhook-secret"
PAGERDUTY_KEY = "u+PDtestKEY012345678"  # 20 characters, as PagerDuty's keys are
PAGERDUTY_FROM = "postmortem-bot@example.com"
REGION = "us-east-1"


@dataclass
class FakeContext:
    """The parts of LambdaContext that Powertools and the handler read."""

    remaining_ms: int = 25_000
    function_name: str = "PagerDutyPostmortemFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:PagerDutyPostmortemFunction"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/PagerDutyPostmortemFunction"
    log_stream_name: str = "2026/11/27/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with fake credentials and without any endpoint override: nothing can reach AWS."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def devin() -> Iterator[DevinStandIn]:
    with DevinStandIn(api_key=DEVIN_KEY, org_id=DEVIN_ORG) as standin:
        yield standin


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyStandIn]:
    """A stand-in PagerDuty REST API that knows nothing yet (add_incident) and requires PAGERDUTY_KEY."""
    with PagerDutyStandIn(api_key=PAGERDUTY_KEY) as standin:
        yield standin


@pytest.fixture
def pagerduty_reads(secrets: None, env: None, pagerduty: PagerDutyStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment has a PagerDuty key (and the function points at the stand-in): it reads, and only reads."""
    monkeypatch.setenv("PAGERDUTY_API_BASE_URL", pagerduty.base_url)
    put_parameter("pagerduty-api-key", PAGERDUTY_KEY)


@pytest.fixture
def pagerduty_writes(pagerduty_reads: None) -> None:
    """The deployment has a PagerDuty key and a from-email: it reads the record and writes notes."""
    put_parameter("pagerduty-from-email", PAGERDUTY_FROM, secure=False)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        create_ledger_table(aws_client("dynamodb"), TABLE)
        yield


def aws_client(service: str) -> Any:
    """A client on a session of its own, so that `aws_calls` records only what the handler does."""
    return _test_session().client(service)


@functools.cache
def _test_session() -> boto3.session.Session:
    # One for all tests: a new session loads the service models from disk again (~70 ms a client).
    return boto3.session.Session(region_name=REGION)


def put_parameter(name: str, value: str, secure: bool = True) -> None:
    aws_client("ssm").put_parameter(
        Name=f"{PREFIX}/{name}", Value=value, Type="SecureString" if secure else "String", Overwrite=True
    )


def delete_parameter(name: str) -> None:
    aws_client("ssm").delete_parameter(Name=f"{PREFIX}/{name}")


@pytest.fixture
def secrets(aws: None) -> None:
    """The parameters a normal deployment has: Devin credentials and the PagerDuty signing secret."""
    put_parameter("devin-api-key", DEVIN_KEY)
    put_parameter("devin-org-id", DEVIN_ORG, secure=False)
    put_parameter("pagerduty-signing-secret", TEST_SIGNING_SECRET)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, devin: DevinStandIn) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("SSM_PARAMETER_PREFIX", PREFIX)
    monkeypatch.setenv("DEVIN_API_BASE_URL", devin.base_url)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "pagerduty-postmortem")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "PagerDutyPostmortem")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # The sample events carry fixed dates in the past: judged by age, every one would be a stale delivery.
    monkeypatch.setenv("MAX_EVENT_AGE_HOURS", "0")
    for name in (
        "EVENT_TYPES",
        "PRIORITIES",
        "URGENCIES",
        "DEVIN_PLAYBOOK_ID",
        "PAGERDUTY_API_BASE_URL",
        "PAGERDUTY_READ_SECONDS",
        "FOLLOW_UP_EVENT_TYPES",
        "FOLLOW_UP_DAYS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def handler_module(env: None, secrets: None) -> Iterator[Any]:
    """The real handler/app.py, with its cached clients and parameters dropped so each test starts cold."""
    import app
    from aws_lambda_powertools.utilities import parameters

    app.dependencies.cache_clear()
    parameters.clear_caches()
    yield app
    app.dependencies.cache_clear()
    parameters.clear_caches()


@pytest.fixture
def invoke(handler_module: Any):  # noqa: ANN201 - returns the helper below
    """Call lambda_handler with an API Gateway event; returns the decoded answer."""

    def call(event: dict[str, Any], context: FakeContext | None = None) -> Answer:
        result = handler_module.lambda_handler(event, context or FakeContext())
        body = result.get("body") or "{}"
        return Answer(result["statusCode"], json.loads(body), dict(result.get("headers") or {}))

    return call


@pytest.fixture
def follow_up(handler_module: Any) -> Iterator[Any]:
    """The real handler/follow_up.py, cold, in the same moto and stand-ins as the webhook."""
    import follow_up
    from aws_lambda_powertools.utilities import parameters

    follow_up.dependencies.cache_clear()
    parameters.clear_caches()
    yield follow_up
    follow_up.dependencies.cache_clear()


@pytest.fixture
def follow_up_run(follow_up: Any) -> Callable[[], dict[str, Any]]:
    """Run the follow-up once, as its schedule does; returns its answer (the run's report)."""

    def call() -> dict[str, Any]:
        # The follow-up's Timeout in template.yaml: what Lambda leaves a run when it starts.
        context = FakeContext(remaining_ms=120_000, function_name="FollowUpFunction")
        return follow_up.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, context)

    return call


@pytest.fixture
def aws_calls(handler_module: Any) -> list[str]:
    """Every AWS API call the handler's clients make, as "service.Operation", in order."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(f"{model.service_model.service_name}.{model.name}")

    session = boto3.DEFAULT_SESSION or boto3.setup_default_session() or boto3.DEFAULT_SESSION
    session.events.register("before-call", record)
    yield calls
    session.events.unregister("before-call", record)


@pytest.fixture
def logs(handler_module: Any) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The handler's structured log lines so far (Powertools writes JSON to the stream it found at import)."""
    stream = io.StringIO()
    previous = handler_module.logger.logger_handler.setStream(stream)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]

    yield lines
    handler_module.logger.logger_handler.setStream(previous)


@pytest.fixture
def aws_faults(handler_module: Any) -> Iterator[Any]:
    """Scripted DynamoDB and SSM failures for the handler's own clients (see tests/support/aws_faults.py)."""
    from tests.support.aws_faults import AwsFaults

    with AwsFaults().installed() as faults:
        yield faults


def hold_claim(incident_id: str, expires_in: int, holder: str = "other") -> None:
    """Another delivery's claim on the incident: live when `expires_in` > 0, its holder dead otherwise."""
    aws_client("dynamodb").put_item(
        TableName=TABLE,
        Item={
            "incident_id": {"S": incident_id},
            "status": {"S": "claimed"},
            "claim_token": {"S": holder},
            "claim_expires_at": {"N": str(int(time.time()) + expires_in)},
        },
    )


def backdate(incident_id: str, attribute: str, seconds: int) -> None:
    """Sets an epoch-seconds attribute of the ledger item to `seconds` ago: stands for time passing."""
    aws_client("dynamodb").update_item(
        TableName=TABLE,
        Key={"incident_id": {"S": incident_id}},
        UpdateExpression="SET #attribute = :past",
        ExpressionAttributeNames={"#attribute": attribute},
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - seconds)}},
    )


def ledger_item(incident_id: str) -> dict[str, Any] | None:
    """The ledger item as plain Python values, or None."""
    from boto3.dynamodb.types import TypeDeserializer

    raw = aws_client("dynamodb").get_item(TableName=TABLE, Key={"incident_id": {"S": incident_id}})
    item = raw.get("Item")
    return None if item is None else {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


def ledger_items() -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    items = aws_client("dynamodb").scan(TableName=TABLE)["Items"]
    return [{k: TypeDeserializer().deserialize(v) for k, v in item.items()} for item in items]
