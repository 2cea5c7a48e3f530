"""Lambda entry point: wires Powertools and maps what happened to each PagerDuty delivery to its HTTP answer.

One delivery flows top to bottom: raw body → authenticated → parsed → selected → session started → answer.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from bridge.config import Settings
from bridge.credentials import CredentialStore
from bridge.devin import DevinClient
from bridge.errors import BadRequest, BridgeError, ConfigurationError
from bridge.ledger import Ledger
from bridge.pagerduty import parse_event
from bridge.policy import Ignored, select
from bridge.postmortem import start_postmortem
from bridge.prompt import build_session_request
from bridge.signature import authenticate

if TYPE_CHECKING:
    import requests

logger = Logger()
# At DEBUG botocore logs whole answers, the decrypted SSM parameters among them: whatever level an operator
# sets for the function, botocore stays at INFO.
logging.getLogger("botocore").setLevel(logging.INFO)
# X-Ray traces the two libraries the function calls out with: botocore now, requests when it is first loaded
# (Dependencies.http). Patching everything Powertools can (its default) also imports sqlite3 and tries a
# dozen database drivers at every cold start.
tracer = Tracer(patch_modules=("botocore",))
# The template sets the namespace; without one Powertools refuses to flush, and every answer would be lost.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "PagerDutyPostmortem")
app = APIGatewayHttpResolver()

# Kept back from the Devin call for the ledger writes after it.
LEDGER_RESERVE_SECONDS = 2.0
# A claim outlives its invocation by this much, so that it never expires while its holder still runs.
LEASE_MARGIN_SECONDS = 5.0
# The function's Timeout in template.yaml.
DEFAULT_TIMEOUT_SECONDS = 25.0
AWS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 3})

# Held while a lazily made dependency is made: boto3's default session is not thread-safe.
_making = threading.Lock()


@dataclass(frozen=True)
class Dependencies:
    """What every delivery needs is made with it; what only a qualifying incident needs, on the first one.

    Most deliveries are ignored or refused: a container that only ever sees those never loads DynamoDB's
    service model (about 25 ms of its first request) nor requests (about 20 ms of init; docs/performance.md).
    """

    settings: Settings
    credentials: CredentialStore

    @functools.cached_property
    def ledger(self) -> Ledger:
        with _making:
            client = boto3.client("dynamodb", config=AWS_CONFIG)
        return Ledger(client, self.settings.table_name, self.settings.ledger_retention_days)

    @functools.cached_property
    def http(self) -> requests.Session:
        """Devin's connection pool."""
        with _making:
            import requests

            tracer.patch(modules=("requests",))
            return requests.Session()


@functools.cache
def dependencies() -> Dependencies:
    """Built on the first request, not at import, and kept while the container is warm.

    A failure is not cached: a missing setting answers 500 and the next delivery tries again.
    """
    settings = Settings.from_env()
    with _making:
        ssm = boto3.client("ssm", config=AWS_CONFIG)
    return Dependencies(
        settings=settings,
        credentials=CredentialStore(
            settings.ssm_prefix, SSMProvider(boto3_client=ssm), max_age=settings.secrets_max_age
        ),
    )


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body), headers=headers)


def _count(metric: str) -> None:
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)


def _raw_body() -> bytes:
    """The exact bytes PagerDuty signed."""
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadRequest("body is not valid base64") from error
    return body.encode("utf-8", "surrogatepass")


def _remaining_seconds() -> float:
    """Time this invocation has left; a caller without a real Lambda context gets the template's timeout."""
    remaining_ms = getattr(app.lambda_context, "get_remaining_time_in_millis", None)
    return remaining_ms() / 1000 if callable(remaining_ms) else DEFAULT_TIMEOUT_SECONDS


@app.post("/pagerduty")
def receive_webhook() -> Response:
    deps = dependencies()
    raw_body = _raw_body()
    headers = {name.lower(): value for name, value in (app.current_event.headers or {}).items()}
    credentials = deps.credentials.get()
    authenticate(raw_body, headers, credentials)

    event = parse_event(raw_body)
    logger.append_keys(webhook_id=headers.get("x-webhook-id"), event_id=event.id, event_type=event.event_type)
    selected = select(event, deps.settings)
    if isinstance(selected, Ignored):
        logger.info("delivery ignored", extra={"reason": selected.reason})
        _count("Ignored")
        return _json(200, {"status": "ignored", "reason": selected.reason})

    incident = selected
    logger.append_keys(incident_id=incident.id)
    if not (credentials.devin_api_key and credentials.devin_org_id):
        raise ConfigurationError("the Devin API key or organization id is not configured")
    remaining = _remaining_seconds()
    outcome = start_postmortem(
        incident,
        event,
        build_session_request(incident, event, deps.settings.playbook_id),
        ledger=deps.ledger,
        devin=DevinClient(
            deps.settings.devin_api_base_url, credentials.devin_api_key, credentials.devin_org_id, deps.http
        ),
        deadline=time.monotonic() + remaining - LEDGER_RESERVE_SECONDS,
        lease_seconds=remaining + LEASE_MARGIN_SECONDS,
        settle_seconds=deps.settings.settle_seconds,
    )
    logger.info(f"postmortem session {outcome.status}", extra={"session_id": outcome.session.session_id})
    _count("SessionStarted" if outcome.status == "started" else "Duplicate")
    return _json(
        200,
        {
            "status": outcome.status,
            "incident_id": outcome.incident_id,
            "session_id": outcome.session.session_id,
            "session_url": outcome.session.url,
        },
    )


@app.exception_handler(BridgeError)
def planned_failure(error: BridgeError) -> Response:
    if error.status_code >= 500:
        logger.error(error.message, exc_info=error.__cause__)
    else:
        logger.warning(error.message)
    _count(type(error).__name__)
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return _json(error.status_code, {"message": error.message}, headers)


@app.exception_handler(Exception)
def unplanned_failure(error: Exception) -> Response:
    # The answer names nothing: the traceback goes to the log, never to the caller.
    logger.exception("unexpected error")
    _count("UnexpectedError")
    return _json(500, {"message": "internal error"})


# clear_state: keys appended for one delivery (incident_id, event_id…) must not leak into the next one's logs.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
