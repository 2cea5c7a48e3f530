"""Rehearse `sam deploy` on this machine, with no AWS account, no Docker and no traffic beyond loopback.

    scripts/rehearse-deploy                     # scripts/build first, then all of the below
    scripts/rehearse-deploy --skip-build        # reuse the build in --build-dir (it must be of this template)

What `sam deploy` does, step by step, each with the tool that does it for real: scripts/build; `sam validate --lint`
and cfn-lint on the template; samconfig.toml's deploy settings as `sam deploy` reads them (SAM CLI's own parser),
every override checked against the template's parameters; a moto server on 127.0.0.1 (a free port), a bucket and
`sam package` with a config file of the rehearsal's own; the SAM transform (samtranslator, which SAM CLI and
CloudFormation use); create_stack in moto with the samconfig's overrides, leaving out the resource types moto
cannot create (a pinned list, printed). Then what was created is checked against what the code needs: the outputs,
both functions (handler in the package, runtime, memory, timeout, environment, role and its statements), the
table's key and indexes, the schedule, the operator's policies. Then scripts/doctor --stack runs against it with
every connection that would leave the machine refused, and exactly the checks that need the real Devin, a public
webhook URL and AWS's layer must say so. It ends with what a rehearsal cannot prove: it is not a deploy.

Exit status: 0 when everything held, 1 when something did not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import ast
import functools
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
HANDLER = ROOT / "handler"
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
BUILD_DIR = ROOT / ".aws-sam" / "build"
GUARD = Path(__file__).resolve().parent / "loopback_guard.py"
if str(HANDLER) not in sys.path:
    # Last: nothing of the function's may shadow what this process imports (the code's names: bridge.*).
    sys.path.append(str(HANDLER))

REGION = "us-east-1"
BUCKET = "rehearsal-artifacts"
# Fake values only: moto's account, and Parameter Store values that no real service would accept.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # noqa: S105 - moto's


SEEDED = {
    "devin-api-key": ("SecureString", "cog_rehearsal_not_a_real_key"),
    "devin-org-id": ("String", "org-rehearsal"),
    "pagerduty-signing-secret": ("SecureString", "rehearsal-signing-secret"),
}
TIMEOUT_SECONDS = 300

RUNTIME = "python3.13"
ARCHITECTURE = "arm64"


@dataclass(frozen=True)
class FunctionContract:
    """What the code needs of one function, whatever the template says: checked on the function moto created."""

    handler: str
    memory_mb: int
    timeout_seconds: int
    why: str
    # (action, resource) the role must allow, and nothing more; resources use the placeholders of Stack.arns.
    grants: frozenset[tuple[str, str]]


_SECRETS_GRANTS = {("ssm:GetParameters", "{prefix_arn}"), ("kms:Decrypt", "{kms_keys}")}
FUNCTIONS = {
    "PagerDutyPostmortemFunction": FunctionContract(
        handler="app.lambda_handler",
        memory_mb=256,
        timeout_seconds=25,
        why="answers before the HTTP API gives up at 30 s",
        grants=frozenset(
            {*_SECRETS_GRANTS, ("dynamodb:UpdateItem", "{table_arn}"), ("dynamodb:DeleteItem", "{table_arn}")}
        ),
    ),
    "FollowUpFunction": FunctionContract(
        handler="follow_up.lambda_handler",
        memory_mb=256,
        timeout_seconds=120,
        why="reads every open session, 10 s each at most, and stops early",
        grants=frozenset(
            {
                *_SECRETS_GRANTS,
                ("dynamodb:Query", "{table_arn}/index/{following_index}"),
                ("dynamodb:UpdateItem", "{table_arn}"),
            }
        ),
    ),
}
# What scripts/ledger and scripts/doctor call (LedgerOperatorPolicy), and the doctor's layer check (LayerCheckPolicy).
POLICIES = {
    "LedgerOperatorPolicy": frozenset(
        {
            ("dynamodb:Query", "{table_arn}/index/{status_index}"),
            ("dynamodb:GetItem", "{table_arn}"),
            ("dynamodb:DeleteItem", "{table_arn}"),
            ("dynamodb:DescribeTable", "{table_arn}"),
            ("dynamodb:DescribeTimeToLive", "{table_arn}"),
            *_SECRETS_GRANTS,
            ("cloudformation:DescribeStacks", "{stack_arn}"),
        }
    ),
    "LayerCheckPolicy": frozenset(
        {
            ("lambda:GetFunctionConfiguration", "{function_arn:PagerDutyPostmortemFunction}"),
            ("lambda:GetFunctionConfiguration", "{function_arn:FollowUpFunction}"),
            ("lambda:GetLayerVersion", "{layer_arn}"),
        }
    ),
}
# Each variable both functions read: a template parameter's value ("param"), the ledger's name, or a fixed value.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "SSM_PARAMETER_PREFIX": ("param", "SsmParameterPrefix"),
    "DEVIN_API_BASE_URL": ("param", "DevinApiBaseUrl"),
    "EVENT_TYPES": ("param", "EventTypes"),
    "FOLLOW_UP_EVENT_TYPES": ("param", "FollowUpEventTypes"),
    "PRIORITIES": ("param", "Priorities"),
    "URGENCIES": ("param", "Urgencies"),
    "DEVIN_PLAYBOOK_ID": ("param", "DevinPlaybookId"),
    "LEDGER_RETENTION_DAYS": ("param", "LedgerRetentionDays"),
    "PAGERDUTY_API_BASE_URL": ("param", "PagerDutyApiBaseUrl"),
    "PAGERDUTY_READ_SECONDS": ("param", "PagerDutyReadSeconds"),
    "FOLLOW_UP_DAYS": ("param", "FollowUpDays"),
    "MAX_EVENT_AGE_HOURS": ("param", "MaxEventAgeHours"),
    "TRACING": ("param", "Tracing"),
    "TABLE_NAME": ("table", ""),
    "POWERTOOLS_SERVICE_NAME": ("value", "pagerduty-postmortem"),
    "POWERTOOLS_METRICS_NAMESPACE": ("value", "PagerDutyPostmortem"),
    "POWERTOOLS_PARAMETERS_MAX_AGE": ("value", "300"),
    "POWERTOOLS_LOG_LEVEL": ("value", "INFO"),
    "AWS_ENDPOINT_URL": ("value", ""),
}
# The ledger's key and indexes as the code reads them: (attribute, type, key type), by index name.
TABLE_KEY = [("incident_id", "S", "HASH")]
RANGE_KEYS = {"following": ("session_recorded_epoch", "N"), "by-status": ("recorded_at", "S")}

# Resource types moto's CloudFormation creates, each checked to exist after create_stack (moto skips a type it
# does not know with only a warning, so "CREATE_COMPLETE" alone proves nothing).
CREATED = {
    "AWS::Lambda::Function": "get_function_configuration",
    "AWS::IAM::Role": "get_role",
    "AWS::IAM::ManagedPolicy": "get_policy",
    "AWS::Lambda::Permission": "the function's resource policy",
    "AWS::Events::Rule": "describe_rule",
    "AWS::Logs::LogGroup": "describe_log_groups",
    "AWS::DynamoDB::Table": "describe_table",
    "AWS::SNS::Topic": "get_topic_attributes",
}
# Resource types left out because moto cannot create them (pinned: a type in neither list fails the rehearsal, and
# so does an entry the template no longer has). References to them become placeholders.
LEFT_OUT = {
    "AWS::ApiGatewayV2::Api": "moto's CloudFormation has no HTTP API: WebhookUrl points at a placeholder",
    "AWS::ApiGatewayV2::Stage": "the HTTP API's stage and its throttling, left out with the API",
    "AWS::CloudWatch::Alarm": "moto's CloudFormation has no CloudWatch alarms",
    "AWS::CloudWatch::Dashboard": "its body refers to the alarms' ARNs, which are left out",
    "AWS::SNS::Subscription": "moto's CloudFormation has no SNS subscriptions: the alarm e-mail",
    "AWS::Logs::QueryDefinition": "moto's CloudFormation has no Logs Insights query definitions",
}
# The doctor's checks that cannot pass against moto, and why; every other check must pass.
DOCTOR_CANNOT_PASS = {
    "Devin": "it needs the real Devin API",
    "Powertools layer": "moto's CloudFormation drops Layers and moto has no public layers",
    "webhook": "it needs the HTTP API's public URL, left out",
}
UNPROVABLE = [
    "AWS's own SAM transform: this ran samtranslator {translator} (SAM CLI's); CloudFormation runs its current one",
    "API Gateway: the HTTP API, its stage, route, throttling and the permission's effect (left out; the webhook URL"
    " is a placeholder)",
    "the alarms, the dashboard, the alarm e-mail subscription and the saved Logs Insights queries (left out)",
    "the Powertools layer: that the ARN resolves in your region and holds the pinned release (moto drops Layers;"
    " run scripts/doctor --stack after the deploy)",
    "arm64 and X-Ray tracing: moto creates x86_64 functions without tracing (the values CloudFormation is given"
    " are checked above)",
    "the table's TTL (the rehearsal applied it itself), point-in-time recovery and encryption: moto's CloudFormation"
    " ignores them",
    "IAM enforcement: moto creates roles and policies but enforces none; a missing permission shows only when the"
    " function runs in AWS. The roles' managed policies are checked in the transformed template only",
    "your account: quotas, names already taken, a stack in another state, the real Devin and PagerDuty",
]


class Failed(Exception):
    """A step could not go on; str() says why."""


@dataclass
class Report:
    write: Callable[[str], None]
    failures: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.write(f"\n== {title}")

    def ok(self, line: str) -> None:
        self.write(f"✓ {line}")

    def fail(self, line: str) -> None:
        self.failures.append(line)
        self.write(f"✗ {line}")

    def check(self, held: bool, line: str, problem: str = "") -> bool:
        if held:
            self.ok(line)
        else:
            self.fail(f"{line}: {problem}" if problem else line)
        return held

    def note(self, line: str) -> None:
        self.write(f"  {line}")


# --- SAM CLI's own reading of the samconfig --------------------------------------------------------------------


def sam_cli() -> Path:
    return Path(os.environ.get("SAM_CLI") or ROOT / ".venv-sam" / "bin" / "sam")


def sam_python(sam: Path | None = None) -> Path:
    """The interpreter SAM CLI runs under (its script's #! line), which alone can import samcli."""
    sam = sam or sam_cli()
    try:
        first = sam.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    except (OSError, IndexError):
        first = ""
    if first.startswith("#!") and "python" in first:
        return Path(first[2:].split()[0])
    return sam.parent / "python"


def _deploy_settings_argv(samconfigs: tuple[Path, ...], template: Path) -> list[str]:
    paths = [str(path) for path in samconfigs]
    return [str(sam_python()), "-m", "scripts.sam_read", "deploy-settings", "--template", str(template), *paths]


@functools.cache
def read_deploy_settings(samconfigs: tuple[Path, ...], template: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    """{samconfig path: {environment: what `sam deploy --config-env ENV` reads}}, one SAM CLI run for them all."""
    result = subprocess.run(  # noqa: S603 - SAM CLI's Python with our own module
        _deploy_settings_argv(samconfigs, template),
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise Failed(f"SAM CLI could not read {', '.join(map(str, samconfigs))}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def override_problems(overrides: Mapping[str, str], template: dict[str, Any]) -> list[str]:
    """Why CloudFormation would refuse each override: an unknown name, or a value its declaration does not allow."""
    from local.template import ParameterError, check_parameters

    problems = []
    for name, value in overrides.items():
        try:
            check_parameters({name: value}, template)
        except ParameterError as error:
            problems.append(str(error))
    return problems


def settings_problems(settings: Mapping[str, Any], template: dict[str, Any]) -> list[str]:
    if "error" in settings:
        return [f"sam deploy cannot read it: {settings['error']}"]
    return override_problems(settings.get("parameter_overrides") or {}, template)


def samconfig_snippets(markdown: str) -> list[str]:
    """The ```toml blocks of a Markdown file that set parameter_overrides: environments the docs tell people to add."""
    blocks = re.findall(r"^```toml[^\n]*\n(.*?)^```", markdown, flags=re.M | re.S)
    return [block for block in blocks if "parameter_overrides" in block]


def with_snippet(samconfig_text: str, snippet: str) -> str:
    """samconfig.toml as it reads once a snippet from the docs is added to it (or the snippet alone, if it is a
    whole file of its own)."""
    combined = f"{samconfig_text.rstrip()}\n\n{snippet}"
    try:
        tomllib.loads(combined)
        return combined
    except tomllib.TOMLDecodeError:
        return snippet if re.search(r"^version\s*=", snippet, flags=re.M) else f"version = 0.1\n{snippet}"


# --- the template, transformed, with the types moto cannot create left out -------------------------------------


def placeholder(name: str, attribute: str | None = None) -> str:
    return f"rehearsal-left-out-{name}{'-' + attribute if attribute else ''}".lower()


def leave_out(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The template without the LEFT_OUT types (references to them replaced by placeholders), {name: type} of what
    was left out, and the problems: a type in neither list, or a pinned entry the template no longer has."""
    resources = template.get("Resources", {})
    types = {name: resource.get("Type", "") for name, resource in resources.items()}
    problems = [
        f"{kind} ({', '.join(sorted(n for n, t in types.items() if t == kind))}) is neither created nor left out:"
        " add it to CREATED (after checking moto creates it) or to LEFT_OUT in scripts/rehearse_deploy.py"
        for kind in sorted(set(types.values()) - set(CREATED) - set(LEFT_OUT))
    ]
    problems += [
        f"{kind} is pinned in {where} but the template has none: remove it from {where} in scripts/rehearse_deploy.py"
        for where, pinned in (("CREATED", CREATED), ("LEFT_OUT", LEFT_OUT))
        for kind in sorted(set(pinned) - set(types.values()))
    ]
    gone = {name: kind for name, kind in types.items() if kind in LEFT_OUT}

    def sub(text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            target, _, attribute = match.group(1).partition(".")
            return placeholder(target, attribute or None) if target in gone else match.group(0)

        return re.sub(r"\$\{([^!}][^}]*)\}", replace, text)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and node["Ref"] in gone:
            return placeholder(node["Ref"])
        if set(node) == {"Fn::GetAtt"}:
            target = node["Fn::GetAtt"]
            target = target.split(".", 1) if isinstance(target, str) else target
            if target[0] in gone:
                return placeholder(*target)
        if set(node) == {"Fn::Sub"}:
            value = node["Fn::Sub"]
            return {"Fn::Sub": sub(value) if isinstance(value, str) else [sub(value[0]), walk(value[1])]}
        return {key: walk(value) for key, value in node.items()}

    kept = walk({**template, "Resources": {n: r for n, r in resources.items() if n not in gone}})
    for resource in kept["Resources"].values():
        depends = resource.get("DependsOn")
        if depends is not None:
            remaining = [d for d in ([depends] if isinstance(depends, str) else depends) if d not in gone]
            if remaining:
                resource["DependsOn"] = remaining
            else:
                del resource["DependsOn"]
    return kept, gone, problems


TRANSLATOR_VERSION = "import samtranslator; print(samtranslator.__version__)"
# Outputs the rehearsal adds so that moto resolves, by CloudFormation's rules, properties it then does not apply.
RESOLVED = "RehearsalResolved"


def add_resolution_outputs(template: dict[str, Any]) -> None:
    outputs = template.setdefault("Outputs", {})
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function":
            outputs[f"{RESOLVED}Layers{name}"] = {"Value": {"Fn::Join": [" ", props.get("Layers", [])]}}
            outputs[f"{RESOLVED}Architectures{name}"] = {"Value": {"Fn::Join": [" ", props.get("Architectures", [])]}}
            outputs[f"{RESOLVED}Tracing{name}"] = {"Value": props.get("TracingConfig", {}).get("Mode", "")}
        if resource["Type"] == "AWS::IAM::Role":
            outputs[f"{RESOLVED}ManagedPolicies{name}"] = {
                "Value": {"Fn::Join": [" ", props.get("ManagedPolicyArns", [])]}
            }


def capability_problems(template: dict[str, Any], capabilities: list[str]) -> list[str]:
    """What CloudFormation's InsufficientCapabilities check would say (moto does not check)."""
    iam = {n: r for n, r in template["Resources"].items() if r["Type"].startswith("AWS::IAM::")}
    names = {"RoleName", "ManagedPolicyName", "UserName", "GroupName", "InstanceProfileName"}
    named = sorted(n for n, r in iam.items() if names & set(r.get("Properties", {})))
    if named and "CAPABILITY_NAMED_IAM" not in capabilities:
        return [f"named IAM resources ({', '.join(named)}) need CAPABILITY_NAMED_IAM in the samconfig's capabilities"]
    if iam and not {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"} & set(capabilities):
        return [f"IAM resources ({', '.join(sorted(iam))}) need CAPABILITY_IAM in the samconfig's capabilities"]
    return []


# --- the build -------------------------------------------------------------------------------------------------


def _without_build_marks(template: dict[str, Any]) -> dict[str, Any]:
    """A template as `sam build` writes it, less what sam build changes: CodeUri and Metadata.SamResourceId."""
    copy = json.loads(json.dumps(template))
    for resource in copy.get("Resources", {}).values():
        resource.get("Properties", {}).pop("CodeUri", None)
        metadata = resource.get("Metadata")
        if isinstance(metadata, dict):
            metadata.pop("SamResourceId", None)
            if not metadata:
                del resource["Metadata"]
    return copy


def build_problems(source: Path, build_dir: Path) -> list[str]:
    """Why the build in `build_dir` is not of `source` and handler/ as they are now (a stale build)."""
    from local.template import load_template

    built_template = build_dir / "template.yaml"
    if not built_template.is_file():
        return [f"{build_dir} holds no build: run scripts/build (or the rehearsal without --skip-build)"]
    if _without_build_marks(load_template(built_template)) != _without_build_marks(load_template(source)):
        return [f"the build in {build_dir} is not of {source}: run the rehearsal without --skip-build"]
    problems = []
    sources = [path for path in sorted(HANDLER.rglob("*")) if path.is_file() and "__pycache__" not in path.parts]
    for function in FUNCTIONS:
        for path in sources:
            built = build_dir / function / path.relative_to(HANDLER)
            if not built.is_file() or built.read_bytes() != path.read_bytes():
                problems.append(f"{built} is not handler/{path.relative_to(HANDLER)}: run without --skip-build")
                break
    return problems


# --- processes -------------------------------------------------------------------------------------------------


@dataclass
class Step:
    """A process started now and collected later: the rehearsal runs what does not depend on each other at once."""

    title: str
    process: subprocess.Popen[str]
    started: float = field(default_factory=time.monotonic)
    err: str = ""  # stderr, when it was kept apart from stdout

    def collect(self) -> tuple[int, str, float]:
        """Exit status, stdout (with stderr unless kept apart) and seconds taken."""
        try:
            out, err = self.process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            out, code = f"{out}\n(killed after {TIMEOUT_SECONDS} s)", 124
        else:
            code = self.process.returncode
        self.err = err or ""
        return code, out, time.monotonic() - self.started

    def stop(self) -> None:
        """Kill it if it still runs: a rehearsal that stopped early leaves nothing behind."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


_STARTED: list[Step] = []


def start(title: str, argv: list[str], env: Mapping[str, str], *, merge: bool = True) -> Step:
    """Start a program; `merge=False` keeps its stderr apart (for one whose stdout is JSON)."""
    process = subprocess.Popen(  # noqa: S603 - fixed programs of this repository and its venvs
        argv,
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        text=True,
    )
    step = Step(title, process)
    _STARTED.append(step)
    return step


def _tail(text: str, lines: int = 30) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in kept)


# --- moto --------------------------------------------------------------------------------------------------------


class Moto:
    """A moto server on 127.0.0.1 (a free port), reached as `localhost`: moto reads a TemplateURL's bucket only
    with that host name."""

    def __enter__(self) -> Moto:
        from moto.server import ThreadedMotoServer

        # moto's werkzeug would print a line per request.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        _, self.port = self.server.get_host_and_port()
        self.endpoint = f"http://localhost:{self.port}"
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop()

    @functools.cache  # noqa: B019 - one Moto per rehearsal; a client takes ~0.1 s to make
    def client(self, service: str, region: str) -> Any:
        import boto3

        session = boto3.session.Session(
            region_name=region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        return session.client(service, endpoint_url=self.endpoint)


# --- checks of the created stack -----------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _services(statement: Mapping[str, Any]) -> set[str]:
    principal = statement.get("Principal")
    return {str(s) for s in _as_list(principal.get("Service", []))} if isinstance(principal, dict) else set()


def _document(raw: Any) -> dict[str, Any]:
    """A policy document as moto answers it: a dict, JSON, or (for a role's inline policy) a Python repr."""
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return ast.literal_eval(raw)


def grants(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for statement in _as_list(document.get("Statement", []))
        if statement.get("Effect") == "Allow"
        for action in _as_list(statement.get("Action", []))
        for resource in _as_list(statement.get("Resource", []))
    }


@dataclass
class Stack:
    """What create_stack made, as the checks need it."""

    name: str
    region: str
    account: str
    parameters: dict[str, str]  # every template parameter, default or override
    template: dict[str, Any]  # what was created (transformed, left-out types removed)
    physical: dict[str, str]  # logical id -> physical id
    outputs: dict[str, str]
    clients: Callable[[str], Any]

    @functools.cached_property
    def arns(self) -> dict[str, str]:
        from bridge.ledger import FOLLOWING_INDEX

        from scripts.ledger_cli import INDEX

        table = self.clients("dynamodb").describe_table(TableName=self.physical["LedgerTable"])["Table"]
        partition = "aws"
        prefix = self.parameters["SsmParameterPrefix"]
        values = {
            "prefix_arn": f"arn:{partition}:ssm:{self.region}:{self.account}:parameter{prefix}/*",
            "kms_keys": f"arn:{partition}:kms:{self.region}:{self.account}:key/*",
            "table_arn": table["TableArn"],
            "following_index": FOLLOWING_INDEX,
            "status_index": INDEX,
            "stack_arn": f"arn:{partition}:cloudformation:{self.region}:{self.account}:stack/{self.name}/*",
            "layer_arn": self.outputs.get(f"{RESOLVED}LayersPagerDutyPostmortemFunction", ""),
        }
        for function in FUNCTIONS:
            values[f"function_arn:{function}"] = (
                f"arn:{partition}:lambda:{self.region}:{self.account}:function:{self.physical.get(function, '?')}"
            )
        return values


def _fill(patterns: frozenset[tuple[str, str]], values: Mapping[str, str]) -> set[tuple[str, str]]:
    def fill(text: str) -> str:
        return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], text)

    return {(action, fill(resource)) for action, resource in patterns}


def _describe_grants(found: set[tuple[str, str]], wanted: set[tuple[str, str]]) -> str:
    missing, extra = sorted(wanted - found), sorted(found - wanted)
    parts = [f"missing {a} on {r}" for a, r in missing] + [f"more than needed: {a} on {r}" for a, r in extra]
    return "; ".join(parts)


def check_resources(stack: Stack, report: Report) -> None:
    cloudformation = stack.clients("cloudformation")
    summaries = cloudformation.list_stack_resources(StackName=stack.name)["StackResourceSummaries"]
    listed = {s["LogicalResourceId"]: s for s in summaries}
    missing = []
    for name, resource in stack.template["Resources"].items():
        summary = listed.get(name)
        if summary is None or summary.get("ResourceStatus") != "CREATE_COMPLETE":
            missing.append(f"{name} ({resource['Type']})")
            continue
        problem = _exists(stack, name, resource)
        if problem:
            missing.append(f"{name} ({resource['Type']}): {problem}")
    counts: dict[str, int] = {}
    for resource in stack.template["Resources"].values():
        counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
    created = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
    report.check(not missing, f"every resource exists in moto: {created}", "; ".join(missing))


def _exists(stack: Stack, name: str, resource: dict[str, Any]) -> str | None:
    """None when moto really holds the resource, else what is wrong."""
    from botocore.exceptions import ClientError

    kind, physical = resource["Type"], stack.physical.get(name, "")
    try:
        if kind == "AWS::Lambda::Function":
            stack.clients("lambda").get_function_configuration(FunctionName=physical)
        elif kind == "AWS::IAM::Role":
            stack.clients("iam").get_role(RoleName=physical)
        elif kind == "AWS::IAM::ManagedPolicy":
            stack.clients("iam").get_policy(PolicyArn=physical)
        elif kind == "AWS::Events::Rule":
            stack.clients("events").describe_rule(Name=physical)
        elif kind == "AWS::Logs::LogGroup":
            groups = stack.clients("logs").describe_log_groups(logGroupNamePrefix=physical)["logGroups"]
            if physical not in {g["logGroupName"] for g in groups}:
                return "no such log group"
        elif kind == "AWS::DynamoDB::Table":
            stack.clients("dynamodb").describe_table(TableName=physical)
        elif kind == "AWS::SNS::Topic":
            stack.clients("sns").get_topic_attributes(TopicArn=physical)
        elif kind == "AWS::Lambda::Permission":
            return _permission_problem(stack, resource["Properties"])
        else:
            return f"the rehearsal has no way to check a {kind}: add one to _exists"
    except ClientError as error:
        return error.response.get("Error", {}).get("Code", str(error))
    return None


def _function_of(stack: Stack, reference: Any) -> str:
    if isinstance(reference, dict):
        target = reference.get("Ref") or _as_list(reference.get("Fn::GetAtt", [""]))[0]
        return stack.physical.get(str(target).split(".")[0], str(reference))
    return str(reference)


def _permission_problem(stack: Stack, props: dict[str, Any]) -> str | None:
    from botocore.exceptions import ClientError

    function = _function_of(stack, props.get("FunctionName"))
    try:
        policy = _document(stack.clients("lambda").get_policy(FunctionName=function)["Policy"])
    except ClientError:
        return f"{function} has no resource policy"
    principals = {service for statement in policy.get("Statement", []) for service in _services(statement)}
    return None if props.get("Principal") in principals else f"{function} lets no {props.get('Principal')} invoke it"


def check_outputs(stack: Stack, gone: Mapping[str, str], report: Report) -> None:
    declared = {n: o for n, o in stack.template.get("Outputs", {}).items() if not n.startswith(RESOLVED)}
    problems, shown = [], []
    for name, output in declared.items():
        value = stack.outputs.get(name)
        if not value:
            problems.append(f"{name} missing")
            continue
        reference = output.get("Value")
        target = reference.get("Ref") if isinstance(reference, dict) and set(reference) == {"Ref"} else None
        if target in stack.physical and value != stack.physical[target]:
            problems.append(f"{name} is {value}, not that of {target} ({stack.physical[target]})")
        placeholders = [n for n in gone if placeholder(n) in value]
        shown.append(f"{name}" + (f" (placeholder: {', '.join(placeholders)} left out)" if placeholders else ""))
    report.check(not problems, f"{len(declared)} outputs: {', '.join(shown)}", "; ".join(problems))


def expected_environment(stack: Stack) -> dict[str, str]:
    table = stack.physical["LedgerTable"]
    source = {"param": stack.parameters.get, "table": lambda _: table, "value": lambda value: value}
    return {name: str(source[kind](arg)) for name, (kind, arg) in ENVIRONMENT.items()}


def check_functions(stack: Stack, report: Report, code: Callable[[str], zipfile.ZipFile]) -> None:
    functions = {n for n, r in stack.template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    report.check(
        functions == set(FUNCTIONS),
        f"the functions are the ones the code has: {', '.join(sorted(FUNCTIONS))}",
        f"the template has {', '.join(sorted(functions)) or 'none'}: give scripts/rehearse_deploy.py a contract for"
        " each",
    )
    values = stack.arns
    for name, contract in FUNCTIONS.items():
        if name not in functions:
            continue
        lambda_ = stack.clients("lambda")
        config = lambda_.get_function_configuration(FunctionName=stack.physical[name])
        facts = {
            "handler": (config.get("Handler"), contract.handler),
            "runtime": (config.get("Runtime"), RUNTIME),
            "memory": (config.get("MemorySize"), contract.memory_mb),
            "timeout": (config.get("Timeout"), contract.timeout_seconds),
        }
        wrong = [
            f"{what} is {found}, the code needs {wanted}" for what, (found, wanted) in facts.items() if found != wanted
        ]
        report.check(
            not wrong,
            f"{name}: handler {contract.handler}, {RUNTIME}, {contract.memory_mb} MB, {contract.timeout_seconds} s"
            f" ({contract.why})",
            "; ".join(wrong),
        )
        check_package(name, str(config.get("Handler", "")), code(name), report)
        check_environment(stack, name, config, report)
        check_role(stack, name, config, _fill(contract.grants, values), report)


def check_package(name: str, handler: str, package: zipfile.ZipFile, report: Report) -> None:
    """The code the function runs: the handler defined where Handler says, what handler/requirements.txt bundles,
    scripts/build's bytecode, and not Powertools (it comes from the layer; bundled, it would shadow it)."""
    module, _, function = handler.rpartition(".")
    files = set(package.namelist())
    source = f"{module.replace('.', '/')}.py"
    problems = []
    if source not in files:
        problems.append(f"the package has no {source} for Handler {handler}")
    else:
        tree = ast.parse(package.read(source))
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        if function not in defined:
            problems.append(f"{source} defines no {function} (Handler {handler})")
    tag = f"cpython-{RUNTIME.removeprefix('python').replace('.', '')}"
    folder, _, stem = source.removesuffix(".py").rpartition("/")
    if f"{folder + '/' if folder else ''}__pycache__/{stem}.{tag}.pyc" not in files:
        problems.append(f"no {tag} bytecode for {source} (scripts/build compiles it)")
    for requirement in _bundled_requirements():
        if f"{requirement}/__init__.py" not in files:
            problems.append(f"{requirement} (handler/requirements.txt) is not bundled")
    if any(path.startswith("aws_lambda_powertools/") for path in files):
        problems.append("Powertools is bundled: it must come from the layer")
    report.check(
        not problems,
        f"{name}'s package: {handler} is defined, {', '.join(_bundled_requirements())} bundled, {tag} bytecode,"
        " no Powertools of its own",
        "; ".join(problems),
    )


@functools.cache
def _bundled_requirements() -> tuple[str, ...]:
    names = []
    for line in (HANDLER / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)", line.strip())
        if match and not line.strip().startswith("#"):
            names.append(match.group(1).lower().replace("-", "_"))
    return tuple(names)


def check_environment(stack: Stack, name: str, config: Mapping[str, Any], report: Report) -> None:
    from bridge.config import Settings
    from bridge.errors import ConfigurationError

    # Lambda hands the function strings; moto keeps a Number parameter's value as a number.
    found = {k: str(v) for k, v in (config.get("Environment") or {}).get("Variables", {}).items()}
    wanted = expected_environment(stack)
    problems = [f"{k} is {found[k]!r}, should be {v!r}" for k, v in wanted.items() if k in found and found[k] != v]
    problems += [f"{k} missing" for k in wanted if k not in found]
    problems += [f"{k} is not one the code reads" for k in found if k not in wanted]
    try:
        Settings.from_env(found)
    except ConfigurationError as error:
        problems.append(f"the function would refuse it: {error}")
    report.check(
        not problems,
        f"{name}'s environment: {len(wanted)} variables from the stack's parameters and its table, accepted by"
        " bridge.config.Settings",
        "; ".join(problems),
    )


def check_role(
    stack: Stack, name: str, config: Mapping[str, Any], wanted: set[tuple[str, str]], report: Report
) -> None:
    iam = stack.clients("iam")
    roles = {
        iam.get_role(RoleName=stack.physical[n])["Role"]["Arn"]: n
        for n, r in stack.template["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
    }
    role = roles.get(str(config.get("Role")))
    if role is None:
        report.fail(f"{name}'s role {config.get('Role')} is none the stack created")
        return
    physical = stack.physical[role]
    trust = _document(iam.get_role(RoleName=physical)["Role"]["AssumeRolePolicyDocument"])
    services = {service for statement in trust.get("Statement", []) for service in _services(statement)}
    statements = [
        statement
        for policy in iam.list_role_policies(RoleName=physical)["PolicyNames"]
        for statement in _as_list(
            _document(iam.get_role_policy(RoleName=physical, PolicyName=policy)["PolicyDocument"]).get("Statement", [])
        )
    ]
    found = grants({"Statement": statements})
    problems = [] if "lambda.amazonaws.com" in services else [f"Lambda may not assume it ({sorted(services)})"]
    if found != wanted:
        problems.append(_describe_grants(found, wanted))
    problems += _kms_problems(stack, statements)
    report.check(
        not problems,
        f"{name}'s role {role}: {len(wanted)} grants, each what the code calls, on this stack's ARNs",
        "; ".join(problems),
    )
    managed = stack.outputs.get(f"{RESOLVED}ManagedPolicies{role}", "").split()
    needed = ["AWSLambdaBasicExecutionRole"] + (
        ["AWSXrayWriteOnlyAccess"] if stack.parameters["Tracing"] == "Active" else []
    )
    absent = [policy for policy in needed if not any(arn.endswith(f"/{policy}") for arn in managed)]
    report.check(
        not absent,
        f"{role} is given {', '.join(needed)} (in the transformed template: moto does not attach them)",
        f"missing {', '.join(absent)}",
    )


def _kms_problems(stack: Stack, statements: list[dict[str, Any]]) -> list[str]:
    via = f"ssm.{stack.region}.amazonaws.com"
    prefix_arn = stack.arns["prefix_arn"]
    wanted = {
        "StringEquals": {"kms:ViaService": via},
        "StringLike": {"kms:EncryptionContext:PARAMETER_ARN": prefix_arn},
    }
    return [
        f"kms:Decrypt is not limited to SSM reading {prefix_arn} (Condition {s.get('Condition')})"
        for s in statements
        if "kms:Decrypt" in _as_list(s.get("Action")) and s.get("Condition") != wanted
    ]


def check_policies(stack: Stack, report: Report) -> None:
    iam, values = stack.clients("iam"), stack.arns
    for name, patterns in POLICIES.items():
        arn = stack.physical.get(name)
        if arn is None:
            report.fail(f"{name}: the stack has no such policy")
            continue
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = _document(iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"])
        wanted, found = _fill(patterns, values), grants(document)
        problems = [_describe_grants(found, wanted)] if found != wanted else []
        problems += _kms_problems(stack, _as_list(document.get("Statement", [])))
        attached = iam.get_policy(PolicyArn=arn)["Policy"].get("AttachmentCount", 0)
        if attached:
            problems.append(f"attached to {attached} principal(s): it is for the operator to attach")
        report.check(not problems, f"{name}: {len(wanted)} grants, attached to nobody", "; ".join(problems))


def check_table(stack: Stack, report: Report) -> None:
    from bridge.ledger import FOLLOWING, FOLLOWING_INDEX

    from scripts.ledger_cli import INDEX

    table = stack.clients("dynamodb").describe_table(TableName=stack.physical["LedgerTable"])["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}

    def key(schema: list[dict[str, str]]) -> list[tuple[str, str, str]]:
        return [(k["AttributeName"], types.get(k["AttributeName"], "?"), k["KeyType"]) for k in schema]

    wanted_indexes = {
        FOLLOWING_INDEX: [(FOLLOWING, "S", "HASH"), (*RANGE_KEYS["following"], "RANGE")],
        INDEX: [("status", "S", "HASH"), (*RANGE_KEYS["by-status"], "RANGE")],
    }
    found_indexes = {
        i["IndexName"]: (key(i["KeySchema"]), i.get("Projection", {}).get("ProjectionType"))
        for i in table.get("GlobalSecondaryIndexes", [])
    }
    problems = []
    if key(table["KeySchema"]) != TABLE_KEY:
        problems.append(f"key {key(table['KeySchema'])}, the code needs {TABLE_KEY}")
    for index, schema in wanted_indexes.items():
        if found_indexes.get(index) != (schema, "ALL"):
            problems.append(f"index {index} is {found_indexes.get(index)}, the code needs {(schema, 'ALL')}")
    problems += [f"index {index} is not one the code reads" for index in set(found_indexes) - set(wanted_indexes)]
    billing = (table.get("BillingModeSummary") or {}).get("BillingMode")
    if billing != "PAY_PER_REQUEST":
        problems.append(f"billing {billing}, not PAY_PER_REQUEST")
    report.check(
        not problems,
        f"LedgerTable: key incident_id (S), indexes {FOLLOWING_INDEX} and {INDEX} with the keys the code queries,"
        " billed per request",
        "; ".join(problems),
    )


def check_schedule(stack: Stack, report: Report) -> None:
    events, lambda_ = stack.clients("events"), stack.clients("lambda")
    function = stack.physical["FollowUpFunction"]
    function_arn = lambda_.get_function_configuration(FunctionName=function)["FunctionArn"]
    rules = [n for n, r in stack.template["Resources"].items() if r["Type"] == "AWS::Events::Rule"]
    problems, wanted = [], stack.parameters["FollowUpSchedule"]
    for rule in rules:
        described = events.describe_rule(Name=stack.physical[rule])
        targets = {t["Arn"] for t in events.list_targets_by_rule(Rule=described["Name"])["Targets"]}
        if described.get("ScheduleExpression") != wanted:
            problems.append(f"{rule} runs on {described.get('ScheduleExpression')!r}, not {wanted!r}")
        if targets != {function_arn}:
            problems.append(f"{rule} targets {sorted(targets)}, not FollowUpFunction")
        policy = _document(lambda_.get_policy(FunctionName=function)["Policy"])
        sources = {
            str(s.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn"))
            for s in policy.get("Statement", [])
            if "events.amazonaws.com" in _services(s)
        }
        if described["Arn"] not in sources:
            problems.append(f"FollowUpFunction lets no events.amazonaws.com invoke it for {rule}")
    report.check(
        len(rules) == 1 and not problems,
        f"the follow-up runs on {wanted}, and EventBridge may invoke it",
        "; ".join(problems) or f"{len(rules)} schedules",
    )


def check_logs(stack: Stack, report: Report) -> None:
    logs, lambda_ = stack.clients("logs"), stack.clients("lambda")
    problems = []
    for function in FUNCTIONS:
        name = f"/aws/lambda/{stack.name}/{function}"
        groups = {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]}
        retention = groups.get(name, {}).get("retentionInDays")
        if str(retention) != stack.parameters["LogRetentionDays"]:
            problems.append(f"{name} keeps logs {retention} days, not {stack.parameters['LogRetentionDays']}")
        config = lambda_.get_function_configuration(FunctionName=stack.physical[function])
        group = (config.get("LoggingConfig") or {}).get("LogGroup")
        if group not in (None, name):
            problems.append(f"{function} logs to {group}, not {name}")
    report.check(
        not problems,
        f"each function's log group /aws/lambda/{stack.name}/<function>, kept {stack.parameters['LogRetentionDays']}"
        " days",
        "; ".join(problems),
    )


def check_resolved(stack: Stack, report: Report) -> None:
    """What CloudFormation is asked for and moto does not apply: the layer, arm64, tracing (resolved by moto)."""
    problems = []
    layer_name = f"AWSLambdaPowertoolsPythonV3-{RUNTIME.replace('.', '')}-{ARCHITECTURE}"
    layers = set()
    for function in FUNCTIONS:
        layer = stack.outputs.get(f"{RESOLVED}Layers{function}", "")
        layers.add(layer)
        match = re.fullmatch(r"arn:aws[a-z-]*:lambda:([a-z0-9-]+):\d{12}:layer:([A-Za-z0-9_-]+):\d+", layer)
        if not match:
            problems.append(f"{function}'s layer is {layer!r}, not one layer version ARN")
        elif match.group(1) != stack.region:
            problems.append(f"{function}'s layer {layer} is in {match.group(1)}, the stack in {stack.region}")
        elif match.group(2) != layer_name or layer.rpartition(":")[2] != str(
            stack.parameters["PowertoolsLayerVersion"]
        ):
            problems.append(
                f"{function}'s layer {layer} is not {layer_name}:{stack.parameters['PowertoolsLayerVersion']}"
            )
        if stack.outputs.get(f"{RESOLVED}Architectures{function}") != ARCHITECTURE:
            problems.append(f"{function} is {stack.outputs.get(f'{RESOLVED}Architectures{function}')}")
        if stack.outputs.get(f"{RESOLVED}Tracing{function}") != stack.parameters["Tracing"]:
            problems.append(f"{function} traces {stack.outputs.get(f'{RESOLVED}Tracing{function}')!r}")
    report.check(
        not problems,
        f"asked of CloudFormation, not applied by moto: {ARCHITECTURE}, tracing {stack.parameters['Tracing']},"
        f" layer {' '.join(sorted(layers))}",
        "; ".join(problems),
    )


# --- scripts/doctor against the rehearsed stack --------------------------------------------------------------


def run_doctor(stack: Stack, env: Mapping[str, str], report: Report) -> None:
    ssm = stack.clients("ssm")
    prefix = "/" + stack.parameters["SsmParameterPrefix"].strip("/")
    for name, (kind, value) in SEEDED.items():
        ssm.put_parameter(Name=f"{prefix}/{name}", Type=kind, Value=value, Overwrite=True)
    report.note(f"seeded {', '.join(f'{prefix}/{name}' for name in SEEDED)} with made-up values")
    result = subprocess.run(  # noqa: S603 - this interpreter, our own module
        [sys.executable, "-m", "scripts.doctor", "--stack", stack.name],
        cwd=ROOT,
        env={**env, "AWS_REGION": stack.region, "AWS_DEFAULT_REGION": stack.region},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    lines = result.stdout.splitlines()
    for line in lines:
        report.note(f"| {line}")
    failed = {
        next((name for name in DOCTOR_CANNOT_PASS if line[2:].startswith(name)), line)
        for line in lines
        if line.startswith("✗ ")
    }
    refused = sorted({m.group(1) for m in re.finditer(r"loopback guard: refused (\S+?):\S+ ", result.stderr)})
    webhook = urlsplit(stack.outputs.get("WebhookUrl", "")).hostname or "?"
    devin = urlsplit(stack.parameters["DevinApiBaseUrl"]).hostname or "?"
    ended = lines[-1] if lines else ""
    report.check(
        result.returncode == 1 and failed == set(DOCTOR_CANNOT_PASS),
        "the doctor passes every check but those that cannot pass here: "
        + "; ".join(f"{name} ({why})" for name, why in DOCTOR_CANNOT_PASS.items()),
        f"exit status {result.returncode}, failed: {sorted(failed)} ({ended})\n{_tail(result.stderr, 10)}".rstrip(),
    )
    report.check(
        refused == sorted({devin, webhook}),
        f"the only connections it tried beyond loopback, refused: {', '.join(refused)}",
        f"refused {refused}, expected {sorted({devin, webhook})}",
    )


# --- the rehearsal ---------------------------------------------------------------------------------------------


@dataclass
class Options:
    template: Path
    samconfig: Path
    config_env: str
    build_dir: Path
    skip_build: bool


def _guarded_env(guard_dir: Path, endpoint: str | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "PYTHONPATH")
    }
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "SAM_CLI_TELEMETRY": "0",
            "PYTHONPATH": str(guard_dir),
            # A proxy from the environment must not capture loopback (the guard would refuse the proxy anyway).
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "localhost", "127.0.0.1"])),
        }
    )
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def rehearse(options: Options, write: Callable[[str], None] = print) -> int:
    """Run the rehearsal, writing each line as it goes; 0 when everything held, else 1."""
    try:
        return _rehearse(options, write)
    finally:
        while _STARTED:
            _STARTED.pop().stop()


def _rehearse(options: Options, write: Callable[[str], None]) -> int:
    from local.template import load_template

    began = time.monotonic()
    report = Report(write)
    write(
        f"Rehearsing `sam deploy` of {options.template} with {options.samconfig} [{options.config_env}]: moto on"
        " 127.0.0.1, no AWS account, no Docker, nothing beyond loopback but the build's package index"
    )
    with tempfile.TemporaryDirectory(prefix="rehearse-deploy-") as scratch_name, Moto() as moto:
        scratch = Path(scratch_name)
        guard_dir = scratch / "guard"
        guard_dir.mkdir()
        shutil.copyfile(GUARD, guard_dir / "sitecustomize.py")
        env = _guarded_env(guard_dir, moto.endpoint)
        # What depends on nothing runs at once (two cores: lint, the samconfig, the build, then sam package).
        lint = [
            start("sam validate --lint", [str(sam_cli()), "validate", "--lint", "-t", str(options.template)], env),
            start("cfn-lint", [str(Path(sys.executable).parent / "cfn-lint"), str(options.template)], env),
        ]
        reading = start("settings", _deploy_settings_argv((options.samconfig,), options.template), env, merge=False)
        translator = start("samtranslator", [str(sam_python()), "-c", TRANSLATOR_VERSION], env)

        report.section("build")
        package = _package_step(options, moto, env, scratch) if _build(options, report) else None

        report.section("lint")
        for step in lint:
            code, out, took = step.collect()
            if not report.check(code == 0, f"{step.title} ({took:.1f} s)", f"exit status {code}"):
                write(_tail(out))

        report.section(f"{options.samconfig.name} as `sam deploy` reads it (SAM CLI's own parser)")
        template = load_template(options.template)
        settings = _read_settings(reading, options, template, report)
        if settings is None or package is None or report.failures:
            return _end(report, began)
        stack_name = settings.get("stack_name") or "pagerduty-postmortem"
        region = settings.get("region") or REGION
        env = {**env, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}
        parameters = {n: str(p.get("Default", "")) for n, p in template.get("Parameters", {}).items()}
        parameters |= settings["parameter_overrides"]
        version = translator.collect()[1].strip() or "?"
        try:
            stack, gone = _deploy(
                moto, env, package, scratch, stack_name, region, settings, parameters, version, report
            )
        except Failed as error:
            report.fail(str(error))
            return _end(report, began)

        report.section(f"stack {stack_name}: what was created, against what the code needs")
        checks: list[Callable[[], None]] = [
            lambda: check_resources(stack, report),
            lambda: check_outputs(stack, gone, report),
            lambda: check_functions(stack, report, functools.partial(_package, moto, stack)),
            lambda: check_table(stack, report),
            lambda: check_schedule(stack, report),
            lambda: check_logs(stack, report),
            lambda: check_policies(stack, report),
            lambda: check_resolved(stack, report),
            lambda: report.section(f"scripts/doctor --stack {stack_name} (every connection beyond loopback refused)"),
            lambda: _apply_ttl(stack, report),
            lambda: run_doctor(stack, env, report),
        ]
        for check in checks:
            try:
                check()
            except Exception as error:  # noqa: BLE001 - a resource so wrong a check cannot even read it: say so, go on
                report.fail(f"a check could not run: {type(error).__name__}: {error}")
        return _end(report, began, version)


def _build(options: Options, report: Report) -> bool:
    """scripts/build, or the check that a reused build is of this template and handler/; True when it is usable."""
    if options.skip_build:
        problems = build_problems(options.template, options.build_dir)
        for problem in problems:
            report.fail(problem)
        if not problems:
            report.ok(f"reusing the build in {options.build_dir}: of {options.template.name} and handler/ as they are")
        return not problems
    argv = [str(ROOT / "scripts" / "build"), "--build-dir", str(options.build_dir)]
    if options.template.resolve() != TEMPLATE:
        argv += ["--template-file", str(options.template)]
    # The build alone may reach beyond loopback: sam build installs handler/requirements.txt from the package index.
    code, out, took = start("scripts/build", argv, {**os.environ, "SAM_CLI_TELEMETRY": "0"}).collect()
    if not report.check(code == 0, f"scripts/build --build-dir {options.build_dir} ({took:.1f} s)", f"exit {code}"):
        report.write(_tail(out))
    return code == 0


def _read_settings(reading: Step, options: Options, template: dict[str, Any], report: Report) -> dict[str, Any] | None:
    code, out, _ = reading.collect()
    if code != 0:
        report.fail(f"SAM CLI could not read {options.samconfig} (exit status {code})")
        report.write(_tail(reading.err))
        return None
    environments = json.loads(out)[str(options.samconfig)]
    for name, settings in environments.items():
        problems = settings_problems(settings, template)
        count = len(settings.get("parameter_overrides") or {})
        report.check(
            not problems,
            f"[{name}] {count} overrides, each a parameter of {options.template.name} and a value it allows",
            "; ".join(problems),
        )
    if options.config_env not in environments:
        report.fail(f"{options.samconfig.name} has no environment {options.config_env}")
        return None
    return environments[options.config_env]


def _package_step(options: Options, moto: Moto, env: Mapping[str, str], scratch: Path) -> Step:
    """`sam package` of the build into moto's bucket, with a config file of the rehearsal's own: the user's
    samconfig.toml asks for resolve_s3, a managed bucket stack in a real account."""
    moto.client("s3", REGION).create_bucket(Bucket=BUCKET)
    config = scratch / "rehearsal-samconfig.toml"
    config.write_text(
        f'version = 0.1\n[default.package.parameters]\ns3_bucket = "{BUCKET}"\ns3_prefix = "rehearsal"\n'
        f'region = "{REGION}"\n',
        encoding="utf-8",
    )
    argv = [str(sam_cli()), "package", "-t", str(options.build_dir / "template.yaml")]
    argv += ["--output-template-file", str(scratch / "packaged.yaml"), "--config-file", str(config)]
    return start("sam package", argv, env)


def _deploy(
    moto: Moto,
    env: dict[str, str],
    package: Step,
    scratch: Path,
    stack_name: str,
    region: str,
    settings: Mapping[str, Any],
    parameters: dict[str, str],
    translator: str,
    report: Report,
) -> tuple[Stack, dict[str, str]]:
    """sam package, the SAM transform, create_stack: what `sam deploy` and CloudFormation do, in moto."""
    from botocore.exceptions import ClientError

    report.section(f"sam package, the SAM transform and create_stack, in moto ({moto.endpoint})")
    code, out, took = package.collect()
    if code != 0:
        raise Failed(f"sam package: exit status {code}\n{_tail(out)}")
    s3 = moto.client("s3", REGION)
    uploaded = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    report.ok(f"sam package: {len(uploaded)} code package(s) in s3://{BUCKET}/rehearsal/ ({took:.1f} s)")
    packaged = scratch / "packaged.yaml"

    overrides = settings["parameter_overrides"]
    argv = [str(sam_python()), "-m", "scripts.sam_read", "transform", "--region", region]
    argv += ["--parameters", json.dumps(overrides), str(packaged)]
    step = start("transform", argv, env, merge=False)
    code, out, took = step.collect()
    if code != 0:
        raise Failed(f"the SAM transform refused the packaged template (exit status {code})\n{_tail(step.err)}")
    transformed = json.loads(out)
    kinds = {r["Type"] for r in transformed["Resources"].values()}
    report.ok(
        f"SAM transform (samtranslator {translator}): {len(transformed['Resources'])} resources of {len(kinds)} types"
        f" ({took:.1f} s)"
    )

    created, gone, problems = leave_out(transformed)
    problems += capability_problems(transformed, list(settings.get("capabilities") or []))
    if problems:
        raise Failed("; ".join(problems))
    report.ok(f"left out, as moto cannot create them ({len(gone)} resources, pinned in LEFT_OUT):")
    for kind, why in LEFT_OUT.items():
        names = sorted(n for n, k in gone.items() if k == kind)
        report.note(f"{kind}: {', '.join(names)}: {why}")
    add_resolution_outputs(created)

    key = "rehearsal/transformed-template.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(created).encode())
    cloudformation = moto.client("cloudformation", region)
    try:
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateURL=f"{moto.endpoint}/{BUCKET}/{key}",
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in overrides.items()],
            Capabilities=list(settings.get("capabilities") or []),
        )
    except ClientError as error:
        raise Failed(f"create_stack refused it: {error}") from None
    described = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in events
            if "FAILED" in e["ResourceStatus"]
        ]
        raise Failed(f"stack {stack_name} is {described['StackStatus']}: {'; '.join(reasons)}")
    report.ok(f"create_stack {stack_name} with {len(overrides)} overrides: CREATE_COMPLETE")
    resources = cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    account = moto.client("sts", region).get_caller_identity()["Account"]
    stack = Stack(
        name=stack_name,
        region=region,
        account=account,
        parameters=parameters,
        template=created,
        physical={r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in resources},
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in described.get("Outputs") or []},
        clients=functools.partial(moto.client, region=region),
    )
    return stack, gone


