"""scripts/ledger: list, show and forget ledger items, against moto's DynamoDB with the table built from template.yaml
(and a stack in moto's CloudFormation for --stack), plus one run against a real local stack."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from scripts import ledger_cli
from scripts.make_events import TEST_SIGNING_SECRET
from tests.conftest import REGION, TABLE, aws_client, ledger_item
from tests.support.events import incident
from tests.support.template import TABLE as LEDGER_RESOURCE
from tests.support.template import resource_properties

PROMPT = "Forget incident {}? Its next qualifying delivery will start a new Devin session. [y/N] "


@dataclass
class Run:
    status: int
    out: str
    err: str
    calls: list[str]  # every AWS call the command made, as "service.Operation"


class Stdin(io.StringIO):
    """What the operator types; `on_read` runs first (something happening while the prompt waits)."""

    def __init__(self, text: str, on_read: Callable[[], None] | None = None) -> None:
        super().__init__(text)
        self.on_read = on_read
        self.read_lines = 0

    def readline(self, *args: Any) -> str:  # type: ignore[override]
        self.read_lines += 1
        if self.on_read is not None:
            self.on_read()
        return super().readline(*args)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Run `scripts/ledger ARGV` in this process with `stdin`, recording the AWS calls it makes."""

    def run(*argv: str, stdin: str | io.StringIO = "") -> Run:
        calls: list[str] = []
        original = BaseClient._make_api_call

        def record(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            calls.append(f"{client.meta.service_model.service_name}.{operation}")
            return original(client, operation, params)

        capsys.readouterr()
        monkeypatch.setattr("sys.stdin", stdin if isinstance(stdin, io.StringIO) else io.StringIO(stdin))
        with monkeypatch.context() as patch:
            patch.setattr(BaseClient, "_make_api_call", record)
            status = ledger_cli.main(list(argv))
        out, err = capsys.readouterr()
        return Run(status, out, err, calls)

    return run


def iso(seconds_ago: float) -> str:
    return datetime.fromtimestamp(time.time() - seconds_ago, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def put(item: dict[str, Any], table: str = TABLE) -> None:
    serialize = TypeSerializer().serialize
    aws_client("dynamodb").put_item(TableName=table, Item={name: serialize(value) for name, value in item.items()})


def started(incident_id: str, seconds_ago: float, **attributes: Any) -> dict[str, Any]:
    """A started incident's item, as the handler records it, recorded `seconds_ago`."""
    now = int(time.time())
    return {
        "incident_id": incident_id,
        "status": "started",
        "session_id": f"devin-{incident_id.lower()}",
        "session_url": f"https://app.devin.ai/sessions/devin-{incident_id.lower()}",
        "event_id": "01JPAC4R7XKQ2M9V3T8ZHWBN5D",
        "event_type": "incident.resolved",
        "incident_number": 1042,
        "title": "Checkout API 5xx error rate above 5% — payments failing",
        "service_id": "PCK8V2Q",
        "service_name": "Checkout API",
        "urgency": "high",
        "priority": "P1",
        "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
        "created_at": "2026-03-14T09:12:44Z",
        "resolved_at": "2026-03-14T10:03:18.412Z",
        "recorded_at": iso(seconds_ago),
        "expires_at": now + 90 * 86400,
        **attributes,
    }


def claimed(incident_id: str, seconds_ago: float, claim_seconds_left: int) -> dict[str, Any]:
    """A delivery's claim, taken `seconds_ago`; live while `claim_seconds_left` > 0."""
    item = started(incident_id, seconds_ago, status="claimed", claim_token="a" * 32)
    del item["session_id"], item["session_url"]
    return {**item, "claim_expires_at": int(time.time()) + claim_seconds_left}


def unknown(incident_id: str, seconds_ago: float) -> dict[str, Any]:
    item = started(incident_id, seconds_ago, status="unknown", outcome_lost_at=int(time.time() - seconds_ago))
    del item["session_id"], item["session_url"]
    return item


def everything(incident_id: str = "Q2CKYRLH85UNN4") -> dict[str, Any]:
    """A started incident that has been through all of it: followed, notes posted, events forwarded, leased now."""
    pull_request = "https://github.com/acme/checkout/pull/412"
    return started(
        incident_id,
        3600,
        session_note_posted_at="2026-03-14T10:03:21Z",
        pull_request_notes_posted={pull_request},
        notes_unconfirmed={"[pagerduty-postmortem:pr https://github.com/acme/runbooks/pull/7]"},
        following="open",
        session_recorded_epoch=1773482600,
        session_status="finished",
        pull_request_urls=[pull_request, "https://github.com/acme/runbooks/pull/7"],
        acus_consumed=Decimal("4.25"),
        followed_at="2026-03-14T10:43:20Z",
        forwarded=[
            {
                "event_id": "01JPAD0000REOPENED000000001",
                "event_type": "incident.reopened",
                "occurred_at": "2026-03-14T10:20:00.000Z",
                "forwarded_at": "2026-03-14T10:20:01Z",
            },
            {
                "event_id": "01JPAD0000ANNOTATED00000002",
                "event_type": "incident.annotated",
                "occurred_at": "2026-03-14T10:25:00.000Z",
                "forwarded_at": "2026-03-14T10:25:09Z",
                "confirmed": False,
            },
        ],
        forwarded_event_ids={"01JPAD0000REOPENED000000001", "01JPAD0000ANNOTATED00000002"},
        forwards_unconfirmed={"01JPAD0000RESOLVED000000003"},
        claim_token="b" * 32,
        claim_expires_at=int(time.time()) + 20,
    )


def rows(out: str) -> list[str]:
    """The incident ids of `list`'s table, top to bottom."""
    table = out.split("\n\n")[0].splitlines()
    return [line.split()[3] for line in table[2:]] if table and table[0].startswith("recorded (UTC)") else []


# --- list


def test_list_shows_every_status_most_recent_first(aws, cli) -> None:
    put(started("QOLDEST", 3 * 86400))
    put(unknown("QUNKNOWN", 2 * 3600))
    put(started("QSTARTED", 3600))
    put(claimed("QCLAIMED", 60, claim_seconds_left=20))

    result = cli("list", "--table", TABLE)

    assert result.status == 0, result.err
    assert rows(result.out) == ["QCLAIMED", "QSTARTED", "QUNKNOWN", "QOLDEST"]
    header = result.out.splitlines()[0].split("  ")
    assert [cell.strip() for cell in header if cell.strip()] == [
        "recorded (UTC)",
        "incident",
        "status",
        "service",
        "priority",
        "session",
        "PRs",
        "session status",
    ]
    assert "#1042 QSTARTED  started  Checkout API  P1        devin-qstarted" in result.out
    footer = result.out.splitlines()[-1]
    assert footer.startswith(f"4 recorded since {iso(7 * 86400)[:10]}T")
    assert footer.endswith("(started, claimed, unknown), most recent first")


def test_list_queries_the_by_status_index_once_per_status_and_never_scans(aws, cli) -> None:
    put(started("QSTARTED", 3600))

    every_status = cli("list", "--table", TABLE)
    one_status = cli("list", "--table", TABLE, "--status", "unknown")

    assert every_status.calls == ["dynamodb.Query"] * 3
    assert one_status.calls == ["dynamodb.Query"]


def test_list_leaves_out_what_was_recorded_before_since(aws, cli) -> None:
    put(started("QTODAY", 3600))
    put(started("QLASTWEEK", 8 * 86400))
    put(started("QLASTMONTH", 30 * 86400))

    assert rows(cli("list", "--table", TABLE).out) == ["QTODAY"]  # the default: 7d
    assert rows(cli("list", "--table", TABLE, "--since", "2w").out) == ["QTODAY", "QLASTWEEK"]
    assert rows(cli("list", "--table", TABLE, "--since", "30m").out) == []
    assert rows(cli("list", "--table", TABLE, "--since", iso(40 * 86400)[:10]).out) == [
        "QTODAY",
        "QLASTWEEK",
        "QLASTMONTH",
    ]
    assert rows(cli("list", "--table", TABLE, "--since", "12h").out) == ["QTODAY"]


def test_list_with_a_status_shows_only_that_status(aws, cli) -> None:
    put(started("QSTARTED", 3600))
    put(unknown("QUNKNOWN", 7200))

    result = cli("list", "--table", TABLE, "--status", "unknown")

    assert rows(result.out) == ["QUNKNOWN"]
    assert "(unknown)" in result.out.splitlines()[-1]


def test_list_limit_keeps_the_most_recent_and_says_there_are_more(aws, cli) -> None:
    for hours in range(1, 6):
        put(started(f"QSTARTED{hours}", hours * 3600))
    put(unknown("QUNKNOWN", 90 * 60))

    result = cli("list", "--table", TABLE, "--limit", "3")

    assert rows(result.out) == ["QSTARTED1", "QUNKNOWN", "QSTARTED2"]
    assert "more: raise --limit" in result.out


def test_list_follows_pages_that_dynamodb_cuts_short(aws, cli, monkeypatch) -> None:
    for hours in range(1, 6):
        put(started(f"QSTARTED{hours}", hours * 3600))
    original = BaseClient._make_api_call

    def two_per_page(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        # As DynamoDB does when a page reaches 1 MB before the query's Limit.
        return original(client, operation, {**params, "Limit": 2} if operation == "Query" else params)

    monkeypatch.setattr(BaseClient, "_make_api_call", two_per_page)

    result = cli("list", "--table", TABLE, "--status", "started", "--limit", "4")

    assert rows(result.out) == ["QSTARTED1", "QSTARTED2", "QSTARTED3", "QSTARTED4"]
    assert result.calls == ["dynamodb.Query"] * 3
    assert "more: raise --limit" in result.out


def test_list_with_nothing_recent_says_so(aws, cli) -> None:
    result = cli("list", "--table", TABLE)

    assert result.status == 0
    assert result.out.startswith("nothing recorded since ")


def test_list_json_is_one_array_of_plain_items(aws, cli) -> None:
    put(everything())
    put(unknown("QUNKNOWN", 7200))

    result = cli("list", "--table", TABLE, "--json")

    assert result.status == 0, result.err
    items = json.loads(result.out)
    assert [item["incident_id"] for item in items] == ["Q2CKYRLH85UNN4", "QUNKNOWN"]
    first = items[0]
    assert first["acus_consumed"] == 4.25
    assert first["incident_number"] == 1042 and isinstance(first["incident_number"], int)
    assert first["forwarded_event_ids"] == ["01JPAD0000ANNOTATED00000002", "01JPAD0000REOPENED000000001"]
    assert first["forwarded"][1]["confirmed"] is False


def test_a_since_that_is_neither_a_duration_nor_a_date_is_a_usage_error_before_any_call(aws, cli) -> None:
    result = cli("list", "--table", TABLE, "--since", "last tuesday")

    assert (result.status, result.calls) == (2, [])
    assert result.err.startswith("error: --since 'last tuesday'")


# --- show


def test_show_groups_the_whole_item_for_a_person(aws, cli) -> None:
    put(everything())

    result = cli("show", "Q2CKYRLH85UNN4", "--table", TABLE)

    assert result.status == 0, result.err
    out = result.out
    sections = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert sections == ["incident Q2CKYRLH85UNN4", "session", "lifecycle", "bookkeeping"]
    for expected in (
        "  title         Checkout API 5xx error rate above 5% — payments failing",
        "  number        #1042",
        "  service       Checkout API (PCK8V2Q)",
        "  priority      P1, urgency high",
        "  resolved      2026-03-14T10:03:18.412Z",
        "  PagerDuty     https://acme.pagerduty.com/incidents/Q2CKYRLH85UNN4",
        "  URL           https://app.devin.ai/sessions/devin-q2ckyrlh85unn4",
        "  status        finished",
        "  ACUs          4.25",
        "  last looked   2026-03-14T10:43:20Z",
        "  pull requests https://github.com/acme/checkout/pull/412  (note posted)",
        "                https://github.com/acme/runbooks/pull/7",
        "  session note  posted 2026-03-14T10:03:21Z",
        "  started by    incident.resolved 01JPAC4R7XKQ2M9V3T8ZHWBN5D",
        "  status        started: the session is recorded",
    ):
        assert expected in out.splitlines(), expected
    reopened, annotated = (line for line in out.splitlines() if "REOPENED0" in line or "ANNOTATED0" in line)
    assert reopened.startswith("  forwarded     2026-03-14T10:20:01Z  incident.reopened")
    assert "UNCONFIRMED" not in reopened and "UNCONFIRMED" in annotated
    assert "01JPAD0000RESOLVED000000003  (sent, answer lost" in out
    expires = datetime.fromtimestamp(everything()["expires_at"], UTC).strftime("%Y-%m-%d")
    assert f"  expires       {expires} (DynamoDB's TTL then deletes the item)" in out
    assert "  held          by a lease (a note or a forwarded event) until" in out and "(live)" in out
    assert "other" not in sections  # every attribute the bridge writes has its place


def test_show_puts_an_attribute_it_does_not_know_under_other(aws, cli) -> None:
    put(started("QNEW", 60, added_later={"x": 1}))

    out = cli("show", "QNEW", "--table", TABLE).out

    assert out.splitlines()[-2:] == ["other", '  added_later   {"x": 1}']


def test_show_for_an_unknown_incident_exits_1_with_one_line(aws, cli) -> None:
    result = cli("show", "QNOSUCH", "--table", TABLE)

    assert (result.status, result.out) == (1, "")
    assert result.err == f"no incident QNOSUCH in the ledger (table {TABLE} in {REGION})\n"


def test_show_json_prints_the_item(aws, cli) -> None:
    put(everything())

    result = cli("show", "Q2CKYRLH85UNN4", "--table", TABLE, "--json")

    assert json.loads(result.out) == ledger_cli.plain(ledger_item("Q2CKYRLH85UNN4"))
    assert result.calls == ["dynamodb.GetItem"]


def test_show_does_not_pass_control_characters_from_the_incident_to_the_terminal(aws, cli) -> None:
    put(started("QEVIL", 60, title="fine\x1b]8;;https://evil.example\x07 title\u202e"))

    out = cli("show", "QEVIL", "--table", TABLE).out

    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "fine\N{REPLACEMENT CHARACTER}]8;;" in out


# --- forget


def test_forget_asks_and_deletes_on_yes(aws, cli) -> None:
    put(started("QFORGET", 3600))

    result = cli("forget", "QFORGET", "--table", TABLE, stdin="y\n")

    assert result.status == 0, result.err
    assert ledger_item("QFORGET") is None
    assert PROMPT.format("QFORGET") in result.err
    summary, message = result.out.splitlines()
    assert summary.startswith('#1042 QFORGET "Checkout API 5xx error rate above 5% — payments failing": started')
    assert message == (
        "Forgot incident QFORGET: its next qualifying delivery starts a new Devin session. "
        "The old session was not stopped: https://app.devin.ai/sessions/devin-qforget"
    )
    assert result.calls == ["dynamodb.GetItem", "dynamodb.DeleteItem"]


@pytest.mark.parametrize("answer", ["n\n", "\n", "", "yes please\n"])
def test_forget_keeps_the_item_unless_the_answer_is_yes(aws, cli, answer: str) -> None:
    put(started("QKEEP", 3600))

    result = cli("forget", "QKEEP", "--table", TABLE, stdin=answer)

    assert result.status == 1
    assert result.err.endswith("kept incident QKEEP\n")
    assert ledger_item("QKEEP") is not None
    assert "dynamodb.DeleteItem" not in result.calls


def test_forget_yes_does_not_ask(aws, cli) -> None:
    put(unknown("QUNKNOWN", 3600))
    stdin = Stdin("")

    result = cli("forget", "QUNKNOWN", "--table", TABLE, "--yes", stdin=stdin)

    assert result.status == 0, result.err
    assert stdin.read_lines == 0 and "[y/N]" not in result.err
    assert ledger_item("QUNKNOWN") is None
    assert "may exist and was not stopped: look for the tag pagerduty-incident:QUNKNOWN" in result.out


def test_forget_refuses_while_a_delivery_holds_a_live_claim(aws, cli) -> None:
    put(claimed("QBUSY", 5, claim_seconds_left=20))

    result = cli("forget", "QBUSY", "--table", TABLE, "--yes")

    assert result.status == 1
    assert "a delivery is starting incident QBUSY's session right now" in result.err
    assert "--force" in result.err and len(result.err.splitlines()) == 1
    assert ledger_item("QBUSY") is not None


def test_forget_force_deletes_even_a_live_claim(aws, cli) -> None:
    put(claimed("QBUSY", 5, claim_seconds_left=20))

    result = cli("forget", "QBUSY", "--table", TABLE, "--yes", "--force")

    assert result.status == 0, result.err
    assert ledger_item("QBUSY") is None


def test_forget_takes_a_claim_whose_holder_is_gone(aws, cli) -> None:
    put(claimed("QDEAD", 600, claim_seconds_left=-60))

    assert cli("forget", "QDEAD", "--table", TABLE, "--yes").status == 0
    assert ledger_item("QDEAD") is None


def test_forget_refuses_a_claim_taken_while_it_asked(aws, cli) -> None:
    put(started("QRACE", 3600))
    # While the operator reads the question, the incident is forgotten elsewhere and a delivery claims it anew.
    stdin = Stdin("y\n", on_read=lambda: put(claimed("QRACE", 0, claim_seconds_left=20)))

    result = cli("forget", "QRACE", "--table", TABLE, stdin=stdin)

    assert result.status == 1
    assert "a delivery is starting incident QRACE's session right now" in result.err
    assert ledger_item("QRACE")["status"] == "claimed"


def test_forget_an_unknown_incident_exits_1(aws, cli) -> None:
    result = cli("forget", "QNOSUCH", "--table", TABLE, "--yes")

    assert result.status == 1
    assert result.err == f"no incident QNOSUCH in the ledger (table {TABLE} in {REGION})\n"


def test_forget_json_prints_the_deleted_item_and_keeps_the_rest_off_stdout(aws, cli) -> None:
    put(started("QFORGET", 3600))

    result = cli("forget", "QFORGET", "--table", TABLE, "--json", stdin="y\n")

    assert json.loads(result.out)["session_id"] == "devin-qforget"
    assert "[y/N]" in result.err and "QFORGET" in result.err.splitlines()[0]


# --- finding the table


@pytest.fixture
def stack(aws: None) -> str:
    """A stack in moto's CloudFormation holding the ledger table as template.yaml declares it; returns its name."""
    template = {
        "Resources": {
            LEDGER_RESOURCE: {"Type": "AWS::DynamoDB::Table", "Properties": resource_properties(LEDGER_RESOURCE)}
        },
        "Outputs": {"LedgerTableName": {"Value": {"Ref": LEDGER_RESOURCE}}},
    }
    aws_client("cloudformation").create_stack(StackName="pagerduty-postmortem", TemplateBody=json.dumps(template))
    return "pagerduty-postmortem"


def test_stack_finds_the_table_from_its_output_and_uses_only_what_the_operator_policy_grants(stack, cli) -> None:
    [output] = aws_client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
    table = output["OutputValue"]
    assert table != TABLE  # CloudFormation named it
    put(started("QSTACK", 60), table=table)

    listed = cli("list", "--stack", stack)
    shown = cli("show", "QSTACK", "--stack", stack)
    forgotten = cli("forget", "QSTACK", "--stack", stack, "--yes")

    assert rows(listed.out) == ["QSTACK"]
    assert "devin-qstack" in shown.out
    assert forgotten.status == 0
    assert aws_client("dynamodb").get_item(TableName=table, Key={"incident_id": {"S": "QSTACK"}}).get("Item") is None
    # What LedgerOperatorPolicy must grant, and all it needs to.
    assert {call for run in (listed, shown, forgotten) for call in run.calls} == {
        "cloudformation.DescribeStacks",
        "dynamodb.Query",
        "dynamodb.GetItem",
        "dynamodb.DeleteItem",
    }


def test_a_stack_that_does_not_exist_is_one_error_line(aws, cli) -> None:
    result = cli("list", "--stack", "nope")

    assert (result.status, result.out, result.err) == (2, "", f"error: no stack nope in {REGION}\n")


def test_a_stack_without_the_output_is_one_error_line(aws, cli) -> None:
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    aws_client("cloudformation").create_stack(StackName="other", TemplateBody=json.dumps(template))

    result = cli("list", "--stack", "other")

    assert result.status == 2
    assert (
        result.err == f"error: stack other in {REGION} has no output LedgerTableName: is it this application's stack?\n"
    )


def test_a_table_that_does_not_exist_is_one_error_line(aws, cli) -> None:
    result = cli("show", "QX", "--table", "nope")

    assert (result.status, result.err) == (2, f"error: no table nope in {REGION}\n")


def test_a_table_without_the_index_says_to_deploy_the_template(aws, cli) -> None:
    aws_client("dynamodb").create_table(
        TableName="old",
        KeySchema=[{"AttributeName": "incident_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "incident_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    result = cli("list", "--table", "old")

    assert (result.status, result.err) == (
        2,
        f"error: table old in {REGION} has no index by-status: deploy the current template.yaml\n",
    )


@pytest.mark.parametrize("command", [("list",), ("show", "QX"), ("forget", "QX", "--yes")])
def test_access_denied_names_the_operator_policy(aws, cli, monkeypatch, command: tuple[str, ...]) -> None:
    """(moto does not enforce IAM: the refusal is what DynamoDB answers a principal without the grant.)"""

    def refuse(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        error = {
            "Code": "AccessDeniedException",
            "Message": "User: arn:aws:iam::123456789012:user/ops is not authorized",
        }
        raise ClientError({"Error": error}, operation)

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)

    result = cli(*command, "--table", TABLE)

    assert result.status == 2
    assert result.err.startswith("error: access denied (dynamodb:")
    assert result.err.endswith("LedgerOperatorPolicy (stack output LedgerOperatorPolicyArn)\n")
    assert len(result.err.splitlines()) == 1


def test_no_region_is_one_error_line(cli, monkeypatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    result = cli("list", "--table", TABLE)

    assert (result.status, result.err) == (2, "error: no AWS region: set AWS_REGION, or use a profile that has one\n")


def test_aws_region_wins_over_aws_default_region_as_in_the_aws_cli(aws, cli, monkeypatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")

    result = cli("show", "QX", "--table", TABLE)

    assert (result.status, result.err) == (2, f"error: no table {TABLE} in eu-west-1\n")


def test_no_credentials_is_one_error_line(cli, monkeypatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    # Should credentials turn up after all, the call goes nowhere rather than to AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")

    result = cli("show", "QX", "--table", TABLE)

    assert result.status == 2
    assert result.err.startswith("error: no AWS credentials")


@pytest.mark.parametrize(
    "where", [(), ("--table", TABLE, "--stack", "pagerduty-postmortem"), ("--local", "--table", TABLE)]
)
def test_exactly_one_of_stack_table_and_local_is_required(cli, where: tuple[str, ...]) -> None:
    result = cli("list", *where)

    assert result.status == 2
    assert "--stack" in result.err and result.calls == []


def test_local_without_a_running_stack_is_one_error_line(cli, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr("local.stack.STATE_DIR", tmp_path / ".local-stacks")

    result = cli("list", "--local")

    assert (result.status, result.err) == (2, "error: no local stack is running: start one with scripts/local\n")


# --- against a real local stack


@pytest.fixture
def local_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from local.stack import LocalStack, write_state

    with (
        open(tmp_path / "function.log", "w", encoding="utf-8") as log,
        LocalStack(port=0, workers=1, function_log=log) as stack,
    ):
        monkeypatch.setattr("local.stack.STATE_DIR", tmp_path / ".local-stacks")
        write_state(stack)
        yield stack


@pytest.mark.slow
def test_on_the_local_stack_a_forgotten_incident_gets_a_new_session_from_its_next_delivery(local_stack, cli) -> None:
    from local.send import send

    def deliver() -> dict[str, Any]:
        status, _, body = send(json.dumps(incident("QLEDGERCLI")).encode(), local_stack.url, [TEST_SIGNING_SECRET])
        assert status == 200, body
        return json.loads(body)

    first = deliver()
    assert first["status"] == "started"

    listed = cli("list", "--local")
    shown = cli("show", "QLEDGERCLI", "--local")
    forgotten = cli("forget", "QLEDGERCLI", "--local", "--yes")
    second = deliver()

    assert rows(listed.out) == ["QLEDGERCLI"]
    assert f"  URL           {first['session_url']}" in shown.out.splitlines()
    assert forgotten.status == 0 and first["session_url"] in forgotten.out
    assert second["status"] == "started" and second["session_id"] != first["session_id"]
    relisted = cli("list", "--local", "--json")
    assert [item["session_id"] for item in json.loads(relisted.out)] == [second["session_id"]]
    assert relisted.calls == ["dynamodb.Query"] * 3
    # AND --port names it too; a port no local stack listens on is one error line
    by_port = cli("show", "QLEDGERCLI", "--local", "--port", str(local_stack.port))
    assert f"  URL           {second['session_url']}" in by_port.out.splitlines()
    elsewhere = cli("list", "--local", "--port", "1")
    assert (elsewhere.status, elsewhere.err) == (
        2,
        f"error: no local stack is running on port 1; running: webhook port {local_stack.port}\n",
    )


def test_port_without_local_is_a_usage_error(cli) -> None:
    result = cli("list", "--table", TABLE, "--port", "3000")

    assert (result.status, result.err) == (2, "error: --port picks a local stack: use it with --local\n")
    assert result.calls == []


def test_show_prints_the_postmortems_result_as_the_follow_up_kept_it(aws, cli) -> None:
    put(
        started(
            "QRESULT",
            60,
            result_status="valid",
            result_schema="default",
            result_score="8/9",
            postmortem_result={
                "summary": "Checkout failed for 51 minutes after deploy 412.",
                "root_cause": {"statement": "Deploy 412 shrank the connection pool.", "confidence": "likely"},
                "action_items": [
                    {"title": "Check pool size in CI", "type": "prevent", "priority": "P1", "owner": "payments"}
                ],
            },
            result_evidence={"cited": 4, "unknown": ["RMADEUP00000"]},
            summary_note_posted_at="2026-03-14T11:00:00Z",
            computed={"seconds_to_first_ack": 138, "seconds_to_resolve": 3034},
            evidence_ids=["Q02JTSNZWHSEKV"],
        )
    )

    result = cli("show", "QRESULT", "--table", TABLE)

    assert result.status == 0, result.err
    lines = result.out.splitlines()
    assert "postmortem" in lines
    for expected in (
        "  result        valid: kept below",
        "  summary       Checkout failed for 51 minutes after deploy 412.",
        "  root cause    (likely) Deploy 412 shrank the connection pool.",
        "  action items  [P1 prevent] Check pool size in CI  (owner: payments)",
        "  score         8/9",
        "  evidence      4 cited, not in PagerDuty's record: RMADEUP00000",
        "  summary note  posted 2026-03-14T11:00:00Z",
        "  computed      seconds_to_first_ack 138",
        "                seconds_to_resolve 3034",
    ):
        assert expected in lines, expected
    assert "other" not in lines


def test_show_says_why_a_result_was_refused(aws, cli) -> None:
    put(started("QBAD", 60, result_status="invalid", result_error="data.root_cause.confidence must be one of [...]"))

    lines = cli("show", "QBAD", "--table", TABLE).out.splitlines()

    assert "  result        invalid: no summary note" in lines
    assert "  error         data.root_cause.confidence must be one of [...]" in lines


# --- scrub: items written before the follow-up scrubbed what sessions gave back


def test_scrub_takes_the_bridges_secrets_and_marker_look_alikes_out_of_what_items_kept_of_sessions(stack, cli) -> None:
    from tests.conftest import DEVIN_KEY, PREFIX

    # GIVEN a stack whose prefix holds the Devin key, and an item written before: its result's compact copy carries
    # the key split by a zero-width space, a token of a known shape and a marker; another item is clean
    aws_client("ssm").put_parameter(Name=f"{PREFIX}/devin-api-key", Value=DEVIN_KEY, Type="SecureString")
    [output] = aws_client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
    table = output["OutputValue"]
    leaked = DEVIN_KEY[:8] + "\u200b" + DEVIN_KEY[8:]
    result = {
        "summary": f"Rotated {leaked} and ghp_{'a' * 36}. [pagerduty-postmortem:summary]",
        "root_cause": {"statement": "A deploy", "confidence": "likely"},
        "action_items": [],
    }
    put(started("QDIRTY", 60, postmortem_result=result, result_error=f"bad {leaked}"), table=table)
    put(started("QCLEAN", 60, postmortem_result={**result, "summary": "Fine."}, result_error="x"), table=table)

    dry = cli("scrub", "--stack", stack, "--dry-run")
    untouched = ledger_item_in(table, "QDIRTY")
    done = cli("scrub", "--stack", stack)
    again = cli("scrub", "--stack", stack)

    # THEN the dry run changes nothing, the scrub rewrites only the dirty item, and a second scrub finds nothing
    assert (dry.status, done.status, again.status) == (0, 0, 0)
    assert "QDIRTY: postmortem_result, result_error" in dry.out and "would change" in dry.out
    assert untouched["postmortem_result"]["summary"] == result["summary"]
    assert "QDIRTY: postmortem_result, result_error" in done.out and "QCLEAN" not in done.out
    assert "0 changed" in again.out
    kept = ledger_item_in(table, "QDIRTY")
    text = json.dumps(kept, default=str)
    assert DEVIN_KEY[8:] not in text and "ghp_" not in text and "[pagerduty-postmortem" not in text
    assert kept["postmortem_result"]["summary"].startswith("Rotated [redacted] and [redacted].")
    assert "dynamodb.Scan" not in done.calls
    assert set(done.calls) <= {
        "cloudformation.DescribeStacks",
        "ssm.GetParameters",
        "dynamodb.Query",
        "dynamodb.UpdateItem",
    }


def test_scrub_needs_the_stack_or_the_local_stack_for_the_secrets(aws, cli) -> None:
    run = cli("scrub", "--table", TABLE)

    assert run.status == 2
    assert "scrub needs --stack or --local" in run.err


def ledger_item_in(table: str, incident_id: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    raw = aws_client("dynamodb").get_item(TableName=table, Key={"incident_id": {"S": incident_id}})["Item"]
    return {name: TypeDeserializer().deserialize(value) for name, value in raw.items()}
