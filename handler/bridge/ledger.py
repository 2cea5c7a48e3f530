"""The DynamoDB ledger: one item per incident, claimed with a conditional write before Devin is called.

An incident goes `claimed` → `started` (or `unknown` when a create call's answer was lost). While a delivery (or
the scheduled follow-up) works on a started incident, posting a note on it or forwarding an event to its session,
it holds the same lease a start claim uses (`claim_token`, `claim_expires_at`), so that only one of them acts at
a time.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from .devin.prompt import resolved_at
from .devin.session import Session, SessionState
from .errors import Unavailable
from .pagerduty.notes import MARKED, PULL_REQUEST, SESSION, SUMMARY, NoteText
from .webhook.event import Incident, WebhookEvent

CLAIMED = "claimed"  # a delivery is talking to Devin right now
STARTED = "started"  # the session exists and is recorded
UNKNOWN = "unknown"  # a create call's outcome was lost: the next delivery looks the session up by tag first

# Devin answered 404 for the session (session_status): nothing is forwarded to it any more.
NOT_FOUND = "not_found"

# The sparse index the scheduled follow-up reads: only items with FOLLOWING set are in it (template.yaml).
FOLLOWING_INDEX = "following"
FOLLOWING = "following"
OPEN = "open"
# When the last event was delivered to the session as a message (epoch seconds; absent: none since it started).
DELIVERED_EPOCH = "delivered_epoch"
# Which time the item is in the follow-up's index: 1 from the start, one more each time a forwarded event puts it
# back after it had left (absent: 1).
EPISODE = "follow_episode"
STATUS_DETAIL = "session_status_detail"

_to_dynamodb = TypeSerializer().serialize


def _serialize(value: Any) -> dict[str, Any]:
    """A value as DynamoDB stores it: floats as Decimal (boto3 refuses floats), a float that is not finite as null."""
    return _to_dynamodb(_decimals(value))


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value)) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _decimals(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [_decimals(child) for child in value]
    return value


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
    """The incident already has a session; `item` is its ledger item as it was."""

    item: Mapping[str, Any]


@dataclass(frozen=True)
class Held:
    """Another delivery holds a live claim on the incident."""

    retry_after: int


@dataclass(frozen=True)
class Refused:
    """The incident could not be taken to forward an event; `item` says why (empty when it has no item)."""

    item: Mapping[str, Any]
    retry_after: int


@dataclass(frozen=True)
class Lease:
    """The right to act on a started incident (post its notes) for a while; `item` is the item as it was taken."""

    incident_id: str
    token: str
    item: Mapping[str, Any]
    # The lease was taken over from a holder whose time ran out: it may have posted a note it never recorded.
    taken_over: bool = False


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
    values: Mapping[str, Any],
    remove: tuple[str, ...] = (),
    keep_first: Mapping[str, Any] | None = None,
    add: Mapping[str, set[str]] | None = None,
    delete: Mapping[str, set[str]] | None = None,
    append: Mapping[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """UpdateExpression arguments that SET `values`, SET `keep_first` unless already set, append to lists, REMOVE
    `remove`, and ADD or DELETE members of string sets, every name behind a placeholder."""
    keep_first = keep_first or {}
    append = append or {}
    add = {name: members for name, members in (add or {}).items() if members}
    delete = {name: members for name, members in (delete or {}).items() if members}
    names = {f"#{name}": name for name in (*values, *keep_first, *append, *remove, *add, *delete)}
    clauses = []
    sets = (
        [f"#{name} = :{name}" for name in values]
        + [f"#{name} = if_not_exists(#{name}, :{name})" for name in keep_first]
        + [f"#{name} = list_append(if_not_exists(#{name}, :empty_list), :{name})" for name in append]
    )
    if sets:
        clauses.append("SET " + ", ".join(sets))
    if remove:
        clauses.append("REMOVE " + ", ".join(f"#{name}" for name in remove))
    if add:
        clauses.append("ADD " + ", ".join(f"#{name} :{name}" for name in add))
    if delete:
        clauses.append("DELETE " + ", ".join(f"#{name} :{name}" for name in delete))
    serialized = {f":{name}": _serialize(value) for name, value in {**values, **keep_first, **append}.items()}
    if append:
        serialized[":empty_list"] = {"L": []}
    serialized.update({f":{name}": {"SS": sorted(members)} for name, members in {**add, **delete}.items()})
    return {
        "UpdateExpression": " ".join(clauses),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": serialized,
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

    # --- starting a session

    def claim(self, incident: Incident, event: WebhookEvent, lease_seconds: float) -> Claim | Recorded | Held:
        """Take the incident, unless it has a session or a live claim: one conditional write either way."""
        now = self._clock()
        token = uuid.uuid4().hex
        values = {
            **_metadata(incident, event),
            "status": CLAIMED,
            "claim_token": token,
            "claim_expires_at": math.ceil(now + lease_seconds),
            "recorded_at": iso_time(now),
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
                return Recorded(old)
            return Held(retry_after=_wait(old, now))
        except BotoCoreError as error:
            raise LedgerUnavailable("could not claim the incident in the ledger") from error
        previous = _item(answer.get("Attributes"))
        # A dead holder's create, if it sent one, was lost no later than its lease ran out.
        lost_at = previous.get("outcome_lost_at", previous.get("claim_expires_at"))
        return Claim(incident.id, token, reconcile=bool(previous), lost_at=None if lost_at is None else float(lost_at))

    def record(
        self,
        claim: Claim,
        session: Session,
        *,
        follow: bool = False,
        hold_seconds: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Lease | None:
        """Record the session. `follow` puts the item in the follow-up's index; with `hold_seconds` the claim
        stays held that much longer, as a lease for what comes next (the session note), and is returned.
        `details` are kept beside it (SessionRequest.ledger_details: the result's schema, the computed figures)."""
        now = self._clock()
        values: dict[str, Any] = {
            **(details or {}),
            "status": STARTED,
            "session_id": session.session_id,
            "recorded_at": iso_time(now),
        }
        if session.url:
            values["session_url"] = session.url
        if follow:
            values.update({FOLLOWING: OPEN, "session_recorded_epoch": int(now)})
        remove: tuple[str, ...] = ("outcome_lost_at",)
        if hold_seconds is None:
            remove = ("claim_token", "claim_expires_at", "outcome_lost_at")
        else:
            values["claim_expires_at"] = math.ceil(now + hold_seconds)
        held = self._write(claim, _update(values, remove=remove), "record the session")
        return Lease(claim.incident_id, claim.token, {}) if held and hold_seconds is not None else None

    def mark_unknown(self, claim: Claim) -> None:
        now = self._clock()
        update = _update(
            {"status": UNKNOWN, "recorded_at": iso_time(now)},
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

    # --- acting on a started incident: its notes

    def lease(self, incident_id: str, lease_seconds: float) -> Lease | Held:
        """Hold a started incident for `lease_seconds`, unless someone else holds it: one conditional write."""
        taken = self._hold(incident_id, lease_seconds, "", {}, {}, "take the incident's lease")
        return Held(taken.retry_after) if isinstance(taken, Refused) else taken

    def note_posted(self, lease: Lease, note: NoteText, *, release: bool = False, user_id: str | None = None) -> None:
        """Record one posted note: the session note, a summary note, a pull request's note, or a note marked by its
        spell or episode (notes_posted); `user_id`, the PagerDuty user who wrote it, is kept once learned."""
        marker = note.marker
        values: dict[str, Any] = {}
        add: dict[str, set[str]] = {}
        if note.kind == PULL_REQUEST:
            add["pull_request_notes_posted"] = {note.pull_request or ""}
        elif note.kind == MARKED:
            add[NOTES_POSTED] = {marker}
        else:
            values[_POSTED_AT[note.kind]] = iso_time(self._clock())
        if note.digest:
            values[SUMMARY_DIGEST] = note.digest
        delete = {"notes_unconfirmed": {marker}} if marker in lease.item.get("notes_unconfirmed", ()) else None
        remove = ("claim_token", "claim_expires_at") if release else ()
        keep_first = {PAGERDUTY_USER: user_id} if user_id else None
        update = _update(values, remove=remove, add=add, delete=delete, keep_first=keep_first)
        self._write(lease, update, "record a posted note")

    def note_unconfirmed(self, lease: Lease, marker: str, *, release: bool = False) -> None:
        """A note's post was sent but its answer lost: before posting it again, look for it among the notes."""
        remove = ("claim_token", "claim_expires_at") if release else ()
        self._write(lease, _update({}, remove=remove, add={"notes_unconfirmed": {marker}}), "record an unsure note")

    def release_lease(self, lease: Lease) -> None:
        self._write(lease, _update({}, remove=("claim_token", "claim_expires_at")), "release the incident's lease")

    # --- forwarding an event to a started session

    def forward_lease(
        self, incident_id: str, event: WebhookEvent, lease_seconds: float, *, early_only: bool = False
    ) -> Lease | Refused:
        """Hold a started incident to forward `event` to its session: one conditional write that succeeds only if
        the session exists, nobody holds the incident, the event is neither the one that started the session nor
        one forwarded before, and (`early_only`) the session started before the incident resolved."""
        condition = (
            " AND NOT contains(#forwarded_event_ids, :event_id) AND #event_id <> :event_id"
            " AND (attribute_not_exists(#session_status) OR #session_status <> :not_found)"
        )
        names = {
            "#forwarded_event_ids": "forwarded_event_ids",
            "#event_id": "event_id",
            "#session_status": "session_status",
        }
        values = {":event_id": {"S": event.id}, ":not_found": {"S": NOT_FOUND}}
        if early_only:
            condition += " AND #event_type <> :resolved"
            names["#event_type"] = "event_type"
            values[":resolved"] = {"S": "incident.resolved"}
        return self._hold(incident_id, lease_seconds, condition, names, values, "take the incident to forward an event")

    def _hold(
        self,
        incident_id: str,
        lease_seconds: float,
        condition: str,
        names: Mapping[str, str],
        values: Mapping[str, Any],
        what: str,
    ) -> Lease | Refused:
        """Take a started incident's lease when nobody holds it and `condition` (more ANDed terms) holds; else the
        item as it was (empty when there is none), to tell why."""
        now = self._clock()
        token = uuid.uuid4().hex
        update = _update({"claim_token": token, "claim_expires_at": math.ceil(now + lease_seconds)})
        update["ExpressionAttributeNames"].update({"#status": "status", **names})
        update["ExpressionAttributeValues"].update({":started": {"S": STARTED}, ":now": {"N": str(int(now))}, **values})
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"incident_id": {"S": incident_id}},
                ConditionExpression=(
                    "#status = :started AND (attribute_not_exists(#claim_expires_at) OR #claim_expires_at < :now)"
                    + condition
                ),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise LedgerUnavailable(f"could not {what} in the ledger") from error
            old = _item(error.response.get("Item"))
            return Refused(old, _wait(old, now))
        except BotoCoreError as error:
            raise LedgerUnavailable(f"could not {what} in the ledger") from error
        old = _item(answer.get("Attributes"))
        return Lease(incident_id, token, old, taken_over="claim_token" in old)

    def record_forward(
        self,
        lease: Lease,
        event: WebhookEvent,
        *,
        confirmed: bool = True,
        sent_at: float | None = None,
        follow: bool = False,
    ) -> None:
        """Record `event` as forwarded (with its type and times) and give the incident back. `sent_at` is when the
        message went out: the session has seen it once it reports an update from then on. With `follow` the item is
        put back in the follow-up's index (a message resumes a suspended session, which may change its result): a
        new follow-up episode when it had left the index."""
        now = self._clock()
        entry: dict[str, Any] = {
            "event_id": event.id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at,
            "forwarded_at": iso_time(now),
        }
        if not confirmed:
            # Devin's answer was lost twice: the message was sent at least once, maybe twice, maybe never.
            entry["confirmed"] = False
        values: dict[str, Any] = {DELIVERED_EPOCH: int(sent_at if sent_at is not None else now)}
        if event.event_type == "incident.resolved" and event.occurred_at:
            values["resolved_at"] = event.occurred_at
        if follow and FOLLOWING not in lease.item:
            values[FOLLOWING] = OPEN
            if "session_recorded_epoch" in lease.item:
                values[EPISODE] = int(lease.item.get(EPISODE) or 1) + 1
            else:  # never followed before (the PagerDuty key came later): its first episode starts now
                values["session_recorded_epoch"] = int(now)
        unsure = {event.id} if event.id in lease.item.get("forwards_unconfirmed", ()) else None
        update = _update(
            values,
            remove=("claim_token", "claim_expires_at"),
            add={"forwarded_event_ids": {event.id}},
            delete={"forwards_unconfirmed": unsure} if unsure else None,
            append={"forwarded": [entry]},
        )
        self._write(lease, update, "record a forwarded event")

    def forward_unconfirmed(self, lease: Lease, event: WebhookEvent) -> None:
        """The message was sent but Devin's answer lost: the retry sends it once more, and no more than that."""
        update = _update({}, remove=("claim_token", "claim_expires_at"), add={"forwards_unconfirmed": {event.id}})
        self._write(lease, update, "record an unconfirmed message")

    def session_gone(self, lease: Lease) -> None:
        """Devin no longer has the session: nothing more is forwarded to it, and the follow-up stops."""
        update = _update({"session_status": NOT_FOUND}, remove=("claim_token", "claim_expires_at", FOLLOWING))
        self._write(lease, update, "record that the session is gone")

    # --- the scheduled follow-up

    def open_sessions(self) -> Iterator[dict[str, Any]]:
        """Every item in the follow-up's sparse index (sessions being followed), oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": FOLLOWING_INDEX,
            "KeyConditionExpression": "#following = :open",
            "ExpressionAttributeNames": {"#following": FOLLOWING},
            "ExpressionAttributeValues": {":open": {"S": OPEN}},
        }
        while True:
            try:
                page = self._client.query(**kwargs)
            except (ClientError, BotoCoreError) as error:
                raise LedgerUnavailable("could not read the sessions being followed") from error
            yield from (_item(raw) for raw in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def record_follow(
        self,
        incident_id: str,
        state: SessionState | None,
        *,
        stop: bool,
        status: str = "",
        result: Mapping[str, Any] | None = None,
        forget: tuple[str, ...] = (),
        values: Mapping[str, Any] | None = None,
        delivered: Any = None,
    ) -> None:
        """What the follow-up read of the session; `stop` takes the item out of the follow-up's index. `result` holds
        what it made of the session's structured result (result_status, postmortem_result, result_error…), `values`
        what else it keeps (the waiting and stopped spells), and `forget` the attributes that no longer hold.

        `delivered` is the item's DELIVERED_EPOCH as the follow-up read it: when an event reached the session since,
        the item stays in the index (the session is working on it), and only the rest is recorded."""
        written: dict[str, Any] = {"followed_at": iso_time(self._clock()), **(values or {}), **(result or {})}
        remove = forget
        if state is not None:
            written.update(session_status=state.status, pull_request_urls=list(state.pull_request_urls))
            if state.status_detail is not None:
                written[STATUS_DETAIL] = state.status_detail
            else:
                remove = (*remove, STATUS_DETAIL)
            if state.acus_consumed is not None:
                written["acus_consumed"] = acus(state.acus_consumed)
        elif status:
            written["session_status"] = status
        key = {"incident_id": {"S": incident_id}}
        if stop:
            update = _update(written, remove=(FOLLOWING, *remove))
            if delivered is None:
                condition = f"attribute_exists(incident_id) AND attribute_not_exists(#{DELIVERED_EPOCH})"
            else:
                condition = f"attribute_exists(incident_id) AND #{DELIVERED_EPOCH} = :delivered"
                update["ExpressionAttributeValues"][":delivered"] = _serialize(delivered)
            update["ExpressionAttributeNames"][f"#{DELIVERED_EPOCH}"] = DELIVERED_EPOCH
            if self._call(
                "update_item",
                "record what the follow-up read",
                TableName=self._table,
                Key=key,
                ConditionExpression=condition,
                **update,
            ):
                return
        # Never recreate an item someone forgot meanwhile (a failed condition here is that: nothing to record).
        self._call(
            "update_item",
            "record what the follow-up read",
            TableName=self._table,
            Key=key,
            ConditionExpression="attribute_exists(incident_id)",
            **_update(written, remove=remove),
        )

    # --- plumbing

    def _write(self, holder: Claim | Lease, update: dict[str, Any], what: str) -> bool:
        """A write conditioned on holding the claim or lease; False when someone else took the incident over."""
        update["ExpressionAttributeValues"][":token"] = {"S": holder.token}
        return self._call(
            "update_item",
            what,
            TableName=self._table,
            Key={"incident_id": {"S": holder.incident_id}},
            ConditionExpression="claim_token = :token",
            **update,
        )

    def _call(self, operation: str, what: str, **kwargs: Any) -> bool:
        try:
            getattr(self._client, operation)(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                # Our lease ran out and another delivery took the incident over; it reconciles by tag,
                # so there is nothing left for this one to do.
                return False
            raise LedgerUnavailable(f"could not {what} in the ledger") from error
        except BotoCoreError as error:
            raise LedgerUnavailable(f"could not {what} in the ledger") from error
        return True


# The attribute that records a posted note of each kind but the pull requests' (a set of URLs).
_POSTED_AT = {SESSION: "session_note_posted_at", SUMMARY: "summary_note_posted_at"}


# The markers of the notes of kind MARKED that were posted; and what the last summary note was made from.
NOTES_POSTED = "notes_posted"
SUMMARY_DIGEST = "summary_digest"
# The PagerDuty user the bridge's notes on the incident are written by, learned from the first one it posted.
PAGERDUTY_USER = "pagerduty_user_id"


def note_recorded(item: Mapping[str, Any], note: NoteText) -> bool:
    """Whether the ledger item records `note` as posted."""
    if note.kind == PULL_REQUEST:
        return note.pull_request in set(item.get("pull_request_notes_posted", ()))
    if note.kind == MARKED:
        return note.marker in set(item.get(NOTES_POSTED, ()))
    return bool(item.get(_POSTED_AT[note.kind]))


def acus(value: float) -> Decimal:
    """ACUs as DynamoDB stores numbers (boto3 refuses floats)."""
    return Decimal(str(value))


def plain(value: Any) -> Any:
    """An item's values as JSON has them: DynamoDB's numbers (Decimal) as int or float again, sets as sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {key: plain(child) for key, child in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(plain(child) for child in value)
    if isinstance(value, list | tuple):
        return [plain(child) for child in value]
    return value


def recorded_session(item: Mapping[str, Any]) -> Session:
    """The session a started item records."""
    return Session(str(item["session_id"]), _optional_str(item.get("session_url")))


def _wait(item: Mapping[str, Any], now: float) -> int:
    try:
        return max(1, int(item["claim_expires_at"]) - int(now))
    except (KeyError, TypeError, ValueError):
        return 1


def _item(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: _deserialize(value) for name, value in (raw or {}).items()}


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def iso_time(epoch: float) -> str:
    """An epoch as the ledger writes times: ISO 8601 in UTC, to the second, ending in Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
