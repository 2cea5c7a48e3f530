"""Lambda entry point: wires Powertools and maps what happened to each PagerDuty delivery to its HTTP answer.

One delivery flows top to bottom: raw body → authenticated → parsed → selected → session started (or the event
forwarded to it) → answer; then one summary log line and the metrics say what happened and what it cost.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from bridge.dependencies import Dependencies, make_dependencies
from bridge.devin.routing import Facts, Rule
from bridge.errors import BadRequest, BridgeError, ConfigurationError, SetupUnavailable
from bridge.parameters import Parameters
from bridge.timing import DEVIN, DYNAMODB, PAGERDUTY, SSM, Timings
from bridge.tracing import Tracing
from bridge.webhook.event import parse_event
from bridge.webhook.gateway import HttpApi, answer
from bridge.webhook.policy import ROUTING, Delivery, Ignored, select
from bridge.webhook.signature import authenticate

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
# At DEBUG botocore logs whole answers, the decrypted SSM parameters among them: whatever level an operator
# sets for the function, botocore stays at INFO.
logging.getLogger("botocore").setLevel(logging.INFO)
# X-Ray (when the deployment turns it on) traces the two libraries the function calls out with: botocore now,
# requests when it is first loaded (Dependencies.http).
tracing = Tracing(patch_modules=("botocore",))
# The template sets the namespace; without one Powertools refuses to flush, and every answer would be lost.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "PagerDutyPostmortem")


app = HttpApi()

# The function's Timeout in template.yaml.
DEFAULT_TIMEOUT_SECONDS = 25.0
# All of one delivery's PagerDuty calls together (reads, then the note): with Devin's own time, well inside the 5 s
# PagerDuty waits for an answer. The reads have their own budget (PAGERDUTY_READ_SECONDS, at most 4 s).
PAGERDUTY_SECONDS = 4.0
# Milliseconds each dependency took during the current invocation, and the metric each is published as.
timings = Timings()
LATENCY_METRICS = {
    SSM: "ParameterStoreLatency",
    DYNAMODB: "LedgerLatency",
    DEVIN: "DevinLatency",
    PAGERDUTY: "PagerDutyLatency",
}


@functools.cache
def dependencies() -> Dependencies:
    """Built on the first request, not at import, and kept while the container is warm.

    A failure is not cached: a missing setting answers 500 and the next delivery tries again.
    """
    return make_dependencies(timings, on_requests_loaded=tracing.patch_requests)


# What the summary log line says about the delivery being handled: its outcome (set where it is decided).
_summary: dict[str, Any] = {}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return answer(status, json.dumps(body), headers)


def _count(metric: str) -> None:
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)


def _outcome(outcome: str, metric: str | None = None) -> None:
    """The delivery's outcome, for the summary line, counted under `metric` (default: the outcome itself)."""
    _summary["outcome"] = outcome
    _count(metric or outcome)


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


def _record_unavailable(part: str, reason: str) -> None:
    logger.warning("part of PagerDuty's record is unavailable", extra={"part": part, "reason": reason})
    _count("PagerDutyReadFailed")


