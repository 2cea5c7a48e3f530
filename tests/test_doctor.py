"""scripts/doctor: one line per check, ✓ or ✗ with what to do, against the local stack (--local) and against a stack
that moto's CloudFormation describes (--stack), each ✗ path broken on purpose.

Every run goes through `doctor()`, which also asserts what must hold for any run: no secret in what it printed, and
nothing but reads at Devin and PagerDuty (no session created, no note posted).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from bridge.http import USER_AGENT

from local import stack as stack_module
from local.apigateway import Gateway, GatewayServer, Route
from local.devin_standin import DevinStandIn
from local.http_server import Fault
from local.pagerduty_standin import PagerDutyStandIn
from local.runtime import Invocation
from local.send import send
from local.stack import (
    STANDIN_API_KEY,
    STANDIN_PAGERDUTY_API_KEY,
    STANDIN_PAGERDUTY_FROM_EMAIL,
    LocalStack,
)
from scripts import doctor as doctor_module
from scripts.make_events import PAYLOADS_DIR, TEST_SIGNING_SECRET
from tests.conftest import (
    DEVIN_KEY,
    DEVIN_ORG,
    PAGERDUTY_FROM,
    PAGERDUTY_KEY,
    PREFIX,
    FakeContext,
    aws_client,
    put_parameter,
)

ROOT = Path(__file__).resolve().parents[1]
# When the test's own stack says it started; another stack's state is dated before or after it.
STARTED_AT = "2026-12-01T12:00:00.000Z"
WEBHOOK_SECRET = "local-webhook-secret-for-the-doctor"
# Wrong values a test stores: secrets too, so they must not be printed either.
WRONG_DEVIN_KEY = "cog_wrong_key_the_doctor_must_not_print"
WRONG_PAGERDUTY_KEY = "pd_wrong_key_not_printed"
ROTATED_SECRET = "rotated-signing-secret-not-yet-seen"
SECRETS = (
    TEST_SIGNING_SECRET,
    WEBHOOK_SECRET,
    STANDIN_API_KEY,
    STANDIN_PAGERDUTY_API_KEY,
    DEVIN_KEY,
    PAGERDUTY_KEY,
    WRONG_DEVIN_KEY,
    WRONG_PAGERDUTY_KEY,
    ROTATED_SECRET,
)


@dataclass
class Report:
    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def line(self, start: str) -> str:
        """The one line that starts with `start`."""
        [found] = [line for line in self.lines if line.startswith(start)]
        return found

    def advice(self, start: str) -> str:
        """What to do, printed under the ✗ line that starts with `start`."""
        index = self.lines.index(self.line(start))
        assert self.lines[index + 1].startswith("  → ")
        return self.lines[index + 1]

    @property
    def failed(self) -> list[str]:
        return [line for line in self.lines if line.startswith("✗")]


def doctor(
    capsys: pytest.CaptureFixture[str], args: list[str], devin: DevinStandIn, pagerduty: PagerDutyStandIn
) -> Report:
    """Run scripts/doctor's main; assert it printed no secret and only read at Devin and PagerDuty."""
    capsys.readouterr()
    devin_seen, pagerduty_seen = len(devin.requests), len(pagerduty.requests)
    sessions = len(devin.sessions)
    status = doctor_module.main(args)
    out, err = capsys.readouterr()
    # The function's own log lines (JSON) may share stdout in-process; the doctor's lines never start with "{".
    out = "".join(line for line in out.splitlines(keepends=True) if not line.startswith("{"))
    for secret in SECRETS:
        assert secret not in out and secret not in err, f"a secret was printed: {secret}"
    assert {r.method for r in devin.requests[devin_seen:]} <= {"GET"}
    assert {r.method for r in pagerduty.requests[pagerduty_seen:]} <= {"GET"}
    assert len(devin.sessions) == sessions
    return Report(status, out, err)


# --- the local stack (one for the module; each test breaks it and `local` puts it back)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_path = tmp_path_factory.mktemp("doctor-stack") / "function.log"
    # One warm container, so that what the function has cached is known (the rotation test).
    with (
        open(log_path, "w", encoding="utf-8") as log,
        LocalStack(port=0, workers=1, webhook_secret=WEBHOOK_SECRET, function_log=log) as running,
    ):
        yield running


@dataclass
class Local:
    stack: LocalStack
    state: Path  # the state file the doctor finds the stack by (this process's, in a directory of the test's own)
    capsys: pytest.CaptureFixture[str]
    ssm: Any  # a client on the stack's Parameter Store

    def run(self, *args: str, **outputs: str | None) -> Report:
        """scripts/doctor --local [args], with the stack's outputs changed as given (None: left out)."""
        changed = {**self.stack.outputs(), **outputs}
        state = {
            "pid": os.getpid(),
            "started_at": STARTED_AT,
            "outputs": {k: v for k, v in changed.items() if v is not None},
        }
        self.state.parent.mkdir(exist_ok=True)
        self.state.write_text(json.dumps(state), encoding="utf-8")
        assert self.stack.devin is not None and self.stack.pagerduty is not None
        return doctor(self.capsys, ["--local", *args], self.stack.devin, self.stack.pagerduty)

    def another_stack(self, process: subprocess.Popen[bytes], started_at: str, port: int) -> None:
        """The state file of another local stack, run by `process`, whose webhook is on `port`."""
        outputs = {**self.stack.outputs(), "WebhookUrl": f"http://127.0.0.1:{port}/pagerduty"}
        state = {"pid": process.pid, "started_at": started_at, "outputs": outputs}
        self.state.parent.mkdir(exist_ok=True)
        (self.state.parent / f"{process.pid}.json").write_text(json.dumps(state), encoding="utf-8")

    def put(self, name: str, value: str, kind: str = "SecureString") -> None:
        self.ssm.put_parameter(Name=f"{self.stack.parameter_prefix}/{name}", Value=value, Type=kind, Overwrite=True)

    def delete(self, *names: str) -> None:
        for name in names:
            self.ssm.delete_parameter(Name=f"{self.stack.parameter_prefix}/{name}")


