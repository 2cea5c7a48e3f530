"""Preflight check of the bridge, deployed (--stack NAME) or local (--local): one line per check, ✓ or ✗.

    scripts/doctor --stack NAME    # region and credentials from the usual AWS settings (AWS_PROFILE, AWS_REGION…)
    scripts/doctor --local         # the stack scripts/local is running (several: the one started last, or --port)

The checks, in order: the stack's outputs; each Parameter Store name under the prefix that the function reads
(present when required, SecureString for a secret and String otherwise, the routing document and the prompt
template valid as the function judges them); the Devin key (GET /v3/self, its organisation, a read of the
organisation's sessions); the PagerDuty key when one is configured (GET /incidents, and that the from-email is a
user of the account); the ledger table and its TTL; on a deployed stack, the Powertools layer of both functions (it
resolves, and holds the release requirements-dev.txt pins); the webhook URL (a pagey.ping signed with the stored
secret is answered 2xx "ignored", an unsigned one 401).

Under each ✗ it says what to do. It only reads: it never creates a Devin session or posts a PagerDuty note (the
function ignores a ping), and it never prints a secret: every line is scrubbed of the secret values it read.

Exit status: 0 when every check passes, 1 when one failed, 2 on a usage error or when the stack cannot be found.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

HANDLER = Path(__file__).resolve().parent.parent / "handler"
if str(HANDLER) not in sys.path:
    # Last: nothing of the function's may shadow what this process imports.
    sys.path.append(str(HANDLER))

from bridge.credentials import lines  # noqa: E402
from bridge.devin.routing import RoutingError, check_template, parse_routing  # noqa: E402
from bridge.pagerduty.client import MAX_OFFSET_PLUS_LIMIT, PAGE_LIMIT, request_headers  # noqa: E402
from bridge.parameters import (  # noqa: E402
    DEVIN_API_KEY,
    DEVIN_ORG_ID,
    NAMES,
    PAGERDUTY_API_KEY,
    PAGERDUTY_FROM_EMAIL,
    PROMPT_TEMPLATE,
    ROUTING,
    SECRET_NAMES,
    SIGNING_SECRET,
    WEBHOOK_SECRET,
)

from local.send import SendError, send  # noqa: E402
from scripts.make_events import PAYLOADS_DIR  # noqa: E402

OUTPUTS = ("WebhookUrl", "LedgerTableName", "FunctionName", "FollowUpFunctionName")
# template.yaml's parameter defaults, for a stack whose parameters do not say.
DEFAULT_PREFIX = "/pagerduty-postmortem"
DEFAULT_DEVIN_URL = "https://api.devin.ai"
DEFAULT_PAGERDUTY_URL = "https://api.pagerduty.com"
PING = PAYLOADS_DIR / "pagey-ping.json"
# The attribute template.yaml's LedgerTable expires items by (TimeToLiveSpecification).
TTL_ATTRIBUTE = "expires_at"
TIMEOUT_SECONDS = 10.0
# What each value looks like in the put-parameter lines of the advice (never the value itself).
PLACEHOLDERS = {
    DEVIN_API_KEY: "cog_…",
    DEVIN_ORG_ID: "org-…",
    PAGERDUTY_FROM_EMAIL: "bot@your-company.com",
    ROUTING: "file://routing.json",
    PROMPT_TEMPLATE: "file://prompt.txt",
}


class Unusable(Exception):
    """Exit status 2: the arguments are wrong, or there is no stack to check."""


@dataclass(frozen=True)
class Check:
    """One line of the report: `what` alone when it passed; else `what: problem`, then what to do."""

    what: str
    problem: str | None = None
    todo: str = ""


@dataclass(frozen=True)
class Target:
    """One stack, as the checks see it."""

    label: str  # "stack NAME (REGION, STATUS)" or "the local stack"
    outputs: Mapping[str, str]
    prefix: str
    devin_url: str
    pagerduty_url: str
    client: Callable[[str], Any]  # a boto3 client for a service name
    aws_args: str  # what the aws commands in the advice need: the region, or the local endpoint
    redeploy: str  # how to get the stack's resources and outputs back
    logs: str  # where the function's logs are
    deployed: bool = False  # a stack in AWS, whose functions run with a layer (the local stack has none)


@dataclass(frozen=True)
class Stored:
    """What Parameter Store holds under the prefix: types of the names present, and their values (never printed)."""

    types: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict, repr=False)
    error: str | None = None  # why they could not be read

    def secrets(self) -> list[str]:
        found = [v for name, v in self.values.items() if name in SECRET_NAMES or self.types.get(name) == "SecureString"]
        return [s for value in found for s in (value, value.strip(), *lines(value)) if s]


# --- reading the stack


def _aws_error(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code', '?')}: {response['Error'].get('Message', '')}".rstrip(": ")
    return str(error)


def _prefix(value: str | None) -> str:
    return "/" + (value or DEFAULT_PREFIX).strip("/")  # as the function normalises SSM_PARAMETER_PREFIX


def stack_target(name: str) -> Target:
    """A deployed stack, found with describe_stacks in the region the usual AWS settings give."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    # AWS_REGION first, as the AWS CLI v2 takes it (boto3 itself reads only AWS_DEFAULT_REGION and the profile).
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
    region = session.region_name
    if not region:
        raise Unusable("no AWS region: set AWS_REGION (or a region in the profile AWS_PROFILE names)")
    try:
        stack = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in _aws_error(error):
            raise Unusable(f"no stack {name} in {region}: check --stack, AWS_REGION and AWS_PROFILE") from None
        raise Unusable(f"cannot read stack {name} in {region}: {_aws_error(error)}") from None
    except BotoCoreError as error:
        raise Unusable(f"cannot read stack {name} in {region}: {error}") from None
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    status = stack.get("StackStatus", "?")
    return Target(
        label=f"stack {name} ({region}, {status})",
        outputs=outputs,
        prefix=_prefix(parameters.get("SsmParameterPrefix")),
        devin_url=parameters.get("DevinApiBaseUrl") or DEFAULT_DEVIN_URL,
        pagerduty_url=parameters.get("PagerDutyApiBaseUrl") or DEFAULT_PAGERDUTY_URL,
        client=session.client,
        aws_args=f" --region {region}",
        redeploy=f"the stack is {status}: deploy it (scripts/build && sam deploy --stack-name {name}), then run again",
        logs=f"sam logs -n PagerDutyPostmortemFunction --stack-name {name} --region {region}",
        deployed=True,
    )


