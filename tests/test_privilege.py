"""The function's IAM policy grants what the handler actually calls, on what it touches, and nothing more.

tests/test_template.py checks the policy's shape (inline statements, no wildcard actions, KMS only through SSM).
Here the needed permissions are observed, not assumed: every AWS call the real handler makes in the scenarios
that exercise each ledger path (started, duplicate, in flight, released after a Devin failure, unknown outcome
reconciled by tag) is recorded with its resource, and compared with template.yaml's statements, their
intrinsics resolved the way CloudFormation would in a test account.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from local.devin_standin import Fault
from tests.conftest import REGION, TABLE, FakeContext, hold_claim
from tests.support.events import api_event, incident, payload
from tests.support.template import FUNCTION, load_template, resource_properties

FOLLOW_UP = "FollowUpFunction"

ACCOUNT = "123456789012"
PARTITION = "aws"


@dataclass(frozen=True)
class Call:
    action: str  # IAM action, e.g. "dynamodb:UpdateItem"
    resource: str  # the ARN it touched


def _arns(service: str, operation: str, body: dict[str, Any]) -> Iterator[Call]:
    action = f"{service}:{operation}"
    if service == "dynamodb":
        index = f"/index/{body['IndexName']}" if body.get("IndexName") else ""
        yield Call(action, f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{body['TableName']}{index}")
    elif service == "ssm":
        for name in body.get("Names") or [body.get("Name")]:
            parameter = f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter{name}"
            yield Call(action, parameter)
            if body.get("WithDecryption"):
                # SSM decrypts SecureStrings with the caller's own kms:Decrypt, through the service, on a key
                # whose ARN the function never sees.
                yield Call("kms:Decrypt", f"via ssm for {parameter}")
    else:
        yield Call(action, "*")


@pytest.fixture
def observed(handler_module: Any) -> Iterator[list[Call]]:
    """Every AWS call the handler's clients make, with the resource it names."""
    calls: list[Call] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        body = json.loads(params.get("body") or b"{}")
        calls.extend(_arns(model.service_model.service_name, model.name, body))

    session = boto3.DEFAULT_SESSION or boto3.setup_default_session() or boto3.DEFAULT_SESSION
    session.events.register("before-call", record)
    yield calls
    session.events.unregister("before-call", record)


@pytest.fixture
def every_ledger_path(invoke, devin, observed: list[Call]) -> list[Call]:
    """Runs one delivery down each path the ledger has, and returns the calls they made."""
    invoke(api_event(payload("pagey-ping.json")))  # ignored: secrets only
    assert invoke(api_event(incident("QPRIV1"))).body["status"] == "started"
    assert invoke(api_event(incident("QPRIV1"))).body["status"] == "duplicate"
    devin.enqueue(*[Fault.status(503, retry_after=0)] * 4)
    assert invoke(api_event(incident("QPRIV2"))).status == 503  # claim released (DeleteItem)
    devin.enqueue(Fault.create_then_reset())
    assert invoke(api_event(incident("QPRIV3"))).status == 503  # marked unknown
    assert invoke(api_event(incident("QPRIV3"))).body["status"] == "started"  # reconciled by tag
    hold_claim("QPRIV4", expires_in=20)
    assert invoke(api_event(incident("QPRIV4"))).status == 429  # in flight
    return observed


@pytest.fixture
def every_note_path(pagerduty_writes, pagerduty, invoke, devin, observed: list[Call]) -> list[Call]:
    """The webhook's note paths: posted with the session, failed then posted by a duplicate, answer lost."""
    from local.pagerduty_standin import sample_record

    for incident_id in ("QPRIVN1", "QPRIVN2", "QPRIVN3"):
        pagerduty.add_incident(incident_id, **sample_record(incident_id))
    assert invoke(api_event(incident("QPRIVN1"))).body["status"] == "started"
    pagerduty.enqueue("notes_post", Fault.status(500))
    assert invoke(api_event(incident("QPRIVN2"))).body["status"] == "started"
    assert invoke(api_event(incident("QPRIVN2"))).body["status"] == "duplicate"
    pagerduty.enqueue("notes_post", Fault.create_then_reset())
    assert invoke(api_event(incident("QPRIVN3"))).body["status"] == "started"
    assert invoke(api_event(incident("QPRIVN3"))).body["status"] == "duplicate"
    assert len(pagerduty.notes_posted("QPRIVN2")) == len(pagerduty.notes_posted("QPRIVN3")) == 1
    return observed


@pytest.fixture
def every_follow_up_path(pagerduty_writes, pagerduty, invoke, devin, observed: list[Call]) -> list[Call]:
    """The scheduled follow-up's calls: reading the open sessions, recording them, posting their notes."""
    import follow_up

    from local.pagerduty_standin import sample_record

    follow_up.dependencies.cache_clear()
    sessions = []
    for incident_id in ("QPRIVF1", "QPRIVF2"):
        pagerduty.add_incident(incident_id, **sample_record(incident_id))
        sessions.append(invoke(api_event(incident(incident_id))).body["session_id"])
    devin.open_pull_request(sessions[0], "https://github.com/acme/checkout/pull/1")
    devin.forget_session(sessions[1])
    observed.clear()
    follow_up.lambda_handler({}, FakeContext())
    follow_up.dependencies.cache_clear()
    assert len(pagerduty.notes_posted("QPRIVF1")) == 2
    return observed