@pytest.fixture(scope="module")
def stack_ssm(stack: LocalStack) -> Any:
    return stack.aws_client("ssm")


@pytest.fixture
def local(
    stack: LocalStack,
    stack_ssm: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Local]:
    ssm = stack_ssm
    # Restored after the test, whatever it broke: the parameters, and what the stand-ins were told.
    kept = ssm.get_parameters_by_path(Path=stack.parameter_prefix, WithDecryption=True, MaxResults=10)["Parameters"]
    assert stack.devin is not None and stack.pagerduty is not None
    self_org, samples = stack.devin.self_org_id, stack.pagerduty.serve_samples
    monkeypatch.setattr(stack_module, "STATE_DIR", tmp_path / ".local-stacks")
    yield Local(stack, tmp_path / ".local-stacks" / f"{os.getpid()}.json", capsys, ssm)
    now = ssm.get_parameters_by_path(Path=stack.parameter_prefix, MaxResults=10)["Parameters"]
    for extra in {p["Name"] for p in now} - {p["Name"] for p in kept}:
        ssm.delete_parameter(Name=extra)
    for parameter in kept:
        ssm.put_parameter(Name=parameter["Name"], Value=parameter["Value"], Type=parameter["Type"], Overwrite=True)
    stack.devin.self_org_id, stack.pagerduty.serve_samples = self_org, samples


@pytest.mark.slow
def test_a_healthy_local_stack_passes_every_check_and_exits_0(local: Local) -> None:
    devin, pagerduty = local.stack.devin, local.stack.pagerduty
    assert devin is not None and pagerduty is not None
    devin_seen, pagerduty_seen = len(devin.requests), len(pagerduty.requests)

    report = local.run()

    url = local.stack.url

    assert report.status == 0, report.out
    assert report.lines == [
        "✓ the local stack: outputs WebhookUrl, LedgerTableName, FunctionName, FollowUpFunctionName",
        f"✓ {PREFIX}/devin-api-key: SecureString",
        f"✓ {PREFIX}/devin-org-id: String",
        f"✓ {PREFIX}/pagerduty-signing-secret: SecureString",
        f"✓ {PREFIX}/webhook-secret: SecureString",
        f"✓ {PREFIX}/pagerduty-api-key: SecureString",
        f"✓ {PREFIX}/pagerduty-from-email: String",
        "✓ Devin: the key of postmortem-bot is accepted and reads the sessions of org-local (creating one is not"
        " tried: a key without ManageOrgSessions would fail only then)",
        f"✓ PagerDuty: the key reads incidents and {STANDIN_PAGERDUTY_FROM_EMAIL} is a user of the account (writing"
        " a note is not tried: a read-only key would fail only then)",
        "✓ ledger table ledger: ACTIVE, TTL ENABLED on expires_at",
        f"✓ webhook {url}: a signed pagey.ping is answered 200 ignored (ping)",
        f"✓ webhook {url}: an unsigned one is refused with 401",
        "12 checks, 0 failed",
    ]
    assert report.err == ""
    # Reads only: who the key is and one session of the org; one incident and the from-email's user.
    assert [(r.method, r.path) for r in devin.requests[devin_seen:]] == [
        ("GET", "/v3/self"),
        ("GET", "/v3/organizations/org-local/sessions"),
    ]
    assert [(r.method, r.path, r.query) for r in pagerduty.requests[pagerduty_seen:]] == [
        ("GET", "/incidents", {"limit": ["1"]}),
        ("GET", "/users", {"limit": ["100"], "offset": ["0"]}),
    ]
    assert devin.create_requests() == []


@pytest.mark.slow
def test_it_signs_with_the_first_line_of_each_secret_as_pagerduty_does_during_a_rotation(local: Local) -> None:
    local.put("pagerduty-signing-secret", f"{TEST_SIGNING_SECRET}\nthe-old-secret")
    local.put("webhook-secret", f"{WEBHOOK_SECRET}\nthe-old-webhook-secret")

    report = local.run()

    assert report.status == 0, report.out
    assert "the-old-secret" not in report.out and "the-old-webhook-secret" not in report.out


@pytest.mark.slow
def test_valid_routing_and_prompt_template_are_reported_with_what_they_hold(local: Local) -> None:
    local.put("routing", (ROOT / "docs/routing.example.json").read_text(encoding="utf-8"), "String")
    local.put("prompt-template", "Write the postmortem of ${title} (${incident_id}).", "String")

    report = local.run()

    assert report.status == 0, report.out
    assert report.line(f"✓ {PREFIX}/routing") == f"✓ {PREFIX}/routing: String, a valid routing document (3 rules)"
    assert report.line(f"✓ {PREFIX}/prompt-template").endswith("a valid prompt template (50 characters)")