def local_target(port: int | None = None) -> Target:
    """The stack scripts/local runs (the one whose webhook is on `port`, or the one started last), from its state
    file, and its moto with the fake credentials. When several run, says which one on stderr."""
    from local.aws import LocalAws
    from local.stack import StackError, find_stack

    try:
        outputs, note = find_stack(port)
    except StackError as error:
        raise Unusable(str(error)) from None
    if note:
        print(f"note: {note}", file=sys.stderr)
    endpoint = outputs.get("AwsEndpoint", "")
    where = urlsplit(endpoint)
    if not (where.hostname and where.port):
        raise Unusable("the local stack's state file names no AwsEndpoint: restart scripts/local")
    return Target(
        label="the local stack",
        outputs=outputs,
        prefix=_prefix(outputs.get("SsmParameterPrefix")),
        devin_url=outputs.get("DevinApiBaseUrl") or DEFAULT_DEVIN_URL,
        pagerduty_url=outputs.get("PagerDutyApiBaseUrl") or DEFAULT_PAGERDUTY_URL,
        client=LocalAws(host=where.hostname, port=where.port).client,
        aws_args=f" --endpoint-url {endpoint} --region {outputs.get('Region') or 'us-east-1'}",
        redeploy="restart scripts/local, then run again",
        logs="scripts/local's output",
    )


def read_parameters(target: Target) -> Stored:
    from botocore.exceptions import BotoCoreError, ClientError

    ssm = target.client("ssm")
    names = {f"{target.prefix}/{name}": name for name in NAMES}
    try:
        # The types, and the plain values; SecureStrings stay encrypted in this answer.
        found = ssm.get_parameters(Names=list(names), WithDecryption=False)["Parameters"]
        # Decrypted: the SecureStrings present, all of which a check below uses (to call Devin or PagerDuty, or to
        # sign the ping), the non-secrets stored as SecureString included.
        secure = [p["Name"] for p in found if p["Type"] == "SecureString"]
        decrypted = ssm.get_parameters(Names=secure, WithDecryption=True)["Parameters"] if secure else []
    except (BotoCoreError, ClientError) as error:
        return Stored(error=_aws_error(error))
    values = {names[p["Name"]]: p["Value"] for p in found if p["Type"] != "SecureString"}
    values.update({names[p["Name"]]: p["Value"] for p in decrypted})
    return Stored({names[p["Name"]]: p["Type"] for p in found}, values)


