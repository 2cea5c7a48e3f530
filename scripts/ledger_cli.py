"""The ledger for operators: list recent incidents, show one, forget one so that its next delivery starts afresh.

    scripts/ledger list       (--stack NAME | --table NAME | --local [--port P]) [--since 7d] [--status S] [--limit 50]
    scripts/ledger show ID    (--stack NAME | --table NAME | --local [--port P])
    scripts/ledger forget ID  (--stack NAME | --table NAME | --local [--port P]) [--yes] [--force]
    scripts/ledger scrub      (--stack NAME | --local [--port P]) [--dry-run]

Every command takes --json (the items as JSON, for scripts). `list` queries the table's by-status index, one status
at a time; it never scans the table. `forget` deletes the incident's item, so that the next qualifying delivery for
it starts a new Devin session; it does not stop the old one. `scrub` passes what every item keeps of a session's
output (its result's compact copy, error and evidence, its pull request links) through the follow-up's scrub, with
the bridge's secrets read from the stack's Parameter Store prefix: for items written before the follow-up scrubbed
secrets in every form. Notes already on PagerDuty incidents are not changed.

Calls made: cloudformation:DescribeStacks (--stack only), dynamodb:Query on index/by-status (list, scrub),
dynamodb:GetItem (show, forget), dynamodb:DeleteItem (forget), dynamodb:UpdateItem and ssm:GetParameters with
kms:Decrypt (scrub): what the stack's LedgerOperatorPolicy grants.

Exit status: 0 done; 1 no such incident, or forget refused or declined; 2 wrong arguments, or AWS could not be
reached or refused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

HANDLER = Path(__file__).resolve().parent.parent / "handler"
if str(HANDLER) not in sys.path:
    sys.path.append(str(HANDLER))

from bridge.ledger import CLAIMED, STARTED, UNKNOWN, plain  # noqa: E402
from bridge.result.schema import Unreadable, scrubbed  # noqa: E402
from bridge.scrub import Scrubber  # noqa: E402
from bridge.text import neutralise_markers, remove_links  # noqa: E402

INDEX = "by-status"
STATUSES = (STARTED, CLAIMED, UNKNOWN)
STATUS_MEANING = {
    STARTED: "the session is recorded",
    CLAIMED: "a delivery is starting the session, or died doing it",
    UNKNOWN: "a create call's answer was lost; the next delivery looks the session up by tag first",
}
POLICY_HINT = "the operator needs the stack's LedgerOperatorPolicy (stack output LedgerOperatorPolicyArn)"
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
BAD_CREDENTIALS = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException"}
SINCE = re.compile(r"(\d+)([mhdw])")
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
EPILOG = (
    "Needs the stack's LedgerOperatorPolicy (stack output LedgerOperatorPolicyArn). Exit status: 0 done; 1 no such "
    "incident, or forget refused or declined; 2 wrong arguments, or AWS unreachable or refusing."
)
_deserialize = TypeDeserializer().deserialize
PROMPT = "Forget incident {id}? Its next qualifying delivery will start a new Devin session. [y/N] "


class LedgerError(Exception):
    """Exit status 2: the ledger could not be found or reached, or AWS refused. One line meant for a person."""


class Refused(Exception):
    """Exit status 1: no such incident, or a forget that was refused or declined."""


@dataclass(frozen=True)
class Table:
    client: Any  # a boto3 DynamoDB client
    name: str
    where: str  # "table NAME in REGION", for messages

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return _call(self.client, operation, self.where, TableName=self.name, **kwargs)


# --- finding the table


def open_table(args: argparse.Namespace) -> Table:
    if args.local:
        return _local_table(args.port)
    # botocore reads only AWS_DEFAULT_REGION; the AWS CLI lets AWS_REGION win over it, and so does this.
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
    region = session.region_name
    if not region:
        raise LedgerError("no AWS region: set AWS_REGION, or use a profile that has one")
    config = Config(retries={"mode": "standard"})
    table = args.table or _stack_table(session.client("cloudformation", config=config), args.stack, region)
    return Table(session.client("dynamodb", config=config), table, f"table {table} in {region}")


def _stack_table(cloudformation: Any, stack: str, region: str) -> str:
    stacks = _call(cloudformation, "describe_stacks", f"stack {stack} in {region}", StackName=stack)["Stacks"]
    outputs = {output["OutputKey"]: output.get("OutputValue") for output in stacks[0].get("Outputs") or []}
    if not outputs.get("LedgerTableName"):
        raise LedgerError(f"stack {stack} in {region} has no output LedgerTableName: is it this application's stack?")
    return str(outputs["LedgerTableName"])


def _local_table(port: int | None) -> Table:
    """The table of the running local stack (the one on `port`, or the one started last: said on stderr when several
    run)."""
    from local.aws import LocalAws
    from local.stack import StackError, find_stack

    try:
        outputs, note = find_stack(port)
    except StackError as error:
        raise LedgerError(str(error)) from None
    if note:
        print(f"note: {note}", file=sys.stderr)
    endpoint = urlsplit(outputs["AwsEndpoint"])
    # LocalAws.client: the fake credentials, and no profile or endpoint from the user's shell.
    client = LocalAws(host=endpoint.hostname or "127.0.0.1", port=endpoint.port or 80).client("dynamodb")
    table = outputs["LedgerTableName"]
    webhook_port = urlsplit(outputs.get("WebhookUrl", "")).port
    return Table(client, table, f"the local stack's table {table}" + (f" (port {webhook_port})" if note else ""))


def _call(client: Any, operation: str, where: str, **kwargs: Any) -> dict[str, Any]:
    """One AWS call; every failure but a conditional check becomes a one-line LedgerError."""
    action = f"{client.meta.service_model.endpoint_prefix}:{client.meta.method_to_api_mapping[operation]}"
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        if code == "ConditionalCheckFailedException":
            raise
        if code in ACCESS_DENIED:
            raise LedgerError(f"access denied ({action} on {where}): {POLICY_HINT}") from error
        if code in BAD_CREDENTIALS:
            raise LedgerError(f"AWS refused the credentials ({code}): {message}") from error
        if "index" in message.lower() and kwargs.get("IndexName"):
            raise LedgerError(f"{where} has no index {INDEX}: deploy the current template.yaml") from error
        if code == "ResourceNotFoundException" or (code == "ValidationError" and "does not exist" in message):
            raise LedgerError(f"no {where}") from error
        raise LedgerError(f"{action} on {where} failed: {code}: {message}") from error
    except NoCredentialsError:
        raise LedgerError("no AWS credentials: set AWS_PROFILE, or run `aws configure` or `aws sso login`") from None
    except BotoCoreError as error:
        raise LedgerError(f"{action} on {where} failed: {error}") from error


# --- reading items


def _item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {name: plain(_deserialize(value)) for name, value in raw.items()}


def get(table: Table, incident_id: str) -> dict[str, Any]:
    raw = table.call("get_item", Key={"incident_id": {"S": incident_id}}, ConsistentRead=True).get("Item")
    if raw is None:
        raise Refused(f"no incident {incident_id} in the ledger ({table.where})")
    return _item(raw)


def recent(table: Table, statuses: tuple[str, ...], since: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The `limit` items recorded most recently at or after `since`, and whether there were more."""
    found: list[dict[str, Any]] = []
    for status in statuses:
        kwargs: dict[str, Any] = {
            "IndexName": INDEX,
            "KeyConditionExpression": "#status = :status AND #recorded_at >= :since",
            "ExpressionAttributeNames": {"#status": "status", "#recorded_at": "recorded_at"},
            "ExpressionAttributeValues": {":status": {"S": status}, ":since": {"S": since}},
            "ScanIndexForward": False,
            # One more than shown: the merged list then knows whether it was cut.
            "Limit": limit + 1,
        }
        taken = 0
        while taken <= limit:
            page = table.call("query", **kwargs)
            found.extend(_item(raw) for raw in page.get("Items", []))
            taken += len(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    found.sort(key=lambda item: (str(item.get("recorded_at", "")), str(item["incident_id"])), reverse=True)
    return found[:limit], len(found) > limit


# --- scrubbing what sessions gave back

# What an item keeps of a session's output: everything Devin wrote that the ledger holds.
FROM_SESSIONS = ("postmortem_result", "result_error", "result_evidence", "pull_request_urls")


def scrubbed_item(item: Mapping[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    """The attributes of `item` that the scrub changes, with their scrubbed values (empty: nothing to change; None:
    remove it). Free text also loses marker look-alikes and links, as the follow-up writes it now; links in the
    fields meant for them (pull request URLs) are only scrubbed."""

    def free_text(text: str) -> str:
        return remove_links(neutralise_markers(scrubber.text(text)))

    changed: dict[str, Any] = {}
    for name in FROM_SESSIONS:
        if name not in item:
            continue
        value = plain(item[name])
        links_field = name == "pull_request_urls"
        try:
            clean = scrubbed(value, scrubber.text if links_field else free_text)
            if name == "postmortem_result" and isinstance(value, dict) and "pull_request_url" in value:
                clean["pull_request_url"] = scrubber.text(str(value["pull_request_url"]))
        except Unreadable:
            clean = None  # nothing this large or deep was ever written by the follow-up: dropped
        if clean != value:
            changed[name] = clean
    return changed


def all_items(table: Table) -> Iterator[dict[str, Any]]:
    """Every item, status by status through the by-status index (never a scan of the table)."""
    for status in STATUSES:
        kwargs: dict[str, Any] = {
            "IndexName": INDEX,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": status}},
        }
        while True:
            page = table.call("query", **kwargs)
            yield from (_item(raw) for raw in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def rewrite(table: Table, incident_id: str, changed: Mapping[str, Any]) -> bool:
    """Write the scrubbed attributes (a None removes one); False when the item is gone meanwhile."""
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    sets = [name for name, value in changed.items() if value is not None]
    removes = [name for name, value in changed.items() if value is None]
    clauses = ([f"SET {', '.join(f'#{n} = :{n}' for n in sets)}"] if sets else []) + (
        [f"REMOVE {', '.join(f'#{n}' for n in removes)}"] if removes else []
    )
    kwargs: dict[str, Any] = {
        "Key": {"incident_id": {"S": incident_id}},
        "UpdateExpression": " ".join(clauses),
        "ConditionExpression": "attribute_exists(incident_id)",
        "ExpressionAttributeNames": {f"#{n}": n for n in changed},
    }
    if sets:
        kwargs["ExpressionAttributeValues"] = {f":{n}": serialize(_for_dynamodb(changed[n])) for n in sets}
    try:
        table.call("update_item", **kwargs)
    except Refused:
        return False
    return True


def _for_dynamodb(value: Any) -> Any:
    """JSON numbers as DynamoDB takes them (Decimal, not float)."""
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _for_dynamodb(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_for_dynamodb(child) for child in value]
    return value


def bridge_secrets(args: argparse.Namespace) -> list[str]:
    """The bridge's secrets, from the Parameter Store prefix of the stack (--stack) or the local stack (--local)."""
    from scripts.doctor import Unusable, local_target, read_parameters, stack_target

    try:
        target = local_target(args.port) if args.local else stack_target(args.stack)
    except Unusable as error:
        raise LedgerError(str(error)) from None
    stored = read_parameters(target)
    if stored.error is not None:
        raise LedgerError(f"cannot read the bridge's secrets under {target.prefix}: {stored.error}; {POLICY_HINT}")
    return stored.secrets()


# --- forgetting


def live_claim(item: Mapping[str, Any], now: float) -> bool:
    """A delivery is creating the session right now (the handler takes a claim over only once it has run out)."""
    expires = item.get("claim_expires_at")
    return item.get("status") == CLAIMED and isinstance(expires, int | float) and expires >= int(now)


def delete(table: Table, incident_id: str, *, force: bool, now: float) -> dict[str, Any]:
    """Delete the item, unless it is gone or (without `force`) claimed by a live delivery meanwhile."""
    kwargs: dict[str, Any] = {"ConditionExpression": "attribute_exists(incident_id)"}
    if not force:
        # Checked in the same write: a claim taken between reading and deleting is refused too.
        kwargs = {
            "ConditionExpression": (
                "attribute_exists(incident_id) AND NOT (#status = :claimed AND #claim_expires_at >= :now)"
            ),
            "ExpressionAttributeNames": {"#status": "status", "#claim_expires_at": "claim_expires_at"},
            "ExpressionAttributeValues": {":claimed": {"S": CLAIMED}, ":now": {"N": str(int(now))}},
        }
    try:
        answer = table.call(
            "delete_item",
            Key={"incident_id": {"S": incident_id}},
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
            **kwargs,
        )
    except ClientError as error:
        current = error.response.get("Item")
        if current is None:
            raise Refused(f"no incident {incident_id} in the ledger ({table.where})") from None
        raise Refused(_claimed_message(_item(current))) from None
    return _item(answer.get("Attributes") or {})


def _claimed_message(item: Mapping[str, Any]) -> str:
    return (
        f"not forgotten: a delivery is starting incident {item['incident_id']}'s session right now (claimed until "
        f"{_epoch(item.get('claim_expires_at'))}); forgetting it could start a second session. "
        "Try again after that, or --force"
    )


# --- what a person reads


def _text(value: Any, width: int | None = None) -> str:
    """A value for the terminal: no control or formatting characters from an incident's text, at most `width`."""
    text = "".join(char if char.isprintable() else "\N{REPLACEMENT CHARACTER}" for char in str(value))
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _epoch(value: Any, *, date_only: bool = False) -> str:
    if not isinstance(value, int | float):
        return "-"
    moment = datetime.fromtimestamp(value, UTC)
    return moment.strftime("%Y-%m-%d") if date_only else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _incident(item: Mapping[str, Any]) -> str:
    number = item.get("incident_number")
    return f"#{number} {_text(item['incident_id'])}" if number is not None else _text(item["incident_id"])


def render_list(items: list[dict[str, Any]]) -> str:
    header = ("recorded (UTC)", "incident", "status", "service", "priority", "session", "PRs", "session status")
    rows = [
        (
            str(item.get("recorded_at", "-")).replace("T", " ").removesuffix("Z"),
            _incident(item),
            str(item.get("status", "-")),
            _text(item.get("service_name") or item.get("service_id") or "-", 28),
            _text(item.get("priority") or "-", 12),
            _text(item.get("session_id") or "-"),
            str(len(item["pull_request_urls"])) if "pull_request_urls" in item else "-",
            _text(item.get("session_status") or "-", 16),
        )
        for item in items
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [header, tuple("-" * width for width in widths), *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def render_item(item: Mapping[str, Any], now: float) -> str:
    """The whole item, grouped for a person; attributes this version does not know end up under "other"."""
    get = item.get
    lines: list[str] = []
    shown = {"incident_id", "claim_token", "forwarded_event_ids"}  # the token and the ids' set say nothing more

    def section(title: str) -> None:
        lines.append(("\n" if lines else "") + title)

    def field(label: str, values: Any, *names: str) -> None:
        """One labelled line, or one per value of a list (the label on the first); nothing when empty."""
        shown.update(names)
        for index, value in enumerate(values if isinstance(values, list) else [values]):
            if value not in (None, ""):
                lines.append(f"  {label if index == 0 else '':<14}{value}")

    def when(name: str, prefix: str = "") -> str:
        return f"{prefix}{_text(get(name))}" if get(name) else ""

    section(f"incident {_text(item['incident_id'])}")
    field("title", when("title"), "title")
    field("number", f"#{get('incident_number')}" if get("incident_number") is not None else "", "incident_number")
    service_id = f"({_text(get('service_id'))})" if get("service_id") else ""
    field("service", f"{when('service_name')} {service_id}".strip(), "service_name", "service_id")
    field("priority", ", ".join(filter(None, [when("priority"), when("urgency", "urgency ")])), "priority", "urgency")
    field("created", when("created_at"), "created_at")
    field("resolved", when("resolved_at"), "resolved_at")
    field("PagerDuty", when("html_url"), "html_url")

    section("session")
    if get("session_id"):
        field("id", _text(get("session_id")), "session_id")
        field("URL", when("session_url"), "session_url")
    elif get("status") == UNKNOWN:
        field("id", f"none recorded; Devin may have one tagged pagerduty-incident:{_text(item['incident_id'])}")
    else:
        field("id", "none recorded")
    field("status", when("session_status"), "session_status")
    field("ACUs", get("acus_consumed"), "acus_consumed")
    field("last looked", when("followed_at"), "followed_at")
    since = f" since {_epoch(get('session_recorded_epoch'))}" if get("session_recorded_epoch") is not None else ""
    following = f"following{since}" if get("following") else f"stopped (followed{since})" if since else ""
    field("follow-up", following, "following", "session_recorded_epoch")
    noted = list(get("pull_request_notes_posted") or [])
    urls = list(get("pull_request_urls") or [])
    urls += [url for url in noted if url not in urls]
    pull_requests = [f"{_text(url)}{'  (note posted)' if url in noted else ''}" for url in urls]
    looked = "pull_request_urls" in item
    field(
        "pull requests",
        pull_requests or ("none yet" if looked else ""),
        "pull_request_urls",
        "pull_request_notes_posted",
    )
    field("session note", when("session_note_posted_at", "posted "), "session_note_posted_at")
    field(
        "unsure notes",
        [
            f"{_text(marker)}  (answer lost: looked for before posting again)"
            for marker in get("notes_unconfirmed") or []
        ],
        "notes_unconfirmed",
    )

    _render_result(item, section, field)

    section("lifecycle")
    by = "started by" if get("status") == STARTED else "claimed by"
    field(by, f"{_text(get('event_type', '?'))} {_text(get('event_id', '?'))}", "event_type", "event_id")
    forwarded = []
    for entry in get("forwarded") or []:
        text = (
            f"{_text(entry.get('forwarded_at', '?'))}  {_text(entry.get('event_type', '?'))}  "
            f"{_text(entry.get('event_id', '?'))}  (occurred {_text(entry.get('occurred_at') or '?')})"
        )
        if entry.get("confirmed") is False:
            text += "  UNCONFIRMED: Devin may have it once, twice or not at all"
        forwarded.append(text)
    field("forwarded", forwarded or "none", "forwarded")
    field(
        "unconfirmed",
        [
            f"{_text(event_id)}  (sent, answer lost: a retry sends it once more)"
            for event_id in get("forwards_unconfirmed") or []
        ],
        "forwards_unconfirmed",
    )

    section("bookkeeping")
    status = str(get("status", "?"))
    field("status", f"{_text(status)}: {STATUS_MEANING.get(status, 'not a status this bridge writes')}", "status")
    field("recorded", when("recorded_at"), "recorded_at")
    if "expires_at" in item:
        field(
            "expires",
            f"{_epoch(get('expires_at'), date_only=True)} (DynamoDB's TTL then deletes the item)",
            "expires_at",
        )
    if "claim_expires_at" in item:
        expires = get("claim_expires_at")
        state = "live" if isinstance(expires, int | float) and expires >= int(now) else "run out"
        holder = "a claim" if status == CLAIMED else "a lease (a note or a forwarded event)"
        field("held", f"by {holder} until {_epoch(expires)} ({state})", "claim_expires_at")
    if "outcome_lost_at" in item:
        field("outcome lost", _epoch(get("outcome_lost_at")), "outcome_lost_at")

    others = {name: value for name, value in item.items() if name not in shown}
    if others:
        section("other")
        for name, value in sorted(others.items()):
            field(name, _text(value if isinstance(value, str) else json.dumps(value, sort_keys=True)))
    return "\n".join(lines)


def _render_result(item: Mapping[str, Any], section: Any, field: Any) -> None:
    """The postmortem's structured result as the follow-up judged and kept it (issue 14), when there is any."""
    names = ("result_status", "result_schema", "computed", "evidence_ids", "postmortem_result", "result_error")
    if not any(name in item for name in names):
        return
    get = item.get
    section("postmortem")
    meaning = {
        "valid": "valid: kept below",
        "invalid": "invalid: no summary note",
        "missing": "missing: the session ended without one",
    }
    status = str(get("result_status") or "")
    field("result", meaning.get(status, _text(status)) or "none yet", "result_status")
    field("error", _text(get("result_error")) if get("result_error") else "", "result_error")
    field("schema", _text(get("result_schema")) if get("result_schema") else "", "result_schema")
    kept = get("postmortem_result") or {}
    root = kept.get("root_cause") or {}
    field("summary", _text(kept.get("summary")) if kept.get("summary") else "", "postmortem_result")
    if root:
        field("root cause", f"({_text(root.get('confidence'))}) {_text(root.get('statement'))}")
    items = [
        f"[{_text(entry.get('priority'))} {_text(entry.get('type'))}] {_text(entry.get('title'))}"
        f"  (owner: {_text(entry.get('owner'))})"
        for entry in kept.get("action_items") or []
    ]
    if kept.get("action_items_omitted"):
        items.append(f"… and {kept['action_items_omitted']} more")
    field("action items", items, "postmortem_result")
    field("score", _text(get("result_score")) if get("result_score") else "", "result_score")
    evidence = get("result_evidence") or {}
    if evidence:
        unknown = list(evidence.get("unknown") or [])
        said = f"{evidence.get('cited', 0)} cited" + (
            f", not in PagerDuty's record: {', '.join(_text(ref) for ref in unknown)}" if unknown else ", all found"
        )
        field("evidence", said, "result_evidence")
    field("summary note", when_posted(get("summary_note_posted_at")), "summary_note_posted_at")
    computed = get("computed") or {}
    field(
        "computed",
        [
            f"{_text(name)} {_text(value if isinstance(value, str) else json.dumps(plain(value)))}"
            for name, value in computed.items()
        ],
        "computed",
    )
    field(
        "evidence ids",
        f"{len(get('evidence_ids') or [])} in the prompt's data" if get("evidence_ids") else "",
        "evidence_ids",
    )


def when_posted(value: Any) -> str:
    return f"posted {_text(value)}" if value else ""


def summary(item: Mapping[str, Any]) -> str:
    title = f' "{_text(item["title"], 60)}"' if item.get("title") else ""
    session = f", session {_text(item['session_id'])}" if item.get("session_id") else ""
    return f"{_incident(item)}{title}: {item.get('status', '?')}{session}, recorded {item.get('recorded_at', '?')}"


def forgotten(item: Mapping[str, Any], incident_id: str) -> str:
    message = f"Forgot incident {incident_id}: its next qualifying delivery starts a new Devin session."
    if item.get("session_id"):
        where = _text(item.get("session_url") or item["session_id"])
        return f"{message} The old session was not stopped: {where}"
    if item.get("status") == UNKNOWN:
        return (
            f"{message} A session from the attempt whose answer was lost may exist and was not stopped: "
            f"look for the tag pagerduty-incident:{incident_id} in Devin."
        )
    return message


# --- the command


def parse_since(text: str, now: float) -> str:
    """30m, 12h, 7d, 2w, or an ISO 8601 date or time (UTC unless it says otherwise), as recorded_at spells it."""
    if match := SINCE.fullmatch(text.strip()):
        moment = datetime.fromtimestamp(now, UTC) - timedelta(seconds=int(match[1]) * UNIT_SECONDS[match[2]])
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise LedgerError(
                f"--since {text!r}: expected 30m, 12h, 7d, 2w or an ISO date such as 2026-03-01"
            ) from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", metavar="NAME", help="a deployed stack: its LedgerTableName output (AWS_REGION)")
    where.add_argument("--table", metavar="NAME", help="the ledger table itself (AWS_REGION)")
    where.add_argument("--local", action="store_true", help="the stack scripts/local is running")
    common.add_argument("--port", type=int, help="with --local: the local stack whose webhook listens on PORT")
    common.add_argument("--json", action="store_true", help="print JSON (numbers as numbers, sets as sorted lists)")

    parser = argparse.ArgumentParser(
        prog="scripts/ledger", allow_abbrev=False, description=__doc__.splitlines()[0], epilog=EPILOG
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,show,forget,scrub}")
    listing = commands.add_parser("list", parents=[common], allow_abbrev=False, help="recent incidents, newest first")
    listing.add_argument(
        "--since",
        default="7d",
        help="30m, 12h, 7d, 2w, or an ISO date or time, UTC unless it says otherwise (default 7d)",
    )
    listing.add_argument("--status", choices=STATUSES, help="only this status (default: all)")
    listing.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    show = commands.add_parser("show", parents=[common], allow_abbrev=False, help="one incident's whole item")
    show.add_argument("incident_id", metavar="INCIDENT_ID")
    forget = commands.add_parser(
        "forget", parents=[common], allow_abbrev=False, help="delete an incident's item: its next delivery starts anew"
    )
    forget.add_argument("incident_id", metavar="INCIDENT_ID")
    forget.add_argument("--yes", action="store_true", help="do not ask")
    forget.add_argument("--force", action="store_true", help="even while a delivery holds a live claim on it")
    scrub = commands.add_parser(
        "scrub",
        parents=[common],
        allow_abbrev=False,
        help="scrub secrets and marker look-alikes from what items keep of sessions' output",
    )
    scrub.add_argument("--dry-run", action="store_true", help="say which items would change, change nothing")
    return parser


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def run(args: argparse.Namespace, stdin: TextIO, now: float) -> int:
    if args.command == "list":
        since = parse_since(args.since, now)  # before any AWS call: a typo costs nothing
        table = open_table(args)
        statuses = (args.status,) if args.status else STATUSES
        items, more = recent(table, statuses, since, args.limit)
        if args.json:
            _print_json(items)
        elif not items:
            print(f"nothing recorded since {since} ({', '.join(statuses)}) in {table.where}")
        else:
            print(render_list(items))
            cut = f"; more: raise --limit (now {args.limit}) or narrow --since" if more else ""
            print(f"\n{len(items)} recorded since {since} ({', '.join(statuses)}), most recent first{cut}")
        return 0

    if args.command == "scrub":
        if args.table:
            raise LedgerError("scrub needs --stack or --local: it reads the bridge's secrets from the stack's prefix")
        scrubber = Scrubber(tuple(bridge_secrets(args)))
        table = open_table(args)
        looked, changed = 0, []
        for item in all_items(table):
            looked += 1
            update = scrubbed_item(item, scrubber)
            if update and (args.dry_run or rewrite(table, str(item["incident_id"]), update)):
                changed.append({"incident_id": item["incident_id"], "attributes": sorted(update)})
        if args.json:
            _print_json({"looked": looked, "changed": changed, "dry_run": args.dry_run})
        else:
            for entry in changed:
                print(f"{entry['incident_id']}: {', '.join(entry['attributes'])}")
            verb = "would change" if args.dry_run else "changed"
            print(f"scrubbed {table.where}: {looked} items looked at, {len(changed)} {verb}")
        return 0

    table = open_table(args)
    item = get(table, args.incident_id)
    if args.command == "show":
        if args.json:
            _print_json(item)
        else:
            print(render_item(item, now))
        return 0

    if live_claim(item, now) and not args.force:
        raise Refused(_claimed_message(item))
    out = sys.stderr if args.json else sys.stdout
    print(summary(item), file=out)
    if not args.yes:
        print(PROMPT.format(id=args.incident_id), end="", file=sys.stderr, flush=True)
        answer = stdin.readline()
        if not stdin.isatty():  # a terminal echoed the answer and its newline; a pipe did not
            print(file=sys.stderr)
        if answer.strip().lower() not in ("y", "yes"):
            raise Refused(f"kept incident {args.incident_id}")
    old = delete(table, args.incident_id, force=args.force, now=now)
    if args.json:
        _print_json(old)
    else:
        print(forgotten(old, args.incident_id))
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage; --help exits 0
        return 0 if exit_.code in (0, None) else 2
    if args.port is not None and not args.local:
        print("error: --port picks a local stack: use it with --local", file=sys.stderr)
        return 2
    try:
        return run(args, sys.stdin, time.time())
    except Refused as refusal:
        print(refusal, file=sys.stderr)
        return 1
    except LedgerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 1
    except BrokenPipeError:  # `scripts/ledger list --json | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0


if __name__ == "__main__":
    sys.exit(main())