def test_without_a_running_local_stack_it_exits_2_and_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(stack_module, "STATE_DIR", tmp_path / "none")

    status = doctor_module.main(["--local"])

    assert status == 2
    assert capsys.readouterr() == ("", "error: no local stack is running: start one with scripts/local\n")


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    """A running process, other than this one, for another local stack's state file to name."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # noqa: S603
    yield process
    process.kill()
    process.wait()


@pytest.mark.slow
def test_with_several_local_stacks_it_checks_the_one_started_last_and_says_which(
    local: Local, other_process: subprocess.Popen[bytes]
) -> None:
    # GIVEN another stack, on port 3999, started before the test's own
    local.another_stack(other_process, "2026-11-30T08:00:00.000Z", 3999)

    report = local.run()

    # THEN the doctor checks the one started last (the test's, healthy) and says so, naming the other's port
    port = local.stack.port
    assert report.status == 0, report.out
    assert report.err == (
        f"note: 2 local stacks are running (webhook ports 3999, {port}): using port {port}, the one started last;"
        " --port PORT picks another\n"
    )


@pytest.mark.slow
def test_port_picks_one_of_several_local_stacks(local: Local, other_process: subprocess.Popen[bytes]) -> None:
    # GIVEN another stack started after the test's own: without --port the doctor would check that one
    local.another_stack(other_process, "2026-12-02T08:00:00.000Z", 3999)

    report = local.run("--port", str(local.stack.port))

    assert report.status == 0, report.out
    assert report.err == ""
    assert report.line(f"✓ webhook {local.stack.url}: a signed pagey.ping")


@pytest.mark.slow
def test_a_port_no_local_stack_listens_on_exits_2_naming_the_ports_that_do(local: Local) -> None:
    report = local.run("--port", "1")

    assert report.status == 2
    assert report.err == f"error: no local stack is running on port 1; running: webhook port {local.stack.port}\n"


def test_port_without_local_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor_module.main(["--stack", "pagerduty-postmortem", "--port", "3000"]) == 2
    assert capsys.readouterr().err == "error: --port picks a local stack: use it with --local\n"


def test_the_state_file_of_a_stopped_stack_is_ignored_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the state file of a stack whose process has exited (killed: it could not remove its file)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)  # noqa: S603
    states = tmp_path / ".local-stacks"
    states.mkdir()
    stale = states / f"{gone.stdout.strip()}.json"
    stale.write_text(
        json.dumps({"pid": int(gone.stdout), "outputs": {"WebhookUrl": "http://127.0.0.1:3000/pagerduty"}})
    )
    monkeypatch.setattr(stack_module, "STATE_DIR", states)

    status = doctor_module.main(["--local"])

    assert status == 2
    assert capsys.readouterr().err == "error: no local stack is running: start one with scripts/local\n"
    assert not stale.exists()


@pytest.mark.slow
def test_a_missing_output_fails_and_so_does_the_check_that_needed_it(local: Local) -> None:
    report = local.run(LedgerTableName=None)

    assert report.status == 1
    assert report.line("✗ the local stack") == "✗ the local stack: outputs: LedgerTableName missing"
    assert report.advice("✗ the local stack") == "  → restart scripts/local, then run again"
    assert report.line("✗ ledger table") == "✗ ledger table: not checked: the stack has no LedgerTableName output"
    assert report.lines[-1] == "12 checks, 2 failed"


@pytest.mark.slow
def test_a_missing_required_parameter_fails_with_its_put_parameter_line(local: Local) -> None:
    local.delete("devin-api-key")

    report = local.run()

    assert report.status == 1
    assert report.line(f"✗ {PREFIX}/devin-api-key") == f"✗ {PREFIX}/devin-api-key: missing"
    assert report.advice(f"✗ {PREFIX}/devin-api-key") == (
        f"  → aws ssm put-parameter --name {PREFIX}/devin-api-key --type SecureString --value 'cog_…'"
        f" --endpoint-url {local.stack.aws_endpoint} --region us-east-1"
    )
    assert report.line("✗ Devin").startswith("✗ Devin: not checked:")


@pytest.mark.slow
def test_without_either_authentication_secret_the_webhook_cannot_be_signed(local: Local) -> None:
    local.delete("pagerduty-signing-secret", "webhook-secret")

    report = local.run()

    assert report.status == 1
    assert report.line("✗ webhook authentication") == (
        f"✗ webhook authentication: neither {PREFIX}/pagerduty-signing-secret nor {PREFIX}/webhook-secret exists:"
        " every delivery is refused"
    )
    assert "--name /pagerduty-postmortem/pagerduty-signing-secret --type SecureString" in report.advice(
        "✗ webhook authentication"
    )
    assert report.line(f"✗ webhook {local.stack.url}, signed").endswith(
        "not checked: no secret in Parameter Store to sign with"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pagerduty-signing-secret", "devin-api-key", "pagerduty-api-key"])
def test_a_secret_stored_as_a_string_fails(local: Local, name: str) -> None:
    value = local.ssm.get_parameter(Name=f"{PREFIX}/{name}", WithDecryption=True)
    local.put(name, value["Parameter"]["Value"], "String")

    report = local.run()

    assert report.status == 1
    assert report.line(f"✗ {PREFIX}/{name}") == f"✗ {PREFIX}/{name}: a String, must be a SecureString (a secret)"
    assert "--type SecureString --value '" in report.advice(f"✗ {PREFIX}/{name}")
    assert "--overwrite" in report.advice(f"✗ {PREFIX}/{name}")


@pytest.mark.slow
def test_a_non_secret_stored_as_a_securestring_fails_too(local: Local) -> None:
    local.put("devin-org-id", "org-local", "SecureString")

    report = local.run()

    assert report.line(f"✗ {PREFIX}/devin-org-id") == f"✗ {PREFIX}/devin-org-id: a SecureString, must be a String"
    assert report.line("✓ Devin")  # the value is still read, and still right


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "text", "problem", "try_it"),
    [
        ("routing", '{"rules": [', "routing: not JSON", "scripts/check-routing routing.json"),
        ("prompt-template", "Hello ${nope}", "unknown placeholder ${nope}", "--prompt-template prompt.txt"),
    ],
)
def test_a_routing_document_or_template_the_function_refuses_fails(
    local: Local, name: str, text: str, problem: str, try_it: str
) -> None:
    local.put(name, text, "String")

    report = local.run()

    assert report.status == 1
    assert report.line(f"✗ {PREFIX}/{name}").startswith(f"✗ {PREFIX}/{name}: the function refuses it: ")
    assert problem in report.line(f"✗ {PREFIX}/{name}")
    assert try_it in report.advice(f"✗ {PREFIX}/{name}")


@pytest.mark.slow
def test_a_devin_key_that_devin_refuses_fails(local: Local) -> None:
    local.put("devin-api-key", WRONG_DEVIN_KEY)

    report = local.run()

    assert report.status == 1
    assert report.line("✗ Devin") == f"✗ Devin: {local.stack.devin_url} refused the key (HTTP 401 on GET /v3/self)"
    assert "Settings → Service users" in report.advice("✗ Devin")


@pytest.mark.slow
def test_a_devin_key_stored_with_a_line_break_passes_as_the_function_strips_it(local: Local) -> None:
    # `--value file://key.txt` stores the file's last line break too; the function reads the key without it.
    local.put("devin-api-key", f"{STANDIN_API_KEY}\n")

    report = local.run()

    assert report.line("✓ Devin").startswith("✓ Devin: the key of postmortem-bot is accepted")


@pytest.mark.slow
def test_a_key_of_another_organisation_fails(local: Local) -> None:
    local.put("devin-org-id", "org-other", "String")

    report = local.run()

    assert report.status == 1
    assert report.line("✗ Devin") == "✗ Devin: the key belongs to org-local, but devin-org-id is org-other"
    assert report.advice("✗ Devin") == (
        f"  → store org-local in {PREFIX}/devin-org-id, or a key of a service user of org-other"
    )


@pytest.mark.slow
def test_when_self_names_no_org_the_read_in_the_org_decides(local: Local) -> None:
    assert local.stack.devin is not None
    local.stack.devin.self_org_id = None
    local.put("devin-org-id", "org-other", "String")

    report = local.run()

    assert report.status == 1
    assert report.line("✗ Devin") == "✗ Devin: the key may not read the sessions of org-other (HTTP 403)"
    assert "ViewOrgSessions and ManageOrgSessions in org-other" in report.advice("✗ Devin")


@pytest.mark.slow
def test_a_pagerduty_key_that_pagerduty_refuses_fails(local: Local) -> None:
    local.put("pagerduty-api-key", WRONG_PAGERDUTY_KEY)

    report = local.run()

    assert report.status == 1
    pagerduty_url = local.stack.outputs()["PagerDutyApiBaseUrl"]
    assert report.line("✗ PagerDuty") == f"✗ PagerDuty: {pagerduty_url} refused the key (HTTP 401 on GET /incidents)"
    assert f"--name {PREFIX}/pagerduty-api-key --type SecureString" in report.advice("✗ PagerDuty")


@pytest.mark.slow
def test_a_from_email_that_is_no_user_of_the_account_fails(local: Local) -> None:
    assert local.stack.pagerduty is not None
    local.stack.pagerduty.serve_samples = False  # now it knows only the users added to it: none

    report = local.run()

    assert report.status == 1
    assert report.line("✗ PagerDuty") == (
        f"✗ PagerDuty: {STANDIN_PAGERDUTY_FROM_EMAIL} (pagerduty-from-email) is not a user of the account"
    )
    assert f"--name {PREFIX}/pagerduty-from-email --type String" in report.advice("✗ PagerDuty")


def _check_pagerduty(pagerduty: PagerDutyStandIn, email: str) -> doctor_module.Check:
    """The doctor's PagerDuty check alone, against `pagerduty`, with its key and `email` as the from-email."""
    target = doctor_module.Target("the local stack", {}, PREFIX, "", pagerduty.base_url, lambda _: None, "", "", "")
    types = {"pagerduty-api-key": "SecureString", "pagerduty-from-email": "String"}
    return doctor_module.check_pagerduty(
        target, doctor_module.Stored(types, {"pagerduty-api-key": PAGERDUTY_KEY, "pagerduty-from-email": email})
    )


