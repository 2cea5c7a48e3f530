"""scripts/rehearse-deploy: it passes on the repository as it is, and fails when what `sam deploy` would send breaks.

One real build (scripts/build) serves every run: a broken variant is the same change made to a copy of template.yaml
and to a copy of the build's template, run with --skip-build, which refuses a build that is not of its template.
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
from scripts.rehearse_deploy import CREATED, LEFT_OUT, UNPROVABLE, capability_problems, leave_out, placeholder
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


@pytest.fixture
def broken(build: Path, tmp_path: Path) -> Callable[[Callable[[dict[str, Any]], None]], list[str]]:
    """The rehearsal's arguments for template.yaml changed by `change`, with a build of it (the same change made to a
    copy of the real build's template)."""

    def make(change: Callable[[dict[str, Any]], None]) -> list[str]:
        copy = tmp_path / "build"
        shutil.copytree(build, copy)
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


@pytest.mark.slow
def test_the_rehearsal_passes_on_the_repository_and_ends_with_what_it_cannot_prove(build: Path) -> None:
    run = rehearse("--skip-build", "--build-dir", build)

    assert run.status == 0, run.out
    assert run.failed == []
    assert "✓ create_stack pagerduty-postmortem with 19 overrides: CREATE_COMPLETE" in run.lines
    for kind, why in LEFT_OUT.items():
        assert any(line.startswith(f"  {kind}: ") and line.endswith(why) for line in run.lines), kind
    for name in ("PagerDutyPostmortemFunction", "FollowUpFunction"):
        assert any(line.startswith(f"✓ {name}'s role {name}Role: 4 grants") for line in run.lines)
    doctor = [line for line in run.lines if line.startswith("  | ✗ ")]
    assert [line.split(":")[0] for line in doctor] == ["  | ✗ Devin", "  | ✗ Powertools layer", "  | ✗ webhook https"]
    assert "  | 9 checks, 3 failed" in run.lines
    [transform] = [line for line in run.lines if line.startswith("✓ SAM transform (samtranslator ")]
    translator = transform.removeprefix("✓ SAM transform (samtranslator ").split(")")[0]
    assert run.lines[-len(UNPROVABLE) - 1].startswith("Rehearsal passed (")
    assert run.lines[-len(UNPROVABLE) :] == [f"  - {line.format(translator=translator)}" for line in UNPROVABLE]


# --- broken on purpose


@pytest.mark.slow
def test_an_override_sam_splits_at_its_space_fails_before_anything_is_created(tmp_path: Path, build: Path) -> None:
    samconfig = tmp_path / "samconfig.toml"
    text = SAMCONFIG.read_text(encoding="utf-8")
    assert "'FollowUpSchedule=\"rate(10 minutes)\"'" in text
    samconfig.write_text(text.replace("'FollowUpSchedule=\"rate(10 minutes)\"'", '"FollowUpSchedule=rate(10 minutes)"'))

    run = rehearse("--skip-build", "--build-dir", build, "--samconfig", samconfig)

    assert run.status == 1
    assert run.failed == [
        "✗ [default] 19 overrides, each a parameter of template.yaml and a value it allows: parameter"
        " FollowUpSchedule='rate(10' refused: must be an EventBridge rate(...) or cron(...) expression (AllowedPattern"
        r" ^(rate|cron)\(.+\)$)"
    ]
    assert not any("create_stack" in line for line in run.lines)


def _webhook(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["PagerDutyPostmortemFunction"]["Properties"]


@pytest.mark.slow
def test_a_wrong_reference_and_a_removed_iam_statement_each_fail_it(
    broken: Callable[[Callable[[dict[str, Any]], None]], list[str]],
) -> None:
    def change(template: dict[str, Any]) -> None:
        # TABLE_NAME names the log group instead of the ledger; the webhook loses its item-level grants.
        _webhook(template)["Environment"]["Variables"]["TABLE_NAME"] = {"Ref": "FunctionLogGroup"}
        [policy] = _webhook(template)["Policies"]
        policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "LedgerItemsOnly"]

    run = rehearse(*broken(change))

    assert run.status == 1
    [environment, role] = run.failed
    assert environment.startswith("✗ PagerDutyPostmortemFunction's environment:")
    assert "TABLE_NAME is '/aws/lambda/pagerduty-postmortem/PagerDutyPostmortemFunction', should be" in environment
    assert role.startswith("✗ PagerDutyPostmortemFunction's role PagerDutyPostmortemFunctionRole")
    assert "missing dynamodb:DeleteItem on arn:aws:dynamodb:us-east-1:123456789012:table/" in role
    assert "missing dynamodb:UpdateItem on arn:aws:dynamodb:us-east-1:123456789012:table/" in role


@pytest.mark.slow
def test_a_resource_type_in_neither_list_fails_it(
    broken: Callable[[Callable[[dict[str, Any]], None]], list[str]],
) -> None:
    def change(template: dict[str, Any]) -> None:
        template["Resources"]["DeadLetters"] = {"Type": "AWS::SQS::Queue", "Properties": {}}

    run = rehearse(*broken(change))

    assert run.status == 1
    assert run.failed == [
        "✗ AWS::SQS::Queue (DeadLetters) is neither created nor left out: add it to CREATED (after checking moto"
        " creates it) or to LEFT_OUT in scripts/rehearse_deploy.py"
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
