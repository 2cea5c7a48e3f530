"""IAM in the rehearsal: moto enforces each role's actions while the functions run, and the rest is read.

moto's IAM evaluator (/work/shared/reference/tooling.md, last section) enforces actions but matches no resource-scoped
statement and evaluates no condition, so a least-privilege role enforced as written would be refused everything. So
each function runs with a copy of its role: the same statements and actions, every Resource widened to "*" and the
conditions dropped. moto then proves each action by running; which resource each call touched, and the statement and
conditions that allow it, are read from the role as CloudFormation created it. kms:Decrypt is never called here:
moto's SSM decrypts a SecureString without KMS, so it is proved by reading alone.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# What SSM asks KMS for when it decrypts a SecureString on a caller's behalf (the conditions a statement may set).
VIA_SERVICE = "kms:ViaService"
PARAMETER_ARN = "kms:EncryptionContext:PARAMETER_ARN"


@dataclass(frozen=True)
class Call:
    """One request moto authorised (or refused) while the functions ran, and what it touched."""

    role: str  # the role whose credentials signed it (the copy's name)
    action: str  # e.g. "dynamodb:UpdateItem"
    resources: tuple[str, ...]  # the ARNs it touched; empty when the rehearsal cannot tell
    allowed: bool
    decrypted: tuple[str, ...] = ()  # the parameters' names SSM was asked to decrypt (GetParameters WithDecryption)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def document(raw: Any) -> dict[str, Any]:
    """A policy document as moto answers it: a dict, JSON, or (for a role's inline policy) a Python repr."""
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return ast.literal_eval(raw)


def _touched(service: str, operation: str, body: Mapping[str, Any], region: str, account: str) -> tuple[str, ...]:
    """The ARNs a call touches, for the services the functions call; () for one the rehearsal does not know."""
    if service == "dynamodb" and body.get("TableName"):
        table = f"arn:aws:dynamodb:{region}:{account}:table/{body['TableName']}"
        return (f"{table}/index/{body['IndexName']}",) if body.get("IndexName") else (table,)
    if service == "ssm" and operation in ("GetParameters", "GetParameter"):
        names = body.get("Names") or [body.get("Name")]
        return tuple(f"arn:aws:ssm:{region}:{account}:parameter/{str(n).lstrip('/')}" for n in names if n)
    return ()


@contextlib.contextmanager
def enforced() -> Iterator[list[Call]]:
    """moto's IAM enforcement on, in this process's moto server, and every request it judged, recorded."""
    from moto.core.authorization import enable_iam_authentication
    from moto.iam.access_control import IAMRequestBase

    calls: list[Call] = []
    # moto's own judge of each request (moto 5.2, requirements-dev.txt): wrapped to note what it judged, and how.
    judge = IAMRequestBase.check_action_permitted

    def recorded(self: Any, resource: str) -> None:
        service, _, operation = self._action.partition(":")
        try:
            body = json.loads(self._body or b"{}")
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        role = self._access_key.arn.split("/")[1] if ":assumed-role/" in self._access_key.arn else self._access_key.arn
        touched = _touched(service, operation, body, self._region, self.account_id)
        decrypted = tuple(as_list(body.get("Names"))) if service == "ssm" and body.get("WithDecryption") else ()
        try:
            judge(self, resource)
        except Exception:
            calls.append(Call(role, self._action, touched, False, decrypted))
            raise
        calls.append(Call(role, self._action, touched, True, decrypted))

    IAMRequestBase.check_action_permitted = recorded  # type: ignore[method-assign]
    try:
        with enable_iam_authentication():
            yield calls
    finally:
        IAMRequestBase.check_action_permitted = judge  # type: ignore[method-assign]


def role_statements(iam: Any, role: str) -> list[dict[str, Any]]:
    """The inline statements of a role as IAM holds them."""
    statements = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        raw = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        statements += as_list(document(raw).get("Statement"))
    return statements


def actions_only(statements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The statements' actions on every resource, without conditions: what moto can enforce."""
    copied = []
    for index, statement in enumerate(statements):
        kept = {k: statement[k] for k in ("Effect", "Action", "NotAction") if k in statement}
        copied.append({"Sid": str(statement.get("Sid") or f"Statement{index}"), **kept, "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": copied}


def assume_actions_only(iam: Any, sts: Any, role: str, session: str, account: str) -> tuple[str, dict[str, str]]:
    """(the copy's name, credentials for it as Lambda hands a function its role's): a role with `role`'s actions."""
    copy = f"rehearsal-actions-{role}"[:64]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = iam.create_role(RoleName=copy, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=copy, PolicyName="actions", PolicyDocument=json.dumps(actions_only(role_statements(iam, role)))
    )
    credentials = sts.assume_role(RoleArn=arn, RoleSessionName=session[:64])["Credentials"]
    return copy, {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


def _matches(patterns: Any, value: str, *, case: bool = True) -> bool:
    match: Callable[[str, str], bool] = (
        fnmatch.fnmatchcase if case else (lambda v, p: fnmatch.fnmatch(v.lower(), p.lower()))
    )
    return any(match(value, str(pattern)) for pattern in as_list(patterns))


def _conditions_hold(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool | None:
    """Whether a statement's Condition holds in `context`; None when it uses what the rehearsal cannot evaluate."""
    for operator, tests in condition.items():
        if operator not in ("StringEquals", "StringLike"):
            return None
        for key, wanted in tests.items():
            if key not in context:
                return None
            if operator == "StringEquals" and context[key] not in [str(w) for w in as_list(wanted)]:
                return False
            if operator == "StringLike" and not _matches(wanted, context[key]):
                return False
    return True


@dataclass
class Allowance:
    """What the statements say of one action on one resource, with `context` for their conditions."""

    statements: list[str] = field(default_factory=list)  # the Sids of the Allow statements that hold
    denied: list[str] = field(default_factory=list)  # of the Deny statements that hold
    unreadable: list[str] = field(default_factory=list)  # of statements whose conditions the rehearsal cannot read


def allowance(
    statements: Sequence[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, str] | None = None
) -> Allowance:
    found = Allowance()
    for index, statement in enumerate(statements):
        sid = str(statement.get("Sid") or f"Statement{index}")
        if "Action" in statement and not _matches(statement["Action"], action, case=False):
            continue
        if "NotAction" in statement and _matches(statement["NotAction"], action, case=False):
            continue
        if not _matches(statement.get("Resource", "*"), resource):
            continue
        holds = _conditions_hold(statement.get("Condition") or {}, context or {})
        if holds is None:
            found.unreadable.append(sid)
        elif holds:
            (found.statements if statement.get("Effect") == "Allow" else found.denied).append(sid)
    return found


def decrypt_problems(
    statements: Sequence[Mapping[str, Any]], parameters: Sequence[str], region: str, account: str, who: str
) -> tuple[list[str], list[str]]:
    """(the Sids that let SSM decrypt each of `parameters` (ARNs) for `who`, the problems): kms:Decrypt on the
    account's keys, through SSM, for those parameters, read from the statements."""
    key = f"arn:aws:kms:{region}:{account}:key/00000000-0000-0000-0000-000000000000"  # any key of the account
    sids: list[str] = []
    problems = []
    for parameter in parameters:
        context = {VIA_SERVICE: f"ssm.{region}.amazonaws.com", PARAMETER_ARN: parameter}
        found = allowance(statements, "kms:Decrypt", key, context)
        if found.unreadable:
            problems.append(
                f"{who}: the conditions of {', '.join(found.unreadable)} are beyond the rehearsal: read them"
            )
        if found.denied or not found.statements:
            problems.append(
                f"{who} reads {parameter} decrypted, but no statement lets SSM decrypt it (kms:Decrypt on the"
                f" account's keys with {VIA_SERVICE} ssm.{region}.amazonaws.com and {PARAMETER_ARN} matching it)"
            )
        sids += [sid for sid in found.statements if sid not in sids]
    # And for nothing else: not through another service, not for a parameter outside those.
    elsewhere = {
        VIA_SERVICE: "lambda.amazonaws.com",
        PARAMETER_ARN: f"arn:aws:ssm:{region}:{account}:parameter/rehearsal-not-under-any-prefix",
    }
    beyond = allowance(statements, "kms:Decrypt", key, elsewhere).statements
    if beyond:
        problems.append(f"{who} may use kms:Decrypt beyond SSM reading its parameters ({', '.join(beyond)})")
    return sids, problems
