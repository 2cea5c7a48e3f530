"""Lambda entry point of the scheduled follow-up (EventBridge, `FollowUpSchedule`): follows each open Devin session
until it is done, and puts on the PagerDuty incident, once each, its pull requests' links, its summary, and what
stops it (waiting for a person, billing or quota, an error).

Part of the PagerDuty feature: without a PagerDuty API key in Parameter Store a run does nothing at all (no ledger
read, no Devin request), so that a deployment that has not opted in behaves exactly as it did before.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from bridge.dependencies import Dependencies, make_dependencies
from bridge.devin.client import DevinClient
from bridge.follow import Report, follow_up
from bridge.pagerduty.client import PagerDutyClient
from bridge.postmortem import NOTE_SECONDS, NoteWriter
from bridge.result.links import LinkPolicy
from bridge.scrub import Scrubber
from bridge.timing import Timings
from bridge.tracing import Tracing

logger = Logger()
logging.getLogger("botocore").setLevel(logging.INFO)  # as app.py: DEBUG would log decrypted parameters
tracing = Tracing(patch_modules=("botocore",))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "PagerDutyPostmortem")

# Kept back from the run for its last ledger writes.
RESERVE_SECONDS = 5.0
DEFAULT_TIMEOUT_SECONDS = 120.0


@functools.cache
def dependencies() -> Dependencies:
    return make_dependencies(Timings(), on_requests_loaded=tracing.patch_requests)


def _remaining_seconds(context: Any) -> float:
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    return remaining_ms() / 1000 if callable(remaining_ms) else DEFAULT_TIMEOUT_SECONDS


@logger.inject_lambda_context(clear_state=True)
@tracing.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies()
    credentials = deps.parameters.get().credentials
    if not credentials.pagerduty_api_key:
        logger.info("follow-up is off: no PagerDuty API key in Parameter Store")
        return _report(Report(), off=True)
    if not (credentials.devin_api_key and credentials.devin_org_id):
        # Nothing can be read; every open session waits for the next run.
        logger.error("follow-up cannot run: the Devin API key or organization id is not configured")
        return _report(Report(failed=1))
    settings = deps.settings
    notes = None
    if credentials.writes_pagerduty:
        pagerduty = PagerDutyClient(
            settings.pagerduty_api_base_url,
            credentials.pagerduty_api_key,
            deps.pagerduty_http,
            from_email=credentials.pagerduty_from_email,
        )
        notes = NoteWriter(pagerduty, lease_seconds=2 * NOTE_SECONDS + RESERVE_SECONDS)
    report = follow_up(
        ledger=deps.ledger,
        devin=DevinClient(
            settings.devin_api_base_url, credentials.devin_api_key, credentials.devin_org_id, deps.devin_http
        ),
        notes=notes,
        follow_up_days=settings.follow_up_days,
        deadline=time.monotonic() + _remaining_seconds(context) - RESERVE_SECONDS,
        scrubber=Scrubber(credentials.secrets()),
        links=LinkPolicy.with_hosts(settings.pull_request_hosts),
        ask_for_result=settings.ask_for_missing_result,
    )
    logger.info("follow-up run", extra=report.as_dict())
    return _report(report)


def _report(report: Report, *, off: bool = False) -> dict[str, Any]:
    """The run's counts as metrics, zeros included, so that the dashboard and the alarm always have a point; and
    as the invocation's answer (`off` when the PagerDuty feature is not configured)."""
    for name, value in (
        ("FollowUpFollowed", report.followed),
        ("FollowUpUpdated", report.updated),
        ("FollowUpFailed", report.failed),
        # Structured results newly found valid, invalid, or missing from a session that is done.
        ("PostmortemResultValid", report.results_valid),
        ("PostmortemResultInvalid", report.results_invalid),
        ("PostmortemResultMissing", report.results_missing),
        # Sessions newly found waiting for a person, stopped for billing, quota or a usage limit, or failed.
        ("SessionsWaiting", report.sessions_waiting),
        ("SessionsStopped", report.sessions_stopped),
        ("SessionsFailed", report.sessions_failed),
        # Links from sessions not passed on; sessions given up after failing the same way run after run.
        ("LinksDropped", report.links_dropped),
        ("FollowUpGivenUp", report.given_up),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    return {**report.as_dict(), "off": off}
