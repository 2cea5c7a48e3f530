"""scripts/rehearse-deploy: it passes on the repository as it is, and fails, naming what to fix, when what `sam deploy`
would send breaks: each break of issue 19 (a dependency the package lacks, a wrong Handler, a variable renamed in the
template only, a statement the function needs removed, a layer version without the pinned release, a dangling Ref).

One real build (scripts/build) serves every run: a broken variant is the same change made to a copy of template.yaml
and to a copy of the build (its template, or the packages it holds), run with --skip-build, which refuses a build that
is not of its template. Breaks that do not hide each other share a run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import rehearse_deploy
from scripts.doctor import pinned_powertools
from scripts.rehearsal import lambda_like
from scripts.rehearsal.iam import allowance, decrypt_problems
from scripts.rehearsal.layer import LayerMapping, layer_problems, load_mapping
from scripts.rehearsal.scenario import UNSET_ON_PURPOSE, Function, check_environment
from scripts.rehearse_deploy import (
    CREATED,
    LEFT_OUT,
    UNPROVABLE,
    Report,
    capability_problems,
    dangling_references,
    leave_out,
    placeholder,
    read_deploy_settings,
)
from tests.support.template import ROOT, TEMPLATE, load_template

SAMCONFIG = ROOT / "samconfig.toml"


@dataclass
class Run:
    status: int
    out: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def failed(self) -> list[str]:
        return [line for line in self.lines if line.startswith("✗ ")]


def rehearse(*args: str | Path) -> Run:
    result = subprocess.run(  # noqa: S603 - our own script
        [str(ROOT / "scripts" / "rehearse-deploy"), *map(str, args)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(result.returncode, result.stdout)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/build's output, once for this module."""
    folder = tmp_path_factory.mktemp("rehearsal") / "build"
    result = subprocess.run(  # noqa: S603 - our own script
        [str(ROOT / "scripts" / "build"), "--build-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


Change = Callable[[dict[str, Any]], None]


@pytest.fixture
def broken(build: Path, tmp_path: Path) -> Callable[..., list[str]]:
    """The rehearsal's arguments for template.yaml changed by `change`, with a build of it (the same change made to a
    copy of the real build's template, and `built` applied to the copy of the build itself)."""

    def make(change: Change, built: Callable[[Path], None] = lambda _: None) -> list[str]:
        copy = tmp_path / "build"
        shutil.copytree(build, copy)
        built(copy)
        for source, target in (
            (TEMPLATE, tmp_path / "template.yaml"),
            (build / "template.yaml", copy / "template.yaml"),
        ):
            template = load_template(source)
            change(template)
            target.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
        return ["--skip-build", "--build-dir", str(copy), "--template", str(tmp_path / "template.yaml")]

    return make


# --- the repository as it is


def _line(run: Run, start: str) -> str:
    [line] = [line for line in run.lines if line.startswith(start)]
    return line


@pytest.mark.slow
def test_the_rehearsal_passes_on_the_repository_and_ends_with_what_it_cannot_prove(build: Path) -> None:
    """The whole rehearsal, the run of what was built included: the lines each part prints are asserted."""
    run = rehearse("--skip-build", "--build-dir", build)

    assert run.status == 0, run.out
    assert run.failed == []
    assert "✓ create_stack pagerduty-postmortem with 23 overrides: CREATE_COMPLETE" in run.lines
    for kind, why in LEFT_OUT.items():
        assert any(line.startswith(f"  {kind}: ") and line.endswith(why) for line in run.lines), kind
    doctor = [line for line in run.lines if line.startswith("  | ✗ ")]
    assert [line.split(":")[0] for line in doctor] == ["  | ✗ Devin", "  | ✗ Powertools layer", "  | ✗ webhook https"]
    assert "  | 9 checks, 3 failed" in run.lines
    # The built webhook, run: started, then the same delivery a duplicate of the same session, which the follow-up
    # then reads from Devin.
    started = _line(run, "✓ PagerDutyPostmortemFunction (app.lambda_handler), a signed delivery of incident ")
    session = started.rpartition("200 started, session ")[2]
    assert session.startswith("devin-")
    assert (
        "✓ PagerDutyPostmortemFunction (app.lambda_handler), the same delivery again: 200 duplicate, the same session"
        in run.lines
    )
    assert (
        "✓ FollowUpFunction (follow_up.lambda_handler), one scheduled run: followed the open session and read"
        f" {session} from Devin"
    ) in run.lines
    assert _line(run, "✓ the functions' environment: each of the ").endswith("it sets was read")
    # Each call proved: the action by running it under moto's enforcement, the resource by reading the role.
    for call in ("ssm:GetParameters", "dynamodb:UpdateItem", "kms:Decrypt by SSM"):
        assert _line(run, f"✓ PagerDutyPostmortemFunction {call} ")
    assert "action run (moto), resource read (OpenSessionsIndex)" in _line(run, "✓ FollowUpFunction dynamodb:Query on ")
    assert "read only, as moto's SSM decrypts without KMS" in _line(run, "✓ FollowUpFunction kms:Decrypt by SSM for ")
    assert _line(run, "✓ scripts/ledger list --stack pagerduty-postmortem: ")
    cold = _line(run, "  import app, against a bare import boto3 (")
    assert "tracing Active: " in cold and "tracing PassThrough: " in cold
    [transform] = [line for line in run.lines if line.startswith("✓ SAM transform (samtranslator ")]
    translator = transform.removeprefix("✓ SAM transform (samtranslator ").split(")")[0]
    assert run.lines[-len(UNPROVABLE) - 1].startswith("Rehearsal passed (")
    assert run.lines[-len(UNPROVABLE) :] == [f"  - {line.format(translator=translator)}" for line in UNPROVABLE]


# --- broken on purpose


@pytest.mark.slow
def test_an_override_sam_splits_and_a_layer_without_the_pinned_release_fail_before_anything_is_created(
    tmp_path: Path, build: Path
) -> None:
    samconfig = tmp_path / "samconfig.toml"
    text = SAMCONFIG.read_text(encoding="utf-8")
    assert "'FollowUpSchedule=\"rate(10 minutes)\"'" in text and '"PowertoolsLayerVersion=27"' in text
    text = text.replace("'FollowUpSchedule=\"rate(10 minutes)\"'", '"FollowUpSchedule=rate(10 minutes)"')
    samconfig.write_text(text.replace('"PowertoolsLayerVersion=27"', '"PowertoolsLayerVersion=999"'))

    run = rehearse("--skip-build", "--build-dir", build, "--samconfig", samconfig)

    assert run.status == 1
    [split, layer] = run.failed
    assert split == (
        "✗ [default] 23 overrides, each a parameter of template.yaml and a value it allows: parameter"
        " FollowUpSchedule='rate(10' refused: must be an EventBridge rate(...) or cron(...) expression (AllowedPattern"
        r" ^(rate|cron)\(.+\)$)"
    )
    assert layer.startswith(
        "✗ [default] the Powertools layer: Globals.Function.Layers[0] is"
        " arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:999, but the layer"
        " that carries Powertools 3.23.0 in us-east-1 is"
        " arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27"
        " (powertools-layer.toml): set PowertoolsLayerVersion=27"
    )
    assert not any("create_stack" in line for line in run.lines)


def _webhook(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["PagerDutyPostmortemFunction"]["Properties"]


def _follow_up(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["FollowUpFunction"]["Properties"]


@pytest.mark.slow
def test_a_dangling_reference_and_a_resource_type_in_neither_list_each_fail_it_naming_what_to_fix(
    broken: Callable[..., list[str]],
) -> None:
    def change(template: dict[str, Any]) -> None:
        _webhook(template)["Environment"]["Variables"]["TABLE_NAME"] = {"Ref": "LedgerTabel"}
        template["Resources"]["DeadLetters"] = {"Type": "AWS::SQS::Queue", "Properties": {}}

    run = rehearse(*broken(change))

    assert run.status == 1
    assert run.failed == [
        "✗ AWS::SQS::Queue (DeadLetters) is neither created nor left out: add it to CREATED (after checking moto"
        " creates it) or to LEFT_OUT in scripts/rehearse_deploy.py; PagerDutyPostmortemFunction.Properties.Environment"
        ".Variables.TABLE_NAME: Ref LedgerTabel, which the template does not declare"
    ]


@pytest.mark.slow
def test_a_dependency_the_package_lacks_and_a_variable_renamed_in_the_template_only_fail_the_run(
    broken: Callable[..., list[str]],
) -> None:
    """handler/requirements.txt without requests builds a package without it: the first started incident fails with
    the interpreter's own error, named (the import is lazy, so the function still starts)."""

    def rename(template: dict[str, Any]) -> None:
        variables = template["Globals"]["Function"]["Environment"]["Variables"]
        variables["EVENT_TYPE"] = variables.pop("EVENT_TYPES")

    def without_requests(build: Path) -> None:
        for function in ("PagerDutyPostmortemFunction", "FollowUpFunction"):
            for path in (build / function).glob("requests*"):
                shutil.rmtree(path)

    run = rehearse(*broken(rename, without_requests))

    assert run.status == 1
    missing = "No module named 'requests'"
    assert _line(run, "✗ PagerDutyPostmortemFunction (app.lambda_handler), a signed delivery of incident ").endswith(
        f"not 200 started; its log: unexpected error: ModuleNotFoundError: {missing}"
    )
    assert missing in _line(run, "✗ FollowUpFunction (follow_up.lambda_handler), one scheduled run: ")
    environment = _line(run, "✗ the functions' environment: ")
    assert (
        "EVENT_TYPES is read by bridge/config.py but the template does not set it for PagerDutyPostmortemFunction"
        in environment
    )
    assert "EVENT_TYPE is set by the template but nothing the functions ran read it" in environment


@pytest.mark.slow
def test_a_wrong_handler_and_a_removed_iam_statement_fail_the_run_with_what_to_fix(
    broken: Callable[..., list[str]],
) -> None:
    def change(template: dict[str, Any]) -> None:
        _webhook(template)["Handler"] = "app.lambda_hander"
        [policy] = _follow_up(template)["Policies"]
        policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "OpenSessionsIndex"]

    run = rehearse(*broken(change))

    assert run.status == 1
    assert (
        "✗ PagerDutyPostmortemFunction (app.lambda_hander) cannot start: Runtime.HandlerNotFound: Handler"
        " 'lambda_hander' missing on module 'app'"
    ) in run.failed
    refused = _line(run, "✗ FollowUpFunction: moto refused dynamodb:Query to its role ")
    assert refused.endswith("no statement allows that action (add it to the function's Policies in template.yaml)")
    assert "LedgerUnavailable" in _line(run, "✗ FollowUpFunction (follow_up.lambda_handler), one scheduled run: ")


# --- the layer, per samconfig environment


@pytest.mark.slow
def test_every_samconfig_environment_runs_the_layer_version_that_carries_the_pinned_release() -> None:
    template = load_template()
    defaults = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    environments = read_deploy_settings((SAMCONFIG,), TEMPLATE)[str(SAMCONFIG)]

    assert environments
    for name, settings in environments.items():
        parameters = {**defaults, **settings["parameter_overrides"]}
        region = settings.get("region")
        assert layer_problems(load_mapping(), template, parameters, region, pinned_powertools()) == [], name


def test_the_mapping_says_which_version_carries_the_release_in_each_region_and_the_pin_must_agree() -> None:
    mapping = LayerMapping(
        "3.23.0",
        "arm64",
        "python3.13",
        "017000801446",
        "AWSLambdaPowertoolsPythonV3-python313-arm64",
        27,
        {"eu-central-2": 26},
    )
    template = load_template()
    parameters = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}

    assert layer_problems(mapping, template, parameters, "us-east-1", "3.23.0") == []
    [functions_layer, policy_layer] = layer_problems(mapping, template, parameters, "eu-central-2", "3.23.0")
    assert functions_layer.startswith("Globals.Function.Layers[0] is arn:aws:lambda:eu-central-2:")
    assert functions_layer.endswith(
        ":27, but the layer that carries Powertools 3.23.0 in eu-central-2 is"
        " arn:aws:lambda:eu-central-2:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:26"
        " (powertools-layer.toml): set PowertoolsLayerVersion=26"
    )
    assert policy_layer.startswith("Resources.LayerCheckPolicy.Properties.PolicyDocument.Statement[1].Resource is ")
    assert (
        layer_problems(mapping, template, {**parameters, "PowertoolsLayerVersion": "26"}, "eu-central-2", "3.23.0")
        == []
    )
    assert layer_problems(mapping, template, parameters, "us-east-1", "3.24.0") == [
        "powertools-layer.toml says release 3.23.0, requirements-dev.txt pins 3.24.0: keep them equal"
    ]


# --- what the template refers to, and IAM read


def test_every_kind_of_dangling_reference_is_named_with_where_it_is() -> None:
    template = {
        "Parameters": {"Prefix": {"Type": "String"}},
        "Conditions": {"On": {"Fn::Equals": ["a", "a"]}},
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "DependsOn": ["Tabel"], "Condition": "Of"},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "A": {"Ref": "Prefix"},
                    "B": {"Ref": "AWS::Region"},
                    "C": {"Fn::GetAtt": ["Tabel", "Arn"]},
                    "D": {"Fn::Sub": "${Table.Arn}/${Prefx}/${!Literal}"},
                    "E": {"Fn::Sub": ["${Local}-${Missing}", {"Local": {"Ref": "Prefix"}}]},
                    "F": {"Fn::If": ["Of", "x", "y"]},
                },
            },
        },
        "Outputs": {"Out": {"Value": {"Ref": "Gone"}}},
    }

    assert dangling_references(template) == [
        "Table: DependsOn Tabel, which the template does not declare",
        "Table: Condition Of, which the template does not declare",
        "Fn.Properties.C: Fn::GetAtt Tabel, which the template does not declare",
        "Fn.Properties.D: Fn::Sub ${...} Prefx, which the template does not declare",
        "Fn.Properties.E: Fn::Sub ${...} Missing, which the template does not declare",
        "Fn.Properties.F: Fn::If Of, which the template does not declare",
        "Outputs.Out.Value: Ref Gone, which the template does not declare",
    ]
    assert dangling_references(load_template()) == []