def test_the_from_email_is_looked_for_in_the_list_of_users_page_by_page_not_with_a_query(
    pagerduty: PagerDutyStandIn,
) -> None:
    # GIVEN an account of 150 users whose 140th is the from-email's; PagerDuty's `query` matches names only
    for n in range(150):
        pagerduty.add_user(PAGERDUTY_FROM if n == 139 else f"user{n}@example.com", f"User {n}")

    check = _check_pagerduty(pagerduty, PAGERDUTY_FROM.upper())

    # THEN it is found on the second page, e-mail addresses compared without case
    assert check.problem is None and f"and {PAGERDUTY_FROM.upper()} is a user of the account" in check.what
    assert [(r.path, r.query) for r in pagerduty.requests] == [
        ("/incidents", {"limit": ["1"]}),
        ("/users", {"limit": ["100"], "offset": ["0"]}),
        ("/users", {"limit": ["100"], "offset": ["100"]}),
    ]
    # AND asked as the functions ask: their User-Agent, and the Content-Type PagerDuty's specification requires
    assert {(r.headers["user-agent"], r.headers["content-type"]) for r in pagerduty.requests} == {
        (USER_AGENT, "application/json")
    }


def test_a_from_email_that_no_page_of_users_lists_is_no_user(pagerduty: PagerDutyStandIn) -> None:
    for n in range(150):
        pagerduty.add_user(f"user{n}@example.com", f"User {n}")

    check = _check_pagerduty(pagerduty, PAGERDUTY_FROM)

    assert check.problem == f"{PAGERDUTY_FROM} (pagerduty-from-email) is not a user of the account"
    assert [r.query.get("offset") for r in pagerduty.requests if r.path == "/users"] == [["0"], ["100"]]


