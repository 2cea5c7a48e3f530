"""template.yaml: it validates, grants no more than the function needs, and keeps the contract's names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.template import (
    FUNCTION,
    ROOT,
    TABLE,
    TEMPLATE,
    create_ledger_table,
    function_environment,
    load_template,
    resource_properties,
)
from tests.test_samconfig import deploy_settings

CONTRACT_DEFAULTS = {
    "SSM_PARAMETER_PREFIX": "/pagerduty-postmortem",
    "DEVIN_API_BASE_URL": "https://api.devin.ai",
    "EVENT_TYPES": "incident.resolved",
    "PRIORITIES": "P1,P2",
    "URGENCIES": "high",
    "DEVIN_PLAYBOOK_ID": "",
}
# The ledger claims, records and marks with UpdateItem and releases with DeleteItem; nothing else.
ITEM_LEVEL_DYNAMODB_ACTIONS = {
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
}
PREFIX_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmParameterPrefix}/*"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def function(template: dict[str, Any]) -> dict[str, Any]:
    return resource_properties(FUNCTION, template)


@pytest.fixture(scope="module")
def table(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"][TABLE]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    return [statement for policy in function["Policies"] for statement in as_list(policy["Statement"])]


def statements_with_action_prefix(function: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [s for s in statements(function) if any(a.startswith(prefix) for a in as_list(s["Action"]))]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603


def find_sam() -> str | None:
    candidates = [os.environ.get("SAM_CLI"), str(ROOT / ".venv-sam" / "bin" / "sam"), shutil.which("sam")]
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


# --- The template validates -------------------------------------------------------------------------


def test_cfn_lint_reports_no_errors_or_warnings() -> None:
    # cfn-lint's exit code is a bit mask (2 error, 4 warning, 8 info): 0 means it found nothing at all.
    cfn_lint = Path(sys.executable).parent / "cfn-lint"

    result = run([str(cfn_lint), str(TEMPLATE)])

    assert result.returncode == 0, f"cfn-lint rc={result.returncode}\n{result.stdout}{result.stderr}"


def test_sam_validate_lint_accepts_the_template() -> None:
    sam = find_sam()
    assert sam, "SAM CLI not found: set SAM_CLI, or run scripts/test (it installs .venv-sam)"

    result = run([sam, "validate", "--lint", "--template-file", str(TEMPLATE)])

    assert result.returncode == 0, f"sam validate --lint rc={result.returncode}\n{result.stdout}{result.stderr}"


# --- Least privilege ----------------------------------------------------------------------------------


def test_function_policies_are_inline_statements_only(function: dict[str, Any]) -> None:
    # Managed policies and SAM policy templates (DynamoDBCrudPolicy...) grant more than the function uses.
    for policy in function["Policies"]:
        assert isinstance(policy, dict) and set(policy) <= {"Version", "Statement"}, policy


def test_no_statement_allows_wildcard_actions(function: dict[str, Any]) -> None:
    for statement in statements(function):
        for action in as_list(statement["Action"]):
            assert "*" not in action, statement


def test_no_statement_allows_every_resource_without_a_condition(function: dict[str, Any]) -> None:
    for statement in statements(function):
        if "*" in as_list(statement["Resource"]):
            assert statement.get("Condition"), statement


def test_kms_decrypt_is_only_allowed_through_ssm_for_parameters_under_the_prefix(
    function: dict[str, Any],
) -> None:
    kms = statements_with_action_prefix(function, "kms:")

    assert kms, "no kms:Decrypt statement: SecureString parameters could not be read"
    for statement in kms:
        assert as_list(statement["Action"]) == ["kms:Decrypt"]
        condition = statement.get("Condition", {})
        assert condition.get("StringEquals", {}).get("kms:ViaService") == {
            "Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"
        }, statement
        assert condition.get("StringLike", {}).get("kms:EncryptionContext:PARAMETER_ARN") == PREFIX_ARN


def test_dynamodb_actions_are_item_level_on_the_ledger_table_only(function: dict[str, Any]) -> None:
    dynamodb = statements_with_action_prefix(function, "dynamodb:")

    actions = {action for s in dynamodb for action in as_list(s["Action"])}
    resources = [resource for s in dynamodb for resource in as_list(s["Resource"])]
    assert actions == ITEM_LEVEL_DYNAMODB_ACTIONS
    assert resources == [{"Fn::GetAtt": [TABLE, "Arn"]}]


def test_ssm_reads_are_limited_to_parameters_under_the_prefix(function: dict[str, Any]) -> None:
    ssm = statements_with_action_prefix(function, "ssm:")

    actions = {action for s in ssm for action in as_list(s["Action"])}
    resources = [resource for s in ssm for resource in as_list(s["Resource"])]
    assert actions == {"ssm:GetParameters"}
    assert resources == [PREFIX_ARN]


# --- The ledger table ---------------------------------------------------------------------------------


def test_ledger_is_keyed_by_incident_id_string(table: dict[str, Any]) -> None:
    props = table["Properties"]

    assert props["KeySchema"] == [{"AttributeName": "incident_id", "KeyType": "HASH"}]
    assert {"AttributeName": "incident_id", "AttributeType": "S"} in props["AttributeDefinitions"]


def test_the_follow_up_reads_a_sparse_index_of_open_sessions_oldest_first(table: dict[str, Any]) -> None:
    props = table["Properties"]
    (index,) = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == "following"]

    assert index["KeySchema"] == [
        {"AttributeName": "following", "KeyType": "HASH"},
        {"AttributeName": "session_recorded_epoch", "KeyType": "RANGE"},
    ]
    types = {d["AttributeName"]: d["AttributeType"] for d in props["AttributeDefinitions"]}
    assert (types["following"], types["session_recorded_epoch"]) == ("S", "N")


def test_ledger_is_billed_per_request(table: dict[str, Any]) -> None:
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"


def test_ledger_is_encrypted_at_rest(table: dict[str, Any]) -> None:
    assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True


def test_ledger_has_point_in_time_recovery(table: dict[str, Any]) -> None:
    pitr = table["Properties"]["PointInTimeRecoverySpecification"]

    assert pitr["PointInTimeRecoveryEnabled"] is True


def test_ledger_items_expire_on_expires_at(table: dict[str, Any]) -> None:
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_ledger_survives_stack_deletion_and_replacement(table: dict[str, Any]) -> None:
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


# --- The contract's names and defaults ----------------------------------------------------------------


def test_function_sets_every_environment_variable_the_contract_names() -> None:
    environment = function_environment()

    missing = {"TABLE_NAME", *CONTRACT_DEFAULTS} - set(environment)
    assert not missing


def test_table_name_variable_refers_to_the_ledger_table(function: dict[str, Any]) -> None:
    assert function["Environment"]["Variables"]["TABLE_NAME"] == {"Ref": TABLE}


def test_parameter_defaults_equal_the_contract_defaults() -> None:
    environment = function_environment()

    assert {name: environment[name] for name in CONTRACT_DEFAULTS} == CONTRACT_DEFAULTS


@pytest.mark.slow
def test_samconfig_overrides_repeat_the_template_defaults(template: dict[str, Any]) -> None:
    # A default changed in one place only would deploy something other than what the template says. Read as
    # `sam deploy` reads it (SAM CLI's own parser), not split here: SAM splits an entry at a space.
    parsed = deploy_settings()["default"]["parameter_overrides"]

    defaults = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    assert parsed == defaults


@pytest.mark.parametrize("prefix", ["/pagerduty-postmortem", "/team/pagerduty_postmortem.v2"])
def test_ssm_prefix_pattern_accepts_absolute_paths(template: dict[str, Any], prefix: str) -> None:
    assert re.fullmatch(template["Parameters"]["SsmParameterPrefix"]["AllowedPattern"], prefix)


@pytest.mark.parametrize("prefix", ["pagerduty-postmortem", "/pagerduty-postmortem/", "/", "", "/a//b"])
def test_ssm_prefix_pattern_rejects_relative_or_trailing_slash_paths(template: dict[str, Any], prefix: str) -> None:
    assert not re.fullmatch(template["Parameters"]["SsmParameterPrefix"]["AllowedPattern"], prefix)


def test_function_runs_python_3_13(template: dict[str, Any], function: dict[str, Any]) -> None:
    settings = {**template["Globals"]["Function"], **function}

    assert settings["Runtime"] == "python3.13"
    assert settings["Handler"] == "app.lambda_handler"
    assert settings["CodeUri"] == "handler/"


def test_function_answers_before_the_http_api_gives_up(template: dict[str, Any], function: dict[str, Any]) -> None:
    # API Gateway HTTP APIs wait at most 30 s for an integration.
    settings = {**template["Globals"]["Function"], **function}

    assert settings["Timeout"] < 30


def test_webhook_is_post_pagerduty_on_the_http_api_with_payload_v2(function: dict[str, Any]) -> None:
    (event,) = function["Events"].values()

    assert event["Type"] == "HttpApi"
    assert event["Properties"] == {
        "ApiId": {"Ref": "HttpApi"},
        "Path": "/pagerduty",
        "Method": "POST",
        "PayloadFormatVersion": "2.0",
    }


def test_http_api_is_throttled(template: dict[str, Any]) -> None:
    settings = template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]

    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}


def test_function_logs_to_a_log_group_with_retention(template: dict[str, Any], function: dict[str, Any]) -> None:
    log_group = function["LoggingConfig"]["LogGroup"]

    assert log_group == {"Ref": "FunctionLogGroup"}
    retention = template["Resources"]["FunctionLogGroup"]["Properties"]["RetentionInDays"]
    assert retention == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize("name", ["WebhookUrl", "LedgerTableName", "FunctionName"])
def test_stack_outputs_the_contract_names(template: dict[str, Any], name: str) -> None:
    assert name in template["Outputs"]


def test_webhook_url_output_points_at_the_pagerduty_route(template: dict[str, Any]) -> None:
    url = template["Outputs"]["WebhookUrl"]["Value"]["Fn::Sub"]

    assert url == "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/pagerduty"


# --- The test fixture built from the template ---------------------------------------------------------


@mock_aws
def test_create_ledger_table_builds_the_template_table_in_moto() -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")

    create_ledger_table(client, "ledger")

    table = client.describe_table(TableName="ledger")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "incident_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = client.describe_time_to_live(TableName="ledger")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_function_environment_resolves_refs_to_test_values() -> None:
    environment = function_environment()

    assert environment["TABLE_NAME"] == "ledger"
    assert all(isinstance(value, str) for value in environment.values())