def test_iam_is_read_with_resources_and_the_conditions_ssm_decrypts_under() -> None:
    parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/pagerduty-postmortem/devin-api-key"
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
    decrypt = {
        "Sid": "Decrypt",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": "arn:aws:kms:us-east-1:123456789012:key/*",
        "Condition": {
            "StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:PARAMETER_ARN": parameter.rpartition("/")[0] + "/*"},
        },
    }
    items = {"Sid": "Items", "Effect": "Allow", "Action": ["dynamodb:UpdateItem"], "Resource": table}

    assert allowance([items], "dynamodb:updateitem", table).statements == ["Items"]
    assert allowance([items], "dynamodb:UpdateItem", f"{table}/index/following").statements == []
    assert decrypt_problems([decrypt], [parameter], "us-east-1", "123456789012", "Fn") == (["Decrypt"], [])
    unconditioned = {k: v for k, v in decrypt.items() if k != "Condition"}
    assert decrypt_problems([unconditioned], [parameter], "us-east-1", "123456789012", "Fn")[1] == [
        "Fn may use kms:Decrypt beyond SSM reading its parameters (Decrypt)"
    ]
    assert decrypt_problems([items], [parameter], "us-east-1", "123456789012", "Fn")[1] == [
        f"Fn reads {parameter} decrypted, but no statement lets SSM decrypt it (kms:Decrypt on the account's keys"
        " with kms:ViaService ssm.us-east-1.amazonaws.com and kms:EncryptionContext:PARAMETER_ARN matching it)"
    ]


def test_a_build_of_another_template_is_refused(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("Resources: {}\n", encoding="utf-8")

    assert rehearse_deploy.build_problems(TEMPLATE, tmp_path) == [
        f"the build in {tmp_path} is not of {TEMPLATE}: run the rehearsal without --skip-build"
    ]


# --- what is left out, and how


def _tiny() -> dict[str, Any]:
    return {
        "Resources": {
            "Api": {"Type": "AWS::ApiGatewayV2::Api"},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "DependsOn": ["Api", "Table"],
                "Properties": {"Environment": {"Variables": {"API": {"Ref": "Api"}, "T": {"Ref": "Table"}}}},
            },
            "Permission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {"SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${Api}/*/${Api.ApiId}"}},
            },
            "Table": {"Type": "AWS::DynamoDB::Table"},
        },
        "Outputs": {"Url": {"Value": {"Fn::GetAtt": ["Api", "ApiEndpoint"]}}},
    }


