"""samconfig.toml, and every samconfig environment the docs tell people to add, as `sam deploy` reads them.

Read by SAM CLI's own option parsing (scripts/sam_read.py, run with SAM CLI's Python), never split here: SAM splits
an override at a space, so "FollowUpSchedule=rate(10 minutes)" deploys FollowUpSchedule=rate(10, which
CloudFormation refuses. Each value is then checked against the template's declaration (AllowedPattern,
AllowedValues, Type: Number, MinValue/MaxValue, MinLength) and each name against its parameters.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from scripts.rehearse_deploy import (
    SAMCONFIG,
    read_deploy_settings,
    sam_python,
    samconfig_snippets,
    settings_problems,
    with_snippet,
)
from tests.support.template import ROOT, TEMPLATE, load_template

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# Snippets a reader might copy, to show that a value with a space is caught unless quoted as SAM wants it.
# An environment does not inherit [default]'s settings: sam deploy needs its stack name and capabilities.
STAGING = '[staging.deploy.parameters]\nstack_name = "pagerduty-postmortem-staging"\ncapabilities = "CAPABILITY_IAM"\n'
UNQUOTED = STAGING + 'parameter_overrides = ["FollowUpSchedule=rate(1 hour)"]\n'
QUOTED = STAGING + "parameter_overrides = ['FollowUpSchedule=\"rate(1 hour)\"']\n"


@functools.cache
def _scratch() -> Path:
    # One folder per test process, named alike however this module is imported (pytest imports it as test_samconfig,
    # test_template as tests.test_samconfig): the same paths let both share read_deploy_settings' one SAM CLI run.
    scratch = Path(tempfile.gettempdir()) / f"samconfig-check-{os.getpid()}"
    scratch.mkdir(exist_ok=True)
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def _write(name: str, text: str) -> Path:
    path = _scratch() / name
    path.write_text(text, encoding="utf-8")
    return path


@functools.cache
def checked_files() -> dict[str, Path]:
    """What is read: samconfig.toml itself, samconfig.toml plus each snippet the docs show, and the two examples."""
    base = SAMCONFIG.read_text(encoding="utf-8")
    files = {"samconfig.toml": SAMCONFIG}
    for doc in DOCS:
        for number, snippet in enumerate(samconfig_snippets(doc.read_text(encoding="utf-8")), 1):
            label = f"{doc.relative_to(ROOT)} snippet {number}"
            files[label] = _write(f"{doc.stem}-{number}.toml", with_snippet(base, snippet))
    files["unquoted example"] = _write("unquoted.toml", with_snippet(base, UNQUOTED))
    files["quoted example"] = _write("quoted.toml", with_snippet(base, QUOTED))
    return files


def deploy_settings(label: str = "samconfig.toml") -> dict[str, dict[str, Any]]:
    """{environment: what `sam deploy` reads} of one checked file; one SAM CLI run reads them all."""
    everything = read_deploy_settings(tuple(checked_files().values()), TEMPLATE)
    return everything[str(checked_files()[label])]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.mark.slow
@pytest.mark.parametrize("label", [label for label in checked_files() if not label.endswith("example")])
def test_every_environment_sam_deploy_would_read_is_one_cloudformation_accepts(
    label: str, template: dict[str, Any]
) -> None:
    environments = deploy_settings(label)

    assert environments, f"{label} has no environment"
    problems = {env: settings_problems(settings, template) for env, settings in environments.items()}
    assert problems == {env: [] for env in environments}


@pytest.mark.slow
def test_the_default_environment_deploys_with_the_iam_capability_and_the_stack_name() -> None:
    default = deploy_settings()["default"]

    assert default["capabilities"] == ["CAPABILITY_IAM"]
    assert default["stack_name"] == "pagerduty-postmortem"


@pytest.mark.slow
def test_a_value_with_a_space_is_split_by_sam_unless_quoted_and_the_split_value_is_refused(
    template: dict[str, Any],
) -> None:
    unquoted = deploy_settings("unquoted example")["staging"]
    quoted = deploy_settings("quoted example")["staging"]

    assert unquoted["parameter_overrides"] == {"FollowUpSchedule": "rate(1"}
    assert settings_problems(unquoted, template) == [
        "parameter FollowUpSchedule='rate(1' refused: must be an EventBridge rate(...) or cron(...) expression"
        r" (AllowedPattern ^(rate|cron)\(.+\)$)"
    ]
    assert quoted["parameter_overrides"] == {"FollowUpSchedule": "rate(1 hour)"}
    assert settings_problems(quoted, template) == []


def test_an_override_the_template_does_not_declare_is_refused(template: dict[str, Any]) -> None:
    problems = settings_problems({"parameter_overrides": {"FollowupSchedule": "rate(1 hour)"}}, template)

    assert len(problems) == 1
    assert problems[0].startswith("template.yaml has no parameter 'FollowupSchedule' (did you mean FollowUpSchedule?")


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("Tracing", "active", "AllowedValues"),
        ("LogRetentionDays", "31", "AllowedValues"),
        ("FollowUpDays", "seven", "Type: Number"),
        ("PagerDutyReadSeconds", "5", "MaxValue"),
        ("PowertoolsLayerVersion", "0", "MinValue"),
    ],
)
def test_a_value_the_declaration_does_not_allow_is_refused(
    template: dict[str, Any], name: str, value: str, rule: str
) -> None:
    [problem] = settings_problems({"parameter_overrides": {name: value}}, template)

    assert problem.startswith(f"parameter {name}={value!r} refused") and rule in problem


def test_sam_deploys_error_is_reported_as_a_problem(template: dict[str, Any]) -> None:
    assert settings_problems({"error": "Invalid value for '--parameter-overrides'"}, template) == [
        "sam deploy cannot read it: Invalid value for '--parameter-overrides'"
    ]


def test_a_samconfig_snippet_in_the_docs_is_found_and_added_to_samconfig() -> None:
    markdown = f"Add this:\n\n```toml\n{UNQUOTED}```\n\n```toml\n[default.build.parameters]\ncached = true\n```\n"

    [snippet] = samconfig_snippets(markdown)
    combined = with_snippet(SAMCONFIG.read_text(encoding="utf-8"), snippet)

    assert snippet == UNQUOTED
    assert combined.startswith(SAMCONFIG.read_text(encoding="utf-8").rstrip()) and combined.endswith(UNQUOTED)


def test_a_snippet_that_is_a_whole_samconfig_is_read_alone() -> None:
    whole = 'version = 0.1\n[default.deploy.parameters]\nparameter_overrides = ["Tracing=Active"]\n'

    assert with_snippet(SAMCONFIG.read_text(encoding="utf-8"), whole) == whole


# --- the layer, as `sam local invoke` resolves it

OVERRIDE = "arn:aws:lambda:eu-central-2:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:26"


@pytest.mark.slow
def test_sam_local_resolves_the_pinned_layer_in_the_region_or_the_version_powertools_layer_version_names() -> None:
    # SAM's own function provider, which `sam local invoke` uses to find (then download) each function's layers.
    result = subprocess.run(  # noqa: S603 - SAM CLI's Python with our own module
        [str(sam_python()), "-m", "scripts.sam_read", "local-layers", "--region", "eu-central-2"]
        + ["--parameters", json.dumps([{}, {"PowertoolsLayerVersion": "26"}]), str(TEMPLATE)],
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    pinned = "arn:aws:lambda:eu-central-2:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27"
    functions = ("FollowUpFunction", "PagerDutyPostmortemFunction")
    assert json.loads(result.stdout) == [{f: [pinned] for f in functions}, {f: [OVERRIDE] for f in functions}]
