"""Makes the handler's own DynamoDB and SSM calls fail the way the services fail them.

A hook on botocore's `before-call` event answers a chosen call with the service's error instead of sending it,
so the handler gets exactly what botocore raises after its own retries: the modelled ClientError subclass
(`ProvisionedThroughputExceededException`, `InternalServerError`, ...), a connection error, or, for a call that
DynamoDB applied but whose answer was lost, a read timeout after the write took effect. Calls are named by the
step they are in the ledger's flow, read from the request itself, so a test can say "fail the final write".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

# The ledger's steps, as the request shows them.
CLAIM = "claim"  # the conditional UpdateItem that takes the incident
RECORD = "record"  # the final write: status started, with the session id
MARK_UNKNOWN = "mark_unknown"  # status unknown after a lost answer or a failed final write
RELEASE = "release"  # DeleteItem: the claim given back after a definite failure
READ_SECRETS = "read_secrets"  # SSM GetParameters

# How a call fails.
CONNECTION = "connection"  # the endpoint could not be reached (nothing was applied)
APPLIED_THEN_LOST = "applied-then-lost"  # the write took effect, then the answer timed out
KILLED = "killed"  # the invocation dies here: nothing after it runs, no clean-up either
SERVER_ERRORS = frozenset({"InternalServerError", "InternalFailure", "ServiceUnavailable"})


class InvocationKilled(BaseException):
    """Stands for Lambda killing the process: a BaseException, so no `except Exception` clean-up runs."""


def step_of(service: str, operation: str, request: dict[str, Any]) -> str:
    """Which step of the handler's flow a request belongs to."""
    if service == "ssm":
        return READ_SECRETS if operation == "GetParameters" else operation
    if operation == "DeleteItem":
        return RELEASE
    body = json.loads(request.get("body") or b"{}")
    if body.get("ConditionExpression", "").startswith("attribute_not_exists"):
        return CLAIM
    status = body.get("ExpressionAttributeValues", {}).get(":status", {}).get("S")
    return {"started": RECORD, "unknown": MARK_UNKNOWN}.get(status, operation)


@dataclass
class _Rule:
    step: str
    how: str
    times: int | None  # None: every matching call


class AwsFaults:
    """Scripted failures for the handler's AWS calls; `steps` lists every step the handler called, in order."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []
        self._lose_answer = False
        self.steps: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def fail(self, step: str, how: str, *, times: int | None = None) -> None:
        """Fail the next `times` calls of `step` (all of them when None) with an error code or CONNECTION,
        APPLIED_THEN_LOST or KILLED."""
        self._rules.append(_Rule(step, how, times))

    def heal(self) -> None:
        """The service is back: every later call succeeds."""
        self._rules.clear()

    @contextmanager
    def installed(self) -> Iterator[AwsFaults]:
        # The handler's clients come from boto3's default session and copy its hooks when they are created,
        # so this must be installed before the first delivery of a test (fixtures are).
        session = boto3.DEFAULT_SESSION or boto3.setup_default_session() or boto3.DEFAULT_SESSION
        session.events.register("before-call", self._before_call)
        session.events.register("after-call", self._after_call)
        try:
            yield self
        finally:
            session.events.unregister("before-call", self._before_call)
            session.events.unregister("after-call", self._after_call)

    def _take(self, step: str) -> _Rule | None:
        for rule in self._rules:
            if rule.step == step and rule.times != 0:
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict] | None:
        step = step_of(model.service_model.service_name, model.name, params)
        self.steps.append(step)
        rule = self._take(step)
        if rule is None:
            return None
        self.failed.append((step, rule.how))
        if rule.how == KILLED:
            raise InvocationKilled(step)
        if rule.how == CONNECTION:
            raise EndpointConnectionError(endpoint_url=params["url"])
        if rule.how == APPLIED_THEN_LOST:
            self._lose_answer = True
            return None  # the real call goes through; its answer is lost in _after_call
        status = 500 if rule.how in SERVER_ERRORS else 400
        parsed = {
            "Error": {"Code": rule.how, "Message": f"{rule.how} injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse(params["url"], status, {}, None), parsed

    def _after_call(self, **_: Any) -> None:
        if self._lose_answer:
            self._lose_answer = False
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")