def test_a_left_out_resource_is_removed_and_every_reference_to_it_becomes_a_placeholder() -> None:
    kept, gone, _ = leave_out(_tiny())

    assert gone == {"Api": "AWS::ApiGatewayV2::Api"}
    assert set(kept["Resources"]) == {"Fn", "Permission", "Table"}
    assert kept["Resources"]["Fn"]["DependsOn"] == ["Table"]
    assert kept["Resources"]["Fn"]["Properties"]["Environment"]["Variables"] == {
        "API": placeholder("Api"),
        "T": {"Ref": "Table"},
    }
    assert kept["Resources"]["Permission"]["Properties"]["SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:rehearsal-left-out-api/*/rehearsal-left-out-api-apiid"
    }
    assert kept["Outputs"]["Url"]["Value"] == "rehearsal-left-out-api-apiendpoint"


def test_a_pinned_type_the_template_no_longer_has_fails_so_the_lists_cannot_rot() -> None:
    _, _, problems = leave_out(_tiny())

    stale = sorted(
        {*CREATED, *LEFT_OUT}
        - {"AWS::ApiGatewayV2::Api", "AWS::Lambda::Function", "AWS::Lambda::Permission", "AWS::DynamoDB::Table"}
    )
    assert len(problems) == len(stale)
    assert all(any(problem.startswith(f"{kind} is pinned in ") for problem in problems) for kind in stale)