def test_past_pagerdutys_listing_limit_the_from_email_is_left_to_be_checked_by_hand(
    pagerduty: PagerDutyStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN PagerDuty's limit on a listing (offset + limit at most 10000) brought down to 200, and 250 users
    monkeypatch.setattr(doctor_module, "MAX_OFFSET_PLUS_LIMIT", 200)
    for n in range(250):
        pagerduty.add_user(f"user{n}@example.com", f"User {n}")

    check = _check_pagerduty(pagerduty, PAGERDUTY_FROM)

    # THEN it does not call the address no user's, having read only part of the list
    assert (
        check.problem == f"{PAGERDUTY_FROM} cannot be looked up (it is not among the first 200 users PagerDuty lists)"
    )
    assert check.todo == "check by hand that it is the login email of a user (PagerDuty: People → Users)"
    assert [r.query["offset"] for r in pagerduty.requests if r.path == "/users"] == [["0"], ["100"]]


@pytest.mark.parametrize(
    ("fault", "problem"),
    [(Fault.status(500), "HTTP 500 on GET /users"), (Fault(body=b"{}"), "GET /users answered without a list of users")],
    ids=["500", "no list"],
)
def test_a_list_of_users_that_cannot_be_read_is_checked_by_hand(
    pagerduty: PagerDutyStandIn, fault: Fault, problem: str
) -> None:
    pagerduty.enqueue("users", fault)

    check = _check_pagerduty(pagerduty, PAGERDUTY_FROM)

    assert check.problem == f"{PAGERDUTY_FROM} cannot be looked up ({problem})"
    assert check.todo == "check by hand that it is the login email of a user (PagerDuty: People → Users)"


@pytest.mark.slow
def test_without_a_pagerduty_key_pagerduty_is_not_called_and_that_passes(local: Local) -> None:
    local.delete("pagerduty-api-key", "pagerduty-from-email")
    assert local.stack.pagerduty is not None
    seen = len(local.stack.pagerduty.requests)

    report = local.run()

    assert report.status == 0, report.out
    assert report.line("✓ PagerDuty") == (
        f"✓ PagerDuty: no {PREFIX}/pagerduty-api-key, so the functions never call it (optional)"
    )
    assert local.stack.pagerduty.requests[seen:] == []


@pytest.mark.slow
def test_a_ledger_table_that_does_not_exist_fails(local: Local) -> None:
    report = local.run(LedgerTableName="no-such-table")

    assert report.status == 1
    assert report.line("✗ ledger table") == "✗ ledger table no-such-table: does not exist"


@pytest.mark.slow
def test_a_ledger_table_without_its_ttl_fails_with_the_command_that_turns_it_on(local: Local) -> None:
    dynamodb = local.stack.aws_client("dynamodb")
    dynamodb.create_table(
        TableName="ledger-without-ttl",
        KeySchema=[{"AttributeName": "incident_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "incident_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        report = local.run(LedgerTableName="ledger-without-ttl")
    finally:
        dynamodb.delete_table(TableName="ledger-without-ttl")

    assert report.status == 1
    assert report.line("✗ ledger table") == (
        "✗ ledger table ledger-without-ttl: TTL is DISABLED, not on expires_at: items never expire"
    )
    assert report.advice("✗ ledger table") == (
        "  → aws dynamodb update-time-to-live --table-name ledger-without-ttl --time-to-live-specification"
        f" Enabled=true,AttributeName=expires_at --endpoint-url {local.stack.aws_endpoint} --region us-east-1"
    )


@pytest.mark.slow
def test_a_signing_secret_the_function_has_not_picked_up_yet_fails_the_signed_ping(local: Local) -> None:
    # GIVEN the function's one warm container has read the parameters (it keeps them 5 minutes)
    ping = (PAYLOADS_DIR / "pagey-ping.json").read_bytes()
    assert send(ping, local.stack.url, [TEST_SIGNING_SECRET], webhook_secret=WEBHOOK_SECRET)[0] == 200
    # WHEN the secret changes in Parameter Store, and the doctor signs with the new one
    local.put("pagerduty-signing-secret", ROTATED_SECRET)

    report = local.run()

    # THEN the function refuses it, and the doctor says why that may be
    assert report.status == 1
    assert report.line("✗ webhook") == f"✗ webhook {local.stack.url}: the signed pagey.ping got HTTP 401"
    assert "re-reads it within 5 minutes" in report.advice("✗ webhook")
    assert report.line(f"✓ webhook {local.stack.url}: an unsigned one")


@pytest.mark.slow
def test_a_webhook_url_that_cannot_be_reached_fails_once(local: Local) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}/pagerduty"
    closed.server_close()

    report = local.run(WebhookUrl=url)

    assert report.status == 1
    assert report.failed == [f"✗ webhook {url}: cannot reach {url}: Connection refused"]


class _AcceptsAnything(BaseHTTPRequestHandler):
    """A webhook that authenticates nothing: every POST gets the ping's answer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"status": "ignored", "reason": "ping"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_a_webhook_that_accepts_an_unsigned_ping_fails(local: Local) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AcceptsAnything)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/pagerduty"
    try:
        report = local.run(WebhookUrl=url)
    finally:
        server.shutdown()
        server.server_close()

    assert report.status == 1
    assert report.line(f"✓ webhook {url}: a signed pagey.ping")
    assert report.failed == [f"✗ webhook {url}: an unsigned pagey.ping was accepted (HTTP 200 'ignored')"]
    assert "anyone can post to it" in report.advice("✗ webhook")


# --- a deployed stack: moto's CloudFormation, the real handler behind the local API Gateway, in this process

STACK = "pd-postmortem"
# What the doctor reads of a stack: its parameters and outputs. The table is made by the stack; the webhook is this
# process's gateway, so WebhookUrl comes in as a parameter.
TINY_TEMPLATE = """
Parameters:
  SsmParameterPrefix: {Type: String, Default: /pagerduty-postmortem}
  DevinApiBaseUrl: {Type: String, Default: https://api.devin.ai}
  PagerDutyApiBaseUrl: {Type: String, Default: https://api.pagerduty.com}
  Webhook: {Type: String}
Resources:
  LedgerTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: incident_id, AttributeType: S}]
      KeySchema: [{AttributeName: incident_id, KeyType: HASH}]
      TimeToLiveSpecification: {AttributeName: expires_at, Enabled: true}
Outputs:
  WebhookUrl: {Value: !Ref Webhook}
  LedgerTableName: {Value: !Ref LedgerTable}
  FunctionName: {Value: pd-postmortem-PagerDutyPostmortemFunction-1A2B3C}
  FollowUpFunctionName: {Value: pd-postmortem-FollowUpFunction-4D5E6F}
"""
# The functions those outputs name, created beside the stack (moto's CloudFormation drops a function's Layers), and
# the Powertools layer they run with, described as Powertools describes the layers it publishes.
DEPLOYED_FUNCTIONS = ("pd-postmortem-PagerDutyPostmortemFunction-1A2B3C", "pd-postmortem-FollowUpFunction-4D5E6F")
LAYER = "AWSLambdaPowertoolsPythonV3-python313-arm64"
PINNED = doctor_module.pinned_powertools()


def _zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, "")
    return buffer.getvalue()


def publish_layer(release: str | None = PINNED, *, architecture: str = "arm64") -> str:
    """A Powertools layer version of `release` (its ARN): the description is where the layer says its release."""
    described = f"Powertools for AWS Lambda (Python) V3 [{architecture} - Python 3.13] with extra dependencies"
    published = aws_client("lambda").publish_layer_version(
        LayerName=LAYER,
        Content={"ZipFile": _zip("python/aws_lambda_powertools/__init__.py")},
        Description=f"{described} version {release}" if release else described,
        CompatibleRuntimes=["python3.13"],
        CompatibleArchitectures=[architecture],
    )
    return published["LayerVersionArn"]


def create_functions(*layers: str) -> None:
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:*"}]}
    role = aws_client("iam").create_role(RoleName=f"{STACK}-role", AssumeRolePolicyDocument=json.dumps(trust))
    for name in DEPLOYED_FUNCTIONS:
        aws_client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.13",
            Architectures=["arm64"],
            Role=role["Role"]["Arn"],
            Handler="app.lambda_handler",
            Code={"ZipFile": _zip("app.py")},
            Layers=list(layers),
        )


def run_with(*layers: str) -> None:
    for name in DEPLOYED_FUNCTIONS:
        aws_client("lambda").update_function_configuration(FunctionName=name, Layers=list(layers))


@pytest.fixture
def webhook(handler_module: Any, logs: Callable[[], list[dict[str, Any]]]) -> Iterator[str]:
    """The real lambda_handler (mocked AWS, the Devin stand-in) behind the local API Gateway on 127.0.0.1."""

    def invoke(event: dict[str, Any], request_id: str, timeout: float) -> Invocation:
        return Invocation(result=handler_module.lambda_handler(event, FakeContext()))

    server = GatewayServer(Gateway([Route("POST", "/pagerduty")], invoke, function_timeout_seconds=25), "127.0.0.1", 0)
    server.start()
    yield f"http://127.0.0.1:{server.port}/pagerduty"
    server.stop()


@pytest.fixture
def deployed(webhook: str, devin: DevinStandIn, pagerduty: PagerDutyStandIn) -> Callable[..., str]:
    """Deploys TINY_TEMPLATE as STACK, without the outputs named; returns the name of the table it made."""
    put_parameter("pagerduty-api-key", PAGERDUTY_KEY)
    put_parameter("pagerduty-from-email", PAGERDUTY_FROM, secure=False)
    pagerduty.add_user(PAGERDUTY_FROM)

    def deploy(*without: str) -> str:
        template = "\n".join(
            line for line in TINY_TEMPLATE.splitlines() if not any(line.strip().startswith(f"{n}:") for n in without)
        )
        parameters = {"Webhook": webhook, "DevinApiBaseUrl": devin.base_url, "PagerDutyApiBaseUrl": pagerduty.base_url}
        cloudformation = aws_client("cloudformation")
        cloudformation.create_stack(
            StackName=STACK,
            TemplateBody=template,
            Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        )
        table = aws_client("cloudformation").describe_stack_resource(StackName=STACK, LogicalResourceId="LedgerTable")
        create_functions(publish_layer())
        return table["StackResourceDetail"]["PhysicalResourceId"]

    return deploy


def turn_ttl_on(table: str) -> None:
    # CloudFormation applies the table's TimeToLiveSpecification; moto's CloudFormation leaves it out.
    aws_client("dynamodb").update_time_to_live(
        TableName=table, TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": True}
    )


def test_a_healthy_deployed_stack_passes_every_check_and_exits_0(
    deployed: Callable[..., str],
    webhook: str,
    devin: DevinStandIn,
    pagerduty: PagerDutyStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = deployed()
    turn_ttl_on(table)

    report = doctor(capsys, ["--stack", STACK], devin, pagerduty)

    assert report.status == 0, report.out
    assert report.lines == [
        f"✓ stack {STACK} (us-east-1, CREATE_COMPLETE): outputs WebhookUrl, LedgerTableName, FunctionName,"
        " FollowUpFunctionName",
        f"✓ {PREFIX}/devin-api-key: SecureString",
        f"✓ {PREFIX}/devin-org-id: String",
        f"✓ {PREFIX}/pagerduty-signing-secret: SecureString",
        f"✓ {PREFIX}/pagerduty-api-key: SecureString",
        f"✓ {PREFIX}/pagerduty-from-email: String",
        f"✓ Devin: the key of postmortem-bot is accepted and reads the sessions of {DEVIN_ORG} (creating one is not"
        " tried: a key without ManageOrgSessions would fail only then)",
        f"✓ PagerDuty: the key reads incidents and {PAGERDUTY_FROM} is a user of the account (writing a note is not"
        " tried: a read-only key would fail only then)",
        f"✓ ledger table {table}: ACTIVE, TTL ENABLED on expires_at",
        f"✓ Powertools layer of both functions: arn:aws:lambda:us-east-1:123456789012:layer:{LAYER}:1 (Powertools"
        f" {PINNED}, python3.13 arm64), the release the tests pin",
        f"✓ webhook {webhook}: a signed pagey.ping is answered 200 ignored (ping)",
        f"✓ webhook {webhook}: an unsigned one is refused with 401",
        "12 checks, 0 failed",
    ]


def test_a_deployed_ledger_without_its_ttl_fails_with_the_command_for_the_stacks_region(
    deployed: Callable[..., str], devin: DevinStandIn, pagerduty: PagerDutyStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    table = deployed()

    report = doctor(capsys, ["--stack", STACK], devin, pagerduty)

    assert report.status == 1
    assert report.failed == [f"✗ ledger table {table}: TTL is DISABLED, not on expires_at: items never expire"]
    assert report.advice("✗ ledger table").endswith("AttributeName=expires_at --region us-east-1")


def test_a_deployed_stack_without_an_output_fails_with_how_to_deploy_it(
    deployed: Callable[..., str], devin: DevinStandIn, pagerduty: PagerDutyStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    turn_ttl_on(deployed("FollowUpFunctionName"))

    report = doctor(capsys, ["--stack", STACK], devin, pagerduty)

    assert report.status == 1
    assert report.failed == [f"✗ stack {STACK} (us-east-1, CREATE_COMPLETE): outputs: FollowUpFunctionName missing"]
    assert report.advice("✗ stack") == (
        f"  → the stack is CREATE_COMPLETE: deploy it (scripts/build && sam deploy --stack-name {STACK}),"
        " then run again"
    )


# --- the Powertools layer of a deployed stack's functions

WHERE_THE_PINNED_ONE_IS = (
    f"  → the ARN of Powertools {PINNED} in us-east-1 is the value of /aws/service/powertools/python/arm64/python3.13/"
    f"{PINNED} (aws ssm get-parameter --name /aws/service/powertools/python/arm64/python3.13/{PINNED} --query"
    " Parameter.Value --output text --region us-east-1): set PowertoolsLayerVersion to its version number (the ARN's"
    " last part) in samconfig.toml, then sam deploy"
)


@pytest.mark.parametrize(
    ("layer", "problem"),
    [
        (lambda: publish_layer("3.22.0"), f"holds Powertools 3.22.0; the tests pin {PINNED} (requirements-dev.txt)"),
        (
            lambda: publish_layer(None),
            "names no Powertools release ('Powertools for AWS Lambda (Python) V3 [arm64 - Python 3.13] with extra"
            f" dependencies'); the tests pin {PINNED} (requirements-dev.txt)",
        ),
        (
            lambda: publish_layer(architecture="x86_64"),
            f"is not built for arm64, which {DEPLOYED_FUNCTIONS[0]} runs on",
        ),
    ],
    ids=["another release", "no release named", "built for x86_64"],
)
def test_a_layer_that_is_not_the_pinned_powertools_for_arm64_fails_with_where_to_find_that_one(
    deployed: Callable[..., str],
    devin: DevinStandIn,
    pagerduty: PagerDutyStandIn,
    capsys: pytest.CaptureFixture[str],
    layer: Callable[[], str],
    problem: str,
) -> None:
    turn_ttl_on(deployed())
    arn = layer()
    run_with(arn)

    report = doctor(capsys, ["--stack", STACK], devin, pagerduty)

    assert report.status == 1
    assert report.failed == [f"✗ Powertools layer {arn}: {problem}"]
    assert report.advice("✗ Powertools layer") == WHERE_THE_PINNED_ONE_IS


def test_a_layer_version_that_does_not_resolve_in_the_region_fails(
    deployed: Callable[..., str], devin: DevinStandIn, pagerduty: PagerDutyStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    turn_ttl_on(deployed())
    arn = aws_client("lambda").get_function_configuration(FunctionName=DEPLOYED_FUNCTIONS[0])["Layers"][0]["Arn"]
    aws_client("lambda").delete_layer_version(LayerName=LAYER, VersionNumber=int(arn.rpartition(":")[2]))

    report = doctor(capsys, ["--stack", STACK], devin, pagerduty)

    assert report.status == 1
    [failed] = report.failed
    assert failed.startswith(f"✗ Powertools layer {arn}: does not resolve in us-east-1 (ResourceNotFoundException")
    assert report.advice("✗ Powertools layer") == WHERE_THE_PINNED_ONE_IS


def test_a_function_without_a_layer_fails_with_how_to_deploy_it(
    deployed: Callable[..., str], devin: DevinStandIn, pagerduty: PagerDutyStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    turn_ttl_on(deployed())
    run_with()

    report = doctor(capsys, ["--stack", STACK], devin, pagerduty)

    assert report.failed == [
        f"✗ Powertools layer: function {DEPLOYED_FUNCTIONS[0]} has no layer, so it cannot import Powertools"
    ]
    assert report.advice("✗ Powertools layer").startswith("  → the stack is CREATE_COMPLETE: deploy it")


def test_the_layer_check_says_which_permission_the_credentials_lack(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = {"WebhookUrl": "", "LedgerTableName": "", "FunctionName": "f", "FollowUpFunctionName": "g"}
    outputs["LayerCheckPolicyArn"] = "arn:aws:iam::123456789012:policy/s-LayerCheckPolicy-X"
    target = doctor_module.Target("stack s", outputs, PREFIX, "", "", lambda _: _Denied(), "", "", "", deployed=True)

    check = doctor_module.check_layer(target)

    assert check.problem == "function f cannot be read: AccessDeniedException: not authorized"
    assert check.todo == (
        "use credentials that may lambda:GetFunctionConfiguration on the stack's functions (the stack's operator"
        " policy arn:aws:iam::123456789012:policy/s-LayerCheckPolicy-X grants it)"
    )


def test_the_release_the_layer_must_hold_is_the_one_the_tests_run() -> None:
    from importlib.metadata import version

    assert doctor_module.pinned_powertools() == version("aws-lambda-powertools")


def test_a_stack_that_does_not_exist_exits_2(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # AWS_REGION alone names the region, as for the AWS CLI

    status = doctor_module.main(["--stack", "no-such-stack"])

    assert status == 2
    assert capsys.readouterr() == (
        "",
        "error: no stack no-such-stack in us-east-1: check --stack, AWS_REGION and AWS_PROFILE\n",
    )


def test_without_a_region_a_stack_cannot_be_found_and_it_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))

    status = doctor_module.main(["--stack", STACK])

    assert status == 2
    assert capsys.readouterr().err.startswith("error: no AWS region: set AWS_REGION")


# --- usage, and what is never printed


@pytest.mark.parametrize("argv", [[], ["--local", "--stack", STACK], ["--stack"], ["--region", "eu-west-1"]])
def test_usage_errors_exit_2_with_the_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status = doctor_module.main(argv)

    assert status == 2
    assert "usage: scripts/doctor" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor_module.main(["--help"]) == 0
    assert "--stack NAME" in capsys.readouterr().out


def test_it_runs_as_a_module_with_handler_off_the_path() -> None:
    # As scripts/doctor runs it (the wrapper is not run here: it may rebuild .venv): no pytest pythonpath.
    result = subprocess.run(  # noqa: S603 - this interpreter, our own module
        [sys.executable, "-m", "scripts.doctor"],
        cwd=ROOT,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "one of the arguments --stack --local is required" in result.stderr


class _Denied:
    """A boto3 client of an operator whose credentials may not read Parameter Store or the table."""

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        def refuse(**_: Any) -> Any:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}
            raise ClientError(error, operation)

        return refuse


def test_credentials_that_may_not_read_fail_each_check_with_what_is_missing_and_no_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}/pagerduty"
    closed.server_close()
    outputs = {"WebhookUrl": url, "LedgerTableName": "ledger", "FunctionName": "f", "FollowUpFunctionName": "g"}
    outputs["LedgerOperatorPolicyArn"] = "arn:aws:iam::123456789012:policy/s-LedgerOperatorPolicy-X"
    target = doctor_module.Target(
        "stack s (us-east-1, UPDATE_COMPLETE)",
        outputs,
        PREFIX,
        "",
        "",
        lambda _: _Denied(),
        " --region us-east-1",
        "",
        "",
    )
    printed: list[str] = []

    status = doctor_module.run(target, printed.append)

    assert status == 1
    assert [line for line in printed if line.startswith("✗")] == [
        f"✗ Parameter Store {PREFIX}/*: cannot be read: AccessDeniedException: not authorized",
        "✗ Devin: not checked: Parameter Store cannot be read",
        "✗ PagerDuty: not checked: Parameter Store cannot be read",
        "✗ ledger table ledger: cannot be described: AccessDeniedException: not authorized",
        f"✗ webhook {url}, signed: not checked: no secret in Parameter Store to sign with",
        f"✗ webhook {url}: cannot reach {url}: Connection refused",
    ]
    assert printed[2] == (
        f"  → use credentials that may ssm:GetParameters on {PREFIX}/* and kms:Decrypt with its key (the stack's"
        " operator policy arn:aws:iam::123456789012:policy/s-LedgerOperatorPolicy-X grants it)"
    )
    assert printed[-1] == "7 checks, 6 failed"


def test_a_secret_in_a_line_is_printed_as_stars_each_line_of_it_too() -> None:
    stored = doctor_module.Stored(
        {"pagerduty-signing-secret": "SecureString", "devin-org-id": "String", "routing": "SecureString"},
        {"pagerduty-signing-secret": "new-secret\nold-secret\n", "devin-org-id": "org-1", "routing": "{}"},
    )

    printed = doctor_module._scrub("✗ x: new-secret, old-secret, {} and org-1", stored.secrets())

    assert printed == "✗ x: ****, ****, **** and org-1"  # a non-secret stored as a SecureString is scrubbed too