def _resolve(value: Any) -> str:
    """A policy value with its intrinsics resolved for the test account, stack parameters at their defaults."""
    parameters = {name: str(spec.get("Default", "")) for name, spec in load_template()["Parameters"].items()}
    pseudo = {
        "AWS::Partition": PARTITION,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "LedgerTable.Arn": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}",
    }
    if isinstance(value, str):
        return value
    if set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: pseudo.get(m[1]) or parameters[m[1]], value["Fn::Sub"])
    if value == {"Fn::GetAtt": ["LedgerTable", "Arn"]}:
        return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"
    raise AssertionError(f"no test resolution for {value!r}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(function: str) -> list[dict[str, Any]]:
    """A function's policy statements, actions and resources as lists, resources resolved to ARNs."""
    return [
        {**statement, "Action": _as_list(statement["Action"]), "Resource": [_resolve(r) for r in _as_list(resource)]}
        for policy in resource_properties(function)["Policies"]
        for statement in _as_list(policy["Statement"])
        for resource in [statement["Resource"]]
    ]


@pytest.fixture(scope="module")
def statements() -> list[dict[str, Any]]:
    return _statements(FUNCTION)


@pytest.fixture(scope="module")
def follow_up_statements() -> list[dict[str, Any]]:
    return _statements(FOLLOW_UP)


def _allows(statement: dict[str, Any], call: Call) -> bool:
    if statement.get("Effect") != "Allow" or call.action not in statement["Action"]:
        return False
    if call.action == "kms:Decrypt":
        # The key is not known in advance: the grant must be confined to SSM (its exact conditions are
        # tests/test_template.py's business).
        return "kms:ViaService" in statement.get("Condition", {}).get("StringEquals", {})
    return any(fnmatch.fnmatchcase(call.resource, pattern) for pattern in statement["Resource"])


def test_every_call_the_handler_makes_is_allowed_on_the_resource_it_touches(every_ledger_path, statements) -> None:
    denied = {call for call in every_ledger_path if not any(_allows(s, call) for s in statements)}

    assert every_ledger_path
    assert not denied, sorted(denied, key=repr)


def test_no_action_is_granted_that_the_handler_never_calls(every_ledger_path, statements) -> None:
    granted = {action for statement in statements for action in statement["Action"]}
    called = {call.action for call in every_ledger_path}

    assert granted - called == set()


def test_the_note_paths_need_nothing_beyond_the_grants(every_note_path, statements) -> None:
    denied = {call for call in every_note_path if not any(_allows(s, call) for s in statements)}

    assert every_note_path
    assert not denied, sorted(denied, key=repr)


def test_every_call_the_follow_up_makes_is_allowed_and_every_grant_is_used(
    every_follow_up_path, follow_up_statements
) -> None:
    denied = {call for call in every_follow_up_path if not any(_allows(s, call) for s in follow_up_statements)}
    granted = {action for statement in follow_up_statements for action in statement["Action"]}
    called = {call.action for call in every_follow_up_path}

    assert not denied, sorted(denied, key=repr)
    assert granted == called


def test_the_follow_up_queries_only_its_index_and_the_webhook_cannot_query(follow_up_statements, statements) -> None:
    queries = [r for s in follow_up_statements if "dynamodb:Query" in s["Action"] for r in s["Resource"]]

    assert queries == [f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}/index/following"]
    assert not any("dynamodb:Query" in s["Action"] or "dynamodb:Scan" in s["Action"] for s in statements)


def _wildcard_resources(statements: list[dict[str, Any]], prefix: str) -> list[str]:
    return [r for s in statements for r in s["Resource"] if any(a.startswith(prefix) for a in s["Action"])]


@pytest.mark.parametrize(
    "outside",
    [
        "/other-app/devin-api-key",
        "/pagerduty-postmortem-other/devin-api-key",
        "/pagerduty-postmortemx",
        "/pagerduty",
        "/",
    ],
)
def test_the_parameter_wildcard_stays_under_the_prefix(statements, outside: str) -> None:
    arn = f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter{outside}"

    assert not any(fnmatch.fnmatchcase(arn, pattern) for pattern in _wildcard_resources(statements, "ssm:"))


@pytest.mark.parametrize(
    "outside",
    [f"table/{TABLE}-other", f"table/{TABLE}/index/by-status", f"table/{TABLE}/stream/2026", "table/other"],
)
def test_the_ledger_grant_covers_the_table_and_nothing_else(statements, outside: str) -> None:
    arn = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:{outside}"

    assert not any(fnmatch.fnmatchcase(arn, pattern) for pattern in _wildcard_resources(statements, "dynamodb:"))


def test_the_only_wildcard_resources_are_the_parameter_prefix_and_the_kms_key_behind_ssm(statements) -> None:
    wildcards = {(tuple(s["Action"]), resource) for s in statements for resource in s["Resource"] if "*" in resource}

    assert wildcards == {
        (
            ("ssm:GetParameters",),
            f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/pagerduty-postmortem/*",
        ),
        (("kms:Decrypt",), f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/*"),
    }, wildcards
