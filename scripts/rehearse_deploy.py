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

from local.apigateway import INTEGRATION_TIMEOUT_SECONDS as HTTP_API_TIMEOUT_SECONDS
from scripts.doctor import pinned_powertools
from scripts.rehearsal.iam import as_list, decrypt_problems, document
from scripts.rehearsal.layer import layer_line, layer_problems, load_mapping
from scripts.rehearsal.scenario import Scene, run_functions

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

# What the functions read from Parameter Store besides SEEDED, so that both have work: the PagerDuty feature on.
SEEDED_FOR_THE_RUN = {
    "pagerduty-api-key": ("SecureString", "rehearsal-pagerduty-key-not-a-real-one"),
    "pagerduty-from-email": ("String", "postmortem-bot@rehearsal.invalid"),
}


_SECRETS_GRANTS = {("ssm:GetParameters", "{prefix_arn}"), ("kms:Decrypt", "{kms_keys}")}
# What scripts/ledger and scripts/doctor call (LedgerOperatorPolicy), and the doctor's layer check (LayerCheckPolicy):
# the operator's, which nothing in the rehearsal runs with, so they stay lists (docs/deploy.md says which is which).
POLICIES = {
    "LedgerOperatorPolicy": frozenset(
        {
            ("dynamodb:Query", "{table_arn}/index/{status_index}"),
            ("dynamodb:GetItem", "{table_arn}"),
            ("dynamodb:DeleteItem", "{table_arn}"),
            ("dynamodb:UpdateItem", "{table_arn}"),  # scripts/ledger scrub
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
    "the Powertools layer: that its ARN resolves in your region and holds the pinned release (the rehearsal ran"
    " a layer installed as Powertools builds it, and checked the ARN against powertools-layer.toml; run"
    " scripts/doctor --stack after the deploy)",
    "arm64 and X-Ray tracing: the functions ran on this machine's architecture, with its builds of their compiled"
    " wheels, and their traces went nowhere (the values CloudFormation is given are checked above)",
    "the table's TTL (the rehearsal applied it itself), point-in-time recovery and encryption: moto's CloudFormation"
    " ignores them",
    "IAM as AWS evaluates it: moto enforced each role's actions; resources and conditions were read, not"
    " evaluated, kms:Decrypt was never called, and the roles' managed policies are checked in the transformed"
    " template only",
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

# CloudFormation's pseudo parameters: names a Ref or Fn::Sub may use that the template does not declare.
PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)


def dangling_references(template: Mapping[str, Any]) -> list[str]:
    """Each Ref, Fn::GetAtt, Fn::Sub name, DependsOn and condition that names nothing the template declares, with
    where it is and the missing logical id: CloudFormation refuses the stack for it, and moto's refusal names only
    the resource that holds it. Run on the transformed template, where SAM's generated resources are declared."""
    resources = set(template.get("Resources") or {})
    names = resources | set(template.get("Parameters") or {}) | PSEUDO_PARAMETERS
    conditions = set(template.get("Conditions") or {})
    problems: list[str] = []

    def missing(where: str, kind: str, target: str, known: set[str] | frozenset[str]) -> None:
        if target not in known:
            problems.append(f"{where}: {kind} {target}, which the template does not declare")

    def walk(node: Any, where: str, local: frozenset[str] = frozenset()) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]", local)
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            inner = f"{where}.{key}"
            if key == "Ref" and isinstance(value, str):
                missing(where, "Ref", value, names | local)
            elif key == "Fn::GetAtt":
                target = value.split(".", 1)[0] if isinstance(value, str) else str(as_list(value)[0])
                missing(where, "Fn::GetAtt", target, resources)
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name in re.findall(r"\$\{([^!}][^}]*)\}", str(text)):
                    missing(where, "Fn::Sub ${...}", name.split(".", 1)[0], names | set(variables))
                walk(variables, inner, local)
            elif key in ("Fn::If", "Condition") and where.count(".") > 1:
                condition = value[0] if key == "Fn::If" else value
                if isinstance(condition, str):
                    missing(where, key, condition, conditions)
                walk(value, inner, local)
            else:
                walk(value, inner, local)

    for name, resource in (template.get("Resources") or {}).items():
        for target in as_list(resource.get("DependsOn") or []):
            missing(name, "DependsOn", str(target), resources)
        if isinstance(resource.get("Condition"), str):
            missing(name, "Condition", resource["Condition"], conditions)
        walk(resource.get("Properties") or {}, f"{name}.Properties")
    for section in ("Outputs", "Conditions"):
        walk(template.get(section) or {}, section)
    return problems


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


def functions_of(template: Mapping[str, Any]) -> list[str]:
    """The logical ids of a template's functions, before the SAM transform or after it."""
    kinds = ("AWS::Serverless::Function", "AWS::Lambda::Function")
    return [name for name, resource in (template.get("Resources") or {}).items() if resource.get("Type") in kinds]


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
    for function in functions_of(load_template(source)):
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


def _services(statement: Mapping[str, Any]) -> set[str]:
    principal = statement.get("Principal")
    return {str(s) for s in as_list(principal.get("Service", []))} if isinstance(principal, dict) else set()


def grants(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for statement in as_list(document.get("Statement", []))
        if statement.get("Effect") == "Allow"
        for action in as_list(statement.get("Action", []))
        for resource in as_list(statement.get("Resource", []))
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
        for function in functions_of(self.template):
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
        target = reference.get("Ref") or as_list(reference.get("Fn::GetAtt", [""]))[0]
        return stack.physical.get(str(target).split(".")[0], str(reference))
    return str(reference)


def _permission_problem(stack: Stack, props: dict[str, Any]) -> str | None:
    from botocore.exceptions import ClientError

    function = _function_of(stack, props.get("FunctionName"))
    try:
        policy = document(stack.clients("lambda").get_policy(FunctionName=function)["Policy"])
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


def check_functions(
    stack: Stack, source: Mapping[str, Any], report: Report, code: Callable[[str], zipfile.ZipFile]
) -> None:
    """What running the functions cannot show: each package ships scripts/build's bytecode and no Powertools of its
    own, a function behind the HTTP API gives up before the API does, and each role (trust, managed policies)."""
    lambda_ = stack.clients("lambda")
    for name in functions_of(stack.template):
        config = lambda_.get_function_configuration(FunctionName=stack.physical[name])
        check_package(name, str(config.get("Handler", "")), str(config.get("Runtime", "")), code(name), report)
        events = ((source["Resources"].get(name) or {}).get("Properties") or {}).get("Events") or {}
        if any(event.get("Type") == "HttpApi" for event in events.values()):
            timeout = int(config.get("Timeout") or 0)
            report.check(
                timeout < HTTP_API_TIMEOUT_SECONDS,
                f"{name}: timeout {timeout} s, under the HTTP API's {HTTP_API_TIMEOUT_SECONDS} s",
                f"the HTTP API stops waiting after {HTTP_API_TIMEOUT_SECONDS} s and answers 503 itself",
            )
        check_role(stack, name, config, report)


def check_package(name: str, handler: str, runtime: str, package: zipfile.ZipFile, report: Report) -> None:
    """scripts/build's bytecode of the Handler's module, and no Powertools of its own (from the layer; bundled, it
    would shadow it)."""
    files = set(package.namelist())
    source = f"{handler.rpartition('.')[0].replace('.', '/')}.py"
    tag = f"cpython-{runtime.removeprefix('python').replace('.', '')}"
    folder, _, stem = source.removesuffix(".py").rpartition("/")
    problems = []
    if source in files and f"{folder + '/' if folder else ''}__pycache__/{stem}.{tag}.pyc" not in files:
        problems.append(f"no {tag} bytecode for {source} (scripts/build compiles it)")
    if any(path.startswith("aws_lambda_powertools/") for path in files):
        problems.append("Powertools is bundled: it must come from the layer")
    report.check(not problems, f"{name}'s package: {tag} bytecode, no Powertools of its own", "; ".join(problems))


def check_role(stack: Stack, name: str, config: Mapping[str, Any], report: Report) -> None:
    """Lambda may assume the function's role, which is given the managed policies it needs (the run proves its own
    statements)."""
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
    trust = document(iam.get_role(RoleName=stack.physical[role])["Role"]["AssumeRolePolicyDocument"])
    services = {service for statement in trust.get("Statement", []) for service in _services(statement)}
    managed = stack.outputs.get(f"{RESOLVED}ManagedPolicies{role}", "").split()
    needed = ["AWSLambdaBasicExecutionRole"] + (
        ["AWSXrayWriteOnlyAccess"] if stack.parameters["Tracing"] == "Active" else []
    )
    absent = [policy for policy in needed if not any(arn.endswith(f"/{policy}") for arn in managed)]
    problems = [] if "lambda.amazonaws.com" in services else [f"Lambda may not assume it ({sorted(services)})"]
    problems += [f"missing {', '.join(absent)}"] if absent else []
    report.check(
        not problems,
        f"{name}'s role {role}: Lambda may assume it, and it is given {', '.join(needed)} (in the transformed"
        " template: moto does not attach them)",
        "; ".join(problems),
    )


def check_policies(stack: Stack, report: Report) -> None:
    iam, values = stack.clients("iam"), stack.arns
    for name, patterns in POLICIES.items():
        arn = stack.physical.get(name)
        if arn is None:
            report.fail(f"{name}: the stack has no such policy")
            continue
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        policy = document(iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"])
        wanted, found = _fill(patterns, values), grants(policy)
        problems = [_describe_grants(found, wanted)] if found != wanted else []
        if any(action.startswith("ssm:GetParameter") for action, _ in found):
            under = stack.arns["prefix_arn"].removesuffix("*")
            secure = [under + n for n, (kind, _) in SEEDED.items() if kind == "SecureString"]
            statements = as_list(policy.get("Statement"))
            problems += decrypt_problems(statements, secure, stack.region, stack.account, name)[1]
        attached = iam.get_policy(PolicyArn=arn)["Policy"].get("AttachmentCount", 0)
        if attached:
            problems.append(f"attached to {attached} principal(s): it is for the operator to attach")
        report.check(not problems, f"{name}: {len(wanted)} grants, attached to nobody", "; ".join(problems))


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
        policy = document(lambda_.get_policy(FunctionName=function)["Policy"])
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
    for function in functions_of(stack.template):
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
    """What CloudFormation is asked for and moto does not apply (resolved by moto): the layer, which must be the one
    that carries the pinned Powertools release in the stack's region (powertools-layer.toml), arm64, tracing."""
    mapping = load_mapping()
    wanted = mapping.arn(stack.region)
    problems = []
    for function in functions_of(stack.template):
        layer = stack.outputs.get(f"{RESOLVED}Layers{function}", "")
        if layer != wanted:
            problems.append(
                f"{function}'s layer is {layer or 'none'}, not {wanted}, which carries Powertools {mapping.release}"
                f" in {stack.region} (powertools-layer.toml)"
            )
        architecture = stack.outputs.get(f"{RESOLVED}Architectures{function}")
        if architecture != mapping.architecture:
            problems.append(f"{function} is {architecture}, the layer's architecture is {mapping.architecture}")
        if stack.outputs.get(f"{RESOLVED}Tracing{function}") != stack.parameters["Tracing"]:
            problems.append(f"{function} traces {stack.outputs.get(f'{RESOLVED}Tracing{function}')!r}")
    report.check(
        not problems,
        f"asked of CloudFormation, not applied by moto: {mapping.architecture}, tracing {stack.parameters['Tracing']},"
        f" layer {wanted}",
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
            lambda: check_functions(stack, template, report, functools.partial(_package, moto, stack)),
            lambda: check_schedule(stack, report),
            lambda: check_logs(stack, report),
            lambda: check_policies(stack, report),
            lambda: check_resolved(stack, report),
            lambda: report.section(f"scripts/doctor --stack {stack_name} (every connection beyond loopback refused)"),
            lambda: _apply_ttl(stack, report),
            lambda: run_doctor(stack, env, report),
            lambda: report.section(
                "the built functions, run: a Lambda-like Python 3.13 with their package, the Powertools layer and the"
                " runtime's boto3, each with its role's actions enforced by moto"
            ),
            lambda: run_functions(
                Scene(
                    stack,
                    report,
                    functools.partial(_package, moto, stack),
                    scratch,
                    {**SEEDED, **SEEDED_FOR_THE_RUN},
                    env,
                ),
                template,
            ),
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
    mapping, pinned = load_mapping(), pinned_powertools()
    defaults = {n: str(p.get("Default", "")) for n, p in template.get("Parameters", {}).items()}
    for name, settings in environments.items():
        problems = settings_problems(settings, template)
        count = len(settings.get("parameter_overrides") or {})
        report.check(
            not problems,
            f"[{name}] {count} overrides, each a parameter of {options.template.name} and a value it allows",
            "; ".join(problems),
        )
        if "error" not in settings:
            parameters = {**defaults, **(settings.get("parameter_overrides") or {})}
            problems = layer_problems(mapping, template, parameters, settings.get("region"), pinned)
            if problems:
                report.fail(f"[{name}] the Powertools layer: {'; '.join(problems)}")
            else:
                report.ok(f"[{name}] {layer_line(mapping, settings.get('region'))}")
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
    problems += dangling_references(transformed)
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