def _ignored(why: Ignored) -> dict[str, Any]:
    logger.info("delivery ignored", extra={"reason": why.reason})
    _outcome("ignored", "Ignored")
    _summary["reason"] = why.kind
    # Counted twice: in all (above), and by reason class as a dimension, a handful of values (webhook/policy.py), never
    # the free-text reason.
    with single_metric(
        name="Ignored",
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as ignored:
        ignored.add_dimension(name="Reason", value=why.kind)
    return _json(200, {"status": "ignored", "reason": why.reason})


def _with_routing(delivery: Delivery, parameters: Parameters) -> tuple[Delivery, Rule | None]:
    """The routing rule of a delivery about to start a session, and the delivery, ignored if its rule says skip."""
    if delivery.start is not None or delivery.incident is None:
        return delivery, None
    if parameters.setup is None:
        logger.error("cannot start a session: the routing setup is broken", extra={"problem": parameters.setup_problem})
        raise SetupUnavailable("the routing document or prompt template in Parameter Store is invalid")
    routing = parameters.setup.routing
    rule = routing.route(Facts.of(delivery.incident, delivery.event.event_type)) if routing is not None else None
    if rule is not None and rule.skip:
        return delivery.without_start(Ignored(f"routing rule {rule.name!r} skips this incident", ROUTING)), None
    return delivery, rule


@app.post("/pagerduty")
def receive_webhook() -> dict[str, Any]:
    deps = dependencies()
    raw_body = _raw_body()
    headers = {name.lower(): value for name, value in (app.current_event.headers or {}).items()}
    logger.append_keys(webhook_id=headers.get("x-webhook-id"))
    parameters = deps.parameters.get()
    if parameters.refresh_problem is not None:
        logger.warning(
            "the routing document or prompt template became invalid; the last good one stays in use",
            extra={"problem": parameters.refresh_problem},
        )
        _count("RoutingInvalid")
    credentials = parameters.credentials
    authenticate(raw_body, headers, credentials)

    event = parse_event(raw_body)
    logger.append_keys(event_id=event.id, event_type=event.event_type)
    selected = select(event, deps.settings, now=time.time())
    if isinstance(selected, Ignored):
        return _ignored(selected)
    logger.append_keys(incident_id=selected.incident_id)
    delivery, rule = _with_routing(selected, parameters)
    if delivery.start is None:
        # Qualified to start a session: the "no session for a day" alarm compares it with what was started.
        _count("Qualified")
    elif not delivery.forwardable:
        return _ignored(delivery.start)

    if not (credentials.devin_api_key and credentials.devin_org_id):
        raise ConfigurationError("the Devin API key or organization id is not configured")
    # Imported here, not at init: most deliveries are ignored or refused before this point (docs/performance.md).
    from bridge import handling

    outcome = handling.handle(
        delivery,
        rule,
        handling.Invocation(
            deps=deps,
            credentials=credentials,
            setup=parameters.setup,
            remaining_seconds=_remaining_seconds(),
            pagerduty_time_left=lambda: PAGERDUTY_SECONDS - timings.milliseconds()[PAGERDUTY] / 1000,
            on_unavailable=_record_unavailable,
        ),
    )
    if outcome.notes == "failed":
        _count("PagerDutyNoteFailed")
    if outcome.session is None or outcome.ignored is not None:
        return _ignored(outcome.ignored or Ignored("the incident has no session"))
    logger.info(f"postmortem session {outcome.status}", extra={"session_id": outcome.session.session_id})
    _outcome(outcome.status, {"started": "SessionStarted", "messaged": "Messaged"}.get(outcome.status, "Duplicate"))
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
def planned_failure(error: BridgeError) -> dict[str, Any]:
    if error.status_code >= 500:
        logger.error(error.message, exc_info=error.__cause__)
    else:
        logger.warning(error.message)
    _outcome(error.metric)
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return _json(error.status_code, {"message": error.message}, headers)


@app.exception_handler(Exception)
def unplanned_failure(error: Exception) -> dict[str, Any]:
    # The answer names nothing: the traceback goes to the log, never to the caller.
    logger.exception("unexpected error")
    _outcome("UnexpectedError")
    return _json(500, {"message": "internal error"})


def _summarize(answer: dict[str, Any], began: float) -> None:
    """One line per delivery: what happened, the HTTP status and the milliseconds in each dependency (no body, no
    secret); and each dependency's time as a latency metric for the dashboard's percentiles."""
    spent = timings.milliseconds()
    logger.info(
        "delivery",
        extra={
            "outcome": _summary.get("outcome", "unknown"),
            **({"reason": _summary["reason"]} if "reason" in _summary else {}),
            "http_status": answer.get("statusCode"),
            **{f"{name}_ms": value for name, value in spent.items()},
            "total_ms": round((time.perf_counter() - began) * 1000, 1),
        },
    )
    for name, value in spent.items():
        if value:
            metrics.add_metric(name=LATENCY_METRICS[name], unit=MetricUnit.Milliseconds, value=value)


# clear_state: keys appended for one delivery (incident_id, event_id…) must not leak into the next one's logs.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracing.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    began = time.perf_counter()
    _summary.clear()
    timings.reset()
    answer = app.resolve(event, context)
    _summarize(answer, began)
    return answer