def test_named_iam_resources_need_the_named_iam_capability() -> None:
    template = {"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "fixed"}}}}

    assert capability_problems(template, ["CAPABILITY_IAM"]) == [
        "named IAM resources (Role) need CAPABILITY_NAMED_IAM in the samconfig's capabilities"
    ]
    assert capability_problems(template, ["CAPABILITY_NAMED_IAM"]) == []
    assert capability_problems({"Resources": {"Role": {"Type": "AWS::IAM::Role"}}}, []) == [
        "IAM resources (Role) need CAPABILITY_IAM in the samconfig's capabilities"
    ]


def test_the_guard_refuses_what_would_leave_the_machine_and_lets_loopback_through(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "scripts" / "loopback_guard.py", tmp_path / "sitecustomize.py")
    probe = (
        "import socket, urllib.request\n"
        "for url in ('https://api.devin.ai/v3/self', 'http://192.0.2.1/'):\n"
        "    try: urllib.request.urlopen(url, timeout=5)\n"
        "    except OSError as error: print('refused', url)\n"
        "print(socket.getaddrinfo('localhost', 80, type=socket.SOCK_STREAM)[0][4][0])\n"
    )

    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.stdout.splitlines() == [
        "refused https://api.devin.ai/v3/self",
        "refused http://192.0.2.1/",
        "127.0.0.1",
    ]
    assert result.stderr.splitlines() == [
        "loopback guard: refused api.devin.ai:443 (only loopback may be reached)",
        "loopback guard: refused 192.0.2.1:80 (only loopback may be reached)",
    ]


def test_a_variable_the_code_reads_must_be_set_and_one_function_s_own_setting_is_said(tmp_path: Path) -> None:
    def function(name: str, *variables: str) -> Function:
        return Function(name, {"Environment": {"Variables": dict.fromkeys(variables, "")}}, f"{name}Role", ())

    def reads(name: str, *variables: str) -> lambda_like.Run:
        code = str(tmp_path / name / "bridge" / "config.py")
        own = [(variable, code) for variable in (*variables, *UNSET_ON_PURPOSE)]
        return lambda_like.Run(None, [], [*own, ("AWS_REGION", "/opt/python/botocore/session.py")], "")

    functions = [function("Webhook", "TABLE_NAME"), function("FollowUp", "TABLE_NAME", "ASK")]
    runs = {
        "Webhook": reads("Webhook", "TABLE_NAME", "ASK", "LOST"),
        "FollowUp": reads("FollowUp", "TABLE_NAME", "ASK"),
    }
    lines: list[str] = []

    check_environment(functions, runs, {name: tmp_path / name for name in runs}, Report(lines.append))

    [failed] = [line for line in lines if line.startswith("✗ ")]
    assert failed == (
        "✗ the functions' environment: LOST is read by bridge/config.py but the template does not set it for Webhook:"
        " a default would hide it (add it to the function's Environment in template.yaml)"
    )
    assert (
        "  a function's own setting, read by the other with its default: ASK (read by bridge/config.py in Webhook,"
        " set for FollowUp only)"
    ) in lines