# --- HTTP


@functools.cache
def _opener(loopback: bool) -> urllib.request.OpenerDirector:
    # A proxy from the environment must not capture loopback; remote URLs keep the user's proxy settings.
    return urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if loopback else []))


def _get(url: str, headers: Mapping[str, str]) -> tuple[int, Any]:
    """GET `url`: the status and the JSON answer (None when it is not JSON), whatever the status."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise SendError(f"not an http(s) URL: {url}")
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    request = urllib.request.Request(url, headers=dict(headers))  # noqa: S310 - http(s) URLs from the stack
    try:
        with _opener(loopback).open(request, timeout=TIMEOUT_SECONDS) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, raw = error.code, error.read()
    except urllib.error.URLError as error:
        raise SendError(f"cannot reach {url}: {getattr(error.reason, 'strerror', None) or error.reason}") from None
    except (OSError, ValueError) as error:
        raise SendError(f"cannot reach {url}: {error}") from None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


# --- the checks


def _not_checked(what: str, why: str) -> Check:
    return Check(what, f"not checked: {why}", "fix what is reported above, then run again")


def _put(target: Target, name: str, *, overwrite: bool = False) -> str:
    kind = "SecureString" if name in SECRET_NAMES else "String"
    value = PLACEHOLDERS.get(name, "…")
    again = " --overwrite" if overwrite else ""
    return (
        f"aws ssm put-parameter --name {target.prefix}/{name} --type {kind} --value '{value}'{again}{target.aws_args}"
    )


def _allowed(target: Target, actions: str, policy_output: str = "LedgerOperatorPolicyArn") -> str:
    policy = target.outputs.get(policy_output)
    return f"use credentials that may {actions}" + (
        f" (the stack's operator policy {policy} grants it)" if policy else ""
    )


def check_outputs(target: Target) -> Check:
    missing = [name for name in OUTPUTS if not target.outputs.get(name)]
    if missing:
        return Check(f"{target.label}: outputs", f"{', '.join(missing)} missing", target.redeploy)
    return Check(f"{target.label}: outputs {', '.join(OUTPUTS)}")


def check_parameters(target: Target, stored: Stored) -> Iterator[Check]:
    if stored.error is not None:
        todo = _allowed(target, f"ssm:GetParameters on {target.prefix}/* and kms:Decrypt with its key")
        yield Check(f"Parameter Store {target.prefix}/*", f"cannot be read: {stored.error}", todo)
        return
    for name in NAMES:
        path, kind = f"{target.prefix}/{name}", stored.types.get(name)
        if name == SIGNING_SECRET and not {SIGNING_SECRET, WEBHOOK_SECRET} & stored.types.keys():
            yield Check(
                "webhook authentication",
                f"neither {path} nor {target.prefix}/{WEBHOOK_SECRET} exists: every delivery is refused",
                f"store the subscription's signing secret: {_put(target, SIGNING_SECRET)}",
            )
        if kind is None:
            if name in (DEVIN_API_KEY, DEVIN_ORG_ID):
                yield Check(path, "missing", _put(target, name))
            continue
        wanted = "SecureString" if name in SECRET_NAMES else "String"
        if kind != wanted:
            secret = " (a secret)" if name in SECRET_NAMES else ""
            yield Check(path, f"a {kind}, must be a {wanted}{secret}", _put(target, name, overwrite=True))
            continue
        value = stored.values.get(name, "")
        try:
            if name == ROUTING and value.strip():
                count = len(parse_routing(value).rules)
                yield Check(f"{path}: {kind}, a valid routing document ({count} rule{'' if count == 1 else 's'})")
                continue
            if name == PROMPT_TEMPLATE and value.strip():
                yield Check(f"{path}: {kind}, a valid prompt template ({len(check_template(value))} characters)")
                continue
        except RoutingError as error:
            option = "" if name == ROUTING else "--prompt-template "
            try_it = f"scripts/check-routing {option}{PLACEHOLDERS[name].removeprefix('file://')}"
            todo = f"fix it, try it with {try_it}, then {_put(target, name, overwrite=True)}"
            yield Check(path, f"the function refuses it: {error}", todo)
            continue
        yield Check(f"{path}: {kind}")


def check_devin(target: Target, stored: Stored) -> Check:
    if stored.error is not None:
        return _not_checked("Devin", "Parameter Store cannot be read")
    # As the function reads them: spaces and line breaks around a value do not count.
    key = (stored.values.get(DEVIN_API_KEY) or "").strip()
    org = (stored.values.get(DEVIN_ORG_ID) or "").strip()
    if not key or not org:
        return _not_checked("Devin", f"{target.prefix}/{DEVIN_API_KEY} and {DEVIN_ORG_ID} are both needed")
    base = target.devin_url.rstrip("/")
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    try:
        status, me = _get(f"{base}/v3/self", headers)
        if status == 401:
            put = _put(target, DEVIN_API_KEY, overwrite=True)
            todo = f"make a key for the service user (Devin: Settings → Service users) and store it: {put}"
            return Check("Devin", f"{base} refused the key (HTTP 401 on GET /v3/self)", todo)
        if status != 200 or not isinstance(me, dict):
            return Check("Devin", f"GET {base}/v3/self answered HTTP {status}", f"check DevinApiBaseUrl ({base})")
        # An org-scoped service user may get org_id null here: then only the read below can tell.
        key_org = me.get("org_id")
        if key_org and key_org != org:
            todo = f"store {key_org} in {target.prefix}/{DEVIN_ORG_ID}, or a key of a service user of {org}"
            return Check("Devin", f"the key belongs to {key_org}, but {DEVIN_ORG_ID} is {org}", todo)
        status, _ = _get(f"{base}/v3/organizations/{quote(org, safe='')}/sessions?first=1", headers)
    except SendError as error:
        return Check("Devin", str(error), f"check DevinApiBaseUrl ({base}) and this machine's network")
    if status in (401, 403, 404):
        todo = (
            f"give the service user ViewOrgSessions and ManageOrgSessions in {org} (Devin: Settings → Service users),"
            f" or correct {target.prefix}/{DEVIN_ORG_ID}"
        )
        return Check("Devin", f"the key may not read the sessions of {org} (HTTP {status})", todo)
    if status != 200:
        return Check("Devin", f"listing the sessions of {org} answered HTTP {status}", "try again later")
    who = me.get("service_user_name") or me.get("service_user_id") or me.get("principal_type") or "?"
    return Check(
        f"Devin: the key of {who} is accepted and reads the sessions of {org} (creating one is not tried: a key"
        " without ManageOrgSessions would fail only then)"
    )


def check_pagerduty(target: Target, stored: Stored) -> Check:
    if stored.error is not None:
        return _not_checked("PagerDuty", "Parameter Store cannot be read")
    key = (stored.values.get(PAGERDUTY_API_KEY) or "").strip()
    email = (stored.values.get(PAGERDUTY_FROM_EMAIL) or "").strip()
    if not key:
        return Check(f"PagerDuty: no {target.prefix}/{PAGERDUTY_API_KEY}, so the functions never call it (optional)")
    base = target.pagerduty_url.rstrip("/")
    headers = request_headers(key)  # as the functions send them
    store_key = f"store a key that can read incidents: {_put(target, PAGERDUTY_API_KEY, overwrite=True)}"
    try:
        status, _ = _get(f"{base}/incidents?limit=1", headers)
        if status in (401, 403):
            refused = "refused the key" if status == 401 else "does not let the key read incidents"
            return Check("PagerDuty", f"{base} {refused} (HTTP {status} on GET /incidents)", store_key)
        if status != 200:
            return Check("PagerDuty", f"GET /incidents answered HTTP {status}", f"check PagerDutyApiBaseUrl ({base})")
        if not email:
            return Check("PagerDuty: the key reads incidents (no from-email: the functions post no notes)")
        looked_up = _find_user(base, headers, email)
    except SendError as error:
        return Check("PagerDuty", str(error), f"check PagerDutyApiBaseUrl ({base}) and this machine's network")
    if looked_up not in (FOUND, ABSENT):
        todo = "check by hand that it is the login email of a user (PagerDuty: People → Users)"
        return Check("PagerDuty", f"{email} cannot be looked up ({looked_up})", todo)
    if looked_up == ABSENT:
        put = _put(target, PAGERDUTY_FROM_EMAIL, overwrite=True)
        todo = f"store the login email of a user of the account (notes are posted as that user): {put}"
        return Check("PagerDuty", f"{email} ({PAGERDUTY_FROM_EMAIL}) is not a user of the account", todo)
    # Whether the key may write is not known until it writes: a read-only key reads everything and is refused only
    # on a POST (a 403, UNCONFIRMED in PagerDuty's docs), and the doctor never posts a note.
    return Check(
        f"PagerDuty: the key reads incidents and {email} is a user of the account (writing a note is not tried: a"
        " read-only key would fail only then)"
    )


# What _find_user found; anything else it returns says why it could not tell.
FOUND, ABSENT = "found", "absent"


def _find_user(base: str, headers: Mapping[str, str], email: str) -> str:
    """FOUND when `email` is the login e-mail of a user of the account, ABSENT when the whole list of users was read
    without it, else why it could not be told.

    PagerDuty's specification says GET /users' `query` filters by name; whether it matches e-mail addresses too is
    UNCONFIRMED, so the list is read a page at a time until the address turns up, the list ends, or PagerDuty's
    limit (offset + limit at most 10000) is reached.
    """
    offset = 0
    while offset + PAGE_LIMIT <= MAX_OFFSET_PLUS_LIMIT:
        status, page = _get(f"{base}/users?{urlencode({'limit': PAGE_LIMIT, 'offset': offset})}", headers)
        if status != 200:
            return f"HTTP {status} on GET /users"
        users = page.get("users") if isinstance(page, dict) else None
        if not isinstance(users, list):
            return "GET /users answered without a list of users"
        if any(isinstance(u, dict) and str(u.get("email", "")).casefold() == email.casefold() for u in users):
            return FOUND
        if page.get("more") is not True or not users:
            return ABSENT
        offset += len(users)
    return f"it is not among the first {MAX_OFFSET_PLUS_LIMIT} users PagerDuty lists"


def check_ledger(target: Target) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    table = target.outputs.get("LedgerTableName")
    if not table:
        return _not_checked("ledger table", "the stack has no LedgerTableName output")
    dynamodb = target.client("dynamodb")
    try:
        status = dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    except ClientError as error:
        if _aws_error(error).startswith("ResourceNotFoundException"):
            return Check(f"ledger table {table}", "does not exist", target.redeploy)
        todo = _allowed(target, "dynamodb:DescribeTable and dynamodb:DescribeTimeToLive on it")
        return Check(f"ledger table {table}", f"cannot be described: {_aws_error(error)}", todo)
    except BotoCoreError as error:
        return Check(f"ledger table {table}", f"cannot be described: {error}", "check this machine's network")
    if status != "ACTIVE":
        return Check(f"ledger table {table}", f"is {status}, not ACTIVE", "wait until it is ACTIVE, then run again")
    state, attribute = ttl.get("TimeToLiveStatus", "DISABLED"), ttl.get("AttributeName")
    if state not in ("ENABLED", "ENABLING") or attribute != TTL_ATTRIBUTE:
        todo = (
            f"aws dynamodb update-time-to-live --table-name {table} "
            f"--time-to-live-specification Enabled=true,AttributeName={TTL_ATTRIBUTE}{target.aws_args}"
        )
        on = f" on {attribute}" if attribute else ""
        return Check(f"ledger table {table}", f"TTL is {state}{on}, not on {TTL_ATTRIBUTE}: items never expire", todo)
    return Check(f"ledger table {table}: ACTIVE, TTL {state} on {attribute}")


# The functions whose layer the layer check reads, by the output naming each.
FUNCTION_OUTPUTS = ("FunctionName", "FollowUpFunctionName")
REQUIREMENTS = HANDLER.parent / "requirements-dev.txt"
# Public Parameter Store names Powertools keeps in each region it publishes to: that region's layer ARN of a release.
POWERTOOLS_PARAMETER = "/aws/service/powertools/python/{architecture}/{runtime}/{version}"


def pinned_powertools() -> str | None:
    """The Powertools release the tests run against (requirements-dev.txt): the one the layer must hold."""
    text = REQUIREMENTS.read_text(encoding="utf-8") if REQUIREMENTS.is_file() else ""
    match = re.search(r"^aws-lambda-powertools(?:\[[^\]]*\])?==([^\s;#]+)", text, flags=re.M)
    return match.group(1) if match else None


def layer_release(layer: Mapping[str, Any]) -> str | None:
    """The Powertools release a layer version holds, from its description: Powertools' layers say it nowhere else
    ("Powertools for AWS Lambda (Python) V3 [arm64 - Python 3.13] with extra dependencies version 3.23.0", as
    layer_v3/layer_constructors/layer_stack.py of aws-powertools/powertools-lambda-python writes it)."""
    match = re.search(r"\bversion (\d+\.\d+\.\d+\S*)", str(layer.get("Description") or ""))
    return match.group(1) if match else None


def check_layer(target: Target) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    what = "Powertools layer"
    names = [target.outputs[output] for output in FUNCTION_OUTPUTS if target.outputs.get(output)]
    if not names:
        return _not_checked(what, "the stack has no FunctionName output")
    pinned = pinned_powertools()
    if pinned is None:
        return Check(what, f"{REQUIREMENTS.name} pins no aws-lambda-powertools release", "pin the one the layer holds")
    lambda_ = target.client("lambda")
    read = _allowed(target, "lambda:GetFunctionConfiguration on the stack's functions", "LayerCheckPolicyArn")
    users: dict[str, list[Mapping[str, Any]]] = {}  # layer version ARN: the configurations of the functions using it
    for name in names:
        try:
            config = lambda_.get_function_configuration(FunctionName=name)
        except ClientError as error:
            if _aws_error(error).startswith("ResourceNotFoundException"):
                return Check(f"{what}: function {name}", "does not exist", target.redeploy)
            return Check(what, f"function {name} cannot be read: {_aws_error(error)}", read)
        except BotoCoreError as error:
            return Check(what, f"function {name} cannot be read: {error}", "check this machine's network")
        layers = [layer.get("Arn", "") for layer in config.get("Layers") or []]
        if not layers:
            return Check(what, f"function {name} has no layer, so it cannot import Powertools", target.redeploy)
        for arn in layers:
            users.setdefault(arn, []).append(config)
    found = []
    for arn, configs in users.items():
        runtime = str(configs[0].get("Runtime", ""))
        architecture = str((configs[0].get("Architectures") or ["x86_64"])[0])
        region = arn.split(":")[3] if arn.count(":") >= 6 else "?"
        name = POWERTOOLS_PARAMETER.format(architecture=architecture, runtime=runtime, version=pinned)
        pick = (
            f"the ARN of Powertools {pinned} in {region} is the value of {name} (aws ssm get-parameter --name {name}"
            f" --query Parameter.Value --output text{target.aws_args}): set PowertoolsLayerVersion to its"
            " version number (the ARN's last part) in samconfig.toml, then sam deploy"
        )
        layer_name, _, number = arn.rpartition(":")
        try:
            # By the layer's ARN and version: GetLayerVersionByArn's answer and permission (lambda:GetLayerVersion).
            layer = lambda_.get_layer_version(LayerName=layer_name, VersionNumber=int(number))
        except ClientError as error:
            said = _aws_error(error)
            # Another account's layer version that does not exist is refused, not "not found".
            if said.startswith("ResourceNotFoundException") or "resource-based policy" in said:
                return Check(f"{what} {arn}", f"does not resolve in {region} ({said})", pick)
            todo = _allowed(target, f"lambda:GetLayerVersion on {arn}", "LayerCheckPolicyArn")
            return Check(f"{what} {arn}", f"cannot be read: {said}", todo)
        except (BotoCoreError, ValueError) as error:
            return Check(f"{what} {arn}", f"cannot be read: {error}", "check this machine's network")
        release = layer_release(layer)
        if release != pinned:
            holds = (
                f"holds Powertools {release}"
                if release
                else f"names no Powertools release ({layer.get('Description')!r})"
            )
            return Check(f"{what} {arn}", f"{holds}; the tests pin {pinned} ({REQUIREMENTS.name})", pick)
        # A layer that names what it is built for must be built for each function using it.
        for config in configs:
            wanted = [("CompatibleRuntimes", config.get("Runtime"))]
            wanted += [("CompatibleArchitectures", value) for value in config.get("Architectures") or []]
            wrong = [str(value) for key, value in wanted if layer.get(key) and value not in layer[key]]
            if wrong:
                built_for = f"is not built for {' and '.join(wrong)}, which {config.get('FunctionName')} runs on"
                return Check(f"{what} {arn}", built_for, pick)
        found.append(f"{arn} (Powertools {release}, {runtime} {architecture})")
    count = "both functions" if len(names) == 2 else "the function"
    return Check(f"{what} of {count}: {'; '.join(found)}, the release the tests pin")


def _said(status: int, raw: bytes) -> tuple[str, dict[str, Any]]:
    """How to show an answer of the function ("HTTP 401 'signature missing or invalid'"), and its JSON object."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    said = body.get("message") or body.get("status")
    return f"HTTP {status}" + (f" {str(said)[:100]!r}" if said else ""), body