def _package(moto: Moto, stack: Stack, function: str) -> zipfile.ZipFile:
    """The code package the function was created from, as sam package uploaded it."""
    location = stack.template["Resources"][function]["Properties"]["Code"]
    body = moto.client("s3", stack.region).get_object(Bucket=location["S3Bucket"], Key=location["S3Key"])["Body"]
    return zipfile.ZipFile(io.BytesIO(body.read()))


def _apply_ttl(stack: Stack, report: Report) -> None:
    """What CloudFormation does with the table's TimeToLiveSpecification and moto's CloudFormation does not."""
    spec = stack.template["Resources"]["LedgerTable"]["Properties"].get("TimeToLiveSpecification")
    if not spec:
        report.note("the template gives the table no TimeToLiveSpecification")
        return
    stack.clients("dynamodb").update_time_to_live(
        TableName=stack.physical["LedgerTable"],
        TimeToLiveSpecification={"AttributeName": spec["AttributeName"], "Enabled": bool(spec.get("Enabled"))},
    )
    report.note(
        f"applied the template's TimeToLiveSpecification ({spec['AttributeName']}) to the table by hand: moto's"
        " CloudFormation ignores it"
    )


def _end(report: Report, began: float, translator: str | None = None) -> int:
    took = time.monotonic() - began
    if report.failures:
        report.write(f"\nREHEARSAL FAILED ({len(report.failures)} problem(s), {took:.1f} s):")
        for failure in report.failures:
            report.write(f"  ✗ {failure}")
        return 1
    report.write(f"\nRehearsal passed ({took:.1f} s). What it cannot prove, so it is not a deploy:")
    for line in UNPROVABLE:
        report.write(f"  - {line.format(translator=translator or '?')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/rehearse-deploy", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the SAM template (default: template.yaml)")
    parser.add_argument("--samconfig", type=Path, default=SAMCONFIG, help="default: samconfig.toml")
    parser.add_argument("--config-env", default="default", help="the samconfig environment (default: default)")
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR, help="default: .aws-sam/build")
    parser.add_argument(
        "--skip-build", action="store_true", help="reuse the build in --build-dir instead of running scripts/build"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 0 if exit_.code in (0, None) else 2
    options = Options(
        template=args.template.resolve(),
        samconfig=args.samconfig.resolve(),
        config_env=args.config_env,
        build_dir=args.build_dir.resolve(),
        skip_build=args.skip_build,
    )
    for path in (options.template, options.samconfig):
        if not path.is_file():
            print(f"error: no file {path}", file=sys.stderr)
            return 2
    # This process too reaches nothing but loopback (the build, a process of its own, reaches the package index).
    from scripts import loopback_guard

    loopback_guard.install()
    return rehearse(options, lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
