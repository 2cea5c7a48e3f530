"""The DynamoDB ledger: one item per incident, claimed with a conditional write before Devin is called."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from .devin import Session
from .errors import Unavailable
from .pagerduty import Incident, WebhookEvent
from .prompt import resolved_at

CLAIMED = "claimed"  # a delivery is talking to Devin right now
STARTED = "started"  # the session exists and is recorded
UNKNOWN = "unknown"  # a create call's outcome was lost: the next delivery looks the session up by tag first

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


class LedgerUnavailable(Unavailable):
    """DynamoDB could not be read or written; nothing was started."""


@dataclass(frozen=True)
class Claim:
    incident_id: str
    token: str
    reconcile: bool  # the previous holder may have created a session that was never recorded
    lost_at: float | None = None  # when that earlier attempt's outcome was lost (epoch seconds)


@dataclass(frozen=True)
class Recorded:
    """The incident already has a session."""

    session: Session


@dataclass(frozen=True)
class Held:
    """Another delivery holds a live claim on the incident."""

    retry_after: int


def _metadata(incident: Incident, event: WebhookEvent) -> dict[str, Any]:
    fields = {
        "event_id": event.id,
        "event_type": event.event_type,
        "incident_number": incident.number,
        "title": incident.title,
        "service_id": incident.service_id,
        "service_name": incident.service_name,
        "urgency": incident.urgency,
        "priority": incident.priority,
        "html_url": incident.html_url,
        "created_at": incident.created_at,
        "resolved_at": resolved_at(event),
    }
    return {name: value for name, value in fields.items() if value not in (None, "")}


def _update(
    values: Mapping[str, Any], remove: tuple[str, ...] = (), keep_first: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """UpdateExpression arguments that SET `values`, SET `keep_first` unless already set, and REMOVE `remove`,
    every name behind a placeholder."""
    keep_first = keep_first or {}
    names = {f"#{name}": name for name in (*values, *keep_first, *remove)}
    expression = "SET " + ", ".join(
        [f"#{name} = :{name}" for name in values]
        + [f"#{name} = if_not_exists(#{name}, :{name})" for name in keep_first]
    )
    values = {**values, **keep_first}
    if remove:
        expression += " REMOVE " + ", ".join(f"#{name}" for name in remove)
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {f":{name}": _serialize(value) for name, value in values.items()},
    }


class Ledger:
    def __init__(
        self,
        client: Any,
        table_name: str,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retention = retention_days * 86400
        self._clock = clock

    def claim(self, incident: Incident, event: WebhookEvent, lease_seconds: float) -> Claim | Recorded | Held:
        """Take the incident, unless it has a session or a live claim: one conditional write either way."""
        now = self._clock()
        token = uuid.uuid4().hex
        values = {
            **_metadata(incident, event),
            "status": CLAIMED,
            "claim_token": token,
            "claim_expires_at": math.ceil(now + lease_seconds),
            "recorded_at": _iso(now),
            "expires_at": int(now) + self._retention,
        }
        update = _update(values)
        update["ExpressionAttributeValues"].update(
            {":unknown": {"S": UNKNOWN}, ":claimed": {"S": CLAIMED}, ":now": {"N": str(int(now))}}
        )
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"incident_id": {"S": incident.id}},
                # A claim whose lease ran out belonged to an invocation that is certainly dead by now.
                ConditionExpression=(
                    "attribute_not_exists(incident_id) OR #status = :unknown "
                    "OR (#status = :claimed AND #claim_expires_at < :now)"
                ),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise LedgerUnavailable("could not claim the incident in the ledger") from error
            old = _item(error.response.get("Item"))
            if old.get("status") == STARTED and old.get("session_id"):
                return Recorded(Session(str(old["session_id"]), _optional_str(old.get("session_url"))))
            try:
                wait = int(old["claim_expires_at"]) - int(now)
            except (KeyError, TypeError, ValueError):
                wait = 1
            return Held(retry_after=max(1, wait))
        except BotoCoreError as error:
            raise LedgerUnavailable("could not claim the incident in the ledger") from error
        previous = _item(answer.get("Attributes"))
        # A dead holder's create, if it sent one, was lost no later than its lease ran out.
        lost_at = previous.get("outcome_lost_at", previous.get("claim_expires_at"))
        return Claim(incident.id, token, reconcile=bool(previous), lost_at=None if lost_at is None else float(lost_at))

    def record(self, claim: Claim, session: Session) -> None:
        values: dict[str, Any] = {
            "status": STARTED,
            "session_id": session.session_id,
            "recorded_at": _iso(self._clock()),
        }
        if session.url:
            values["session_url"] = session.url
        remove = ("claim_token", "claim_expires_at", "outcome_lost_at")
        self._write(claim, _update(values, remove=remove), "record the session")

    def mark_unknown(self, claim: Claim) -> None:
        now = self._clock()
        update = _update(
            {"status": UNKNOWN, "recorded_at": _iso(now)},
            remove=("claim_token", "claim_expires_at"),
            keep_first={"outcome_lost_at": int(now)},  # the first loss: later failed lookups must not extend it
        )
        self._write(claim, update, "mark the outcome unknown")

    def release(self, claim: Claim) -> None:
        """Give the incident back, so that PagerDuty's retry can start it.

        A claim taken over from an unknown outcome goes back to unknown, not away: whatever failed this time,
        a session from the earlier attempt may still exist and the next delivery must look for it first.
        """
        if claim.reconcile:
            self.mark_unknown(claim)
            return
        self._call(
            "delete_item",
            "release the claim",
            TableName=self._table,
            Key={"incident_id": {"S": claim.incident_id}},
            ConditionExpression="claim_token = :token",
            ExpressionAttributeValues={":token": {"S": claim.token}},
        )

    def _write(self, claim: Claim, update: dict[str, Any], what: str) -> None:
        update["ExpressionAttributeValues"][":token"] = {"S": claim.token}
        self._call(
            "update_item",
            what,
            TableName=self._table,
            Key={"incident_id": {"S": claim.incident_id}},
            ConditionExpression="claim_token = :token",
            **update,
        )

    def _call(self, operation: str, what: str, **kwargs: Any) -> None:
        try:
            getattr(self._client, operation)(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                # Our lease ran out and another delivery took the incident over; it reconciles by tag,
                # so there is nothing left for this one to do.
                return
            raise LedgerUnavailable(f"could not {what} in the ledger") from error
        except BotoCoreError as error:
            raise LedgerUnavailable(f"could not {what} in the ledger") from error


def _item(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: _deserialize(value) for name, value in (raw or {}).items()}


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