def check_webhook(target: Target, stored: Stored) -> Iterator[Check]:
    url = target.outputs.get("WebhookUrl")
    if not url:
        yield _not_checked("webhook", "the stack has no WebhookUrl output")
        return
    what, body = f"webhook {url}", PING.read_bytes()
    signing, shared = lines(stored.values.get(SIGNING_SECRET)), lines(stored.values.get(WEBHOOK_SECRET))
    try:
        if not (signing or shared):
            yield _not_checked(f"{what}, signed", "no secret in Parameter Store to sign with")
        else:
            # The first line is the one PagerDuty signs with: a second one is the old secret, during a rotation.
            status, _, raw = send(body, url, signing[:1], webhook_secret=shared[0] if shared else None)
            said, answer = _said(status, raw)
            if 200 <= status < 300 and (answer.get("status"), answer.get("reason")) == ("ignored", "ping"):
                yield Check(f"{what}: a signed pagey.ping is answered {status} ignored (ping)")
            elif status == 401:
                todo = (
                    "the function does not use the secret stored in Parameter Store: it re-reads it within 5 minutes"
                    f" of a change (run again then), or it reads another prefix than {target.prefix}"
                )
                yield Check(what, "the signed pagey.ping got HTTP 401", todo)
            else:
                yield Check(what, f"the signed pagey.ping got {said}", f"read the logs: {target.logs}")
        status, _, raw = send(body, url, [])
    except SendError as error:
        yield Check(what, str(error), f"check the URL; {target.redeploy}")
        return
    said, _ = _said(status, raw)
    if status == 401:
        yield Check(f"{what}: an unsigned one is refused with 401")
    elif 200 <= status < 300:
        todo = f"anyone can post to it: deploy a function that authenticates deliveries; {target.redeploy}"
        yield Check(what, f"an unsigned pagey.ping was accepted ({said})", todo)
    else:
        yield Check(what, f"an unsigned pagey.ping got {said}, not 401", f"read the logs: {target.logs}")


def checks(target: Target) -> Iterator[tuple[Check, Stored]]:
    """Each check as it completes, with what Parameter Store holds (whose secrets its lines must not show)."""
    yield check_outputs(target), Stored()
    stored = read_parameters(target)
    yield from ((check, stored) for check in check_parameters(target, stored))
    yield check_devin(target, stored), stored
    yield check_pagerduty(target, stored), stored
    yield check_ledger(target), stored
    if target.deployed:
        yield check_layer(target), stored
    yield from ((check, stored) for check in check_webhook(target, stored))


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "****")
    return text


def run(target: Target, write: Callable[[str], None] = print) -> int:
    """Print each check as it completes, then the count; 0 when all passed, else 1."""
    total = failed = 0
    for check, stored in checks(target):
        total += 1
        secrets = stored.secrets()
        if check.problem is None:
            write(_scrub(f"✓ {check.what}", secrets))
            continue
        failed += 1
        write(_scrub(f"✗ {check.what}: {check.problem}", secrets))
        write(_scrub(f"  → {check.todo}", secrets))
    write(f"{total} checks, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/doctor", description=__doc__.splitlines()[0], allow_abbrev=False)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", metavar="NAME", help="a deployed stack (region from AWS_REGION / AWS_PROFILE)")
    which.add_argument("--local", action="store_true", help="the stack scripts/local is running")
    parser.add_argument("--port", type=int, help="with --local: the local stack whose webhook listens on PORT")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage; --help exits 0
        return 0 if exit_.code in (0, None) else 2
    if args.port is not None and not args.local:
        print("error: --port picks a local stack: use it with --local", file=sys.stderr)
        return 2
    try:
        target = local_target(args.port) if args.local else stack_target(args.stack)
    except Unusable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return run(target, lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
