"""Every command the README shows is exercised by a test, in the order the README shows it, from a fresh clone.

The README's commands are the lines of its fenced shell blocks (bash, sh, shell), a line that ends in `\\` joined
with the next, a trailing `# comment` kept apart: after a `local.send` it is the answer the README promises, which
is checked. Each command is either run here, in README order, in a fresh clone-like copy of the repository
(tests/support/fresh_clone.py), or mapped to the named test that runs it, with why it is not run here (COVERAGE).
A command that no entry covers fails `test_every_readme_command_is_exercised`; so does an entry that covers nothing,
and a mapping to a test that does not exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.fresh_clone import fresh_clone

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_FENCE = re.compile(r"^\s*```\s*(\w*)\s*$")
SHELLS = {"bash", "sh", "shell"}
# How long a command may take here: the slowest is a stack's start on a busy two-core machine.
TIMEOUT = 90.0

THIS = "tests/test_readme_commands.py"
TRY_IT = f"{THIS}::test_the_try_it_commands_work_from_a_fresh_clone_in_the_order_shown"
PARAMETERS = f"{THIS}::test_the_parameter_store_commands_store_what_the_function_and_the_doctor_read"
REHEARSAL = (
    "tests/test_rehearse_deploy.py::test_the_rehearsal_passes_on_the_repository_and_ends_with_what_it_cannot_prove"
)


@dataclass(frozen=True)
class Cover:
    pattern: str  # the whole command, as a regular expression
    where: str  # the test that runs it: "tests/FILE.py::NAME", or a test module, or CI's entry point
    how: str  # how it is run, and why not here when it is not


COVERAGE = (
    Cover(
        r"scripts/check-postmortem tests/samples/postmortem-good\.md"
        r" --result tests/samples/postmortem-good\.result\.json",
        "tests/test_check_postmortem.py::test_the_readme_command_grades_the_good_sample_nine_of_nine",
        "run as written, with bash, from the repository",
    ),
    Cover(
        r"scripts/demo",
        "tests/test_demo.py::demo",
        "run as written from a fresh clone-like copy; every test of tests/test_demo.py reads what it printed",
    ),
    Cover(
        r"scripts/local( .+)?",
        TRY_IT,
        "run in the background with --port 0 added, the one change: port 3000 may be taken where tests run; stopped "
        "(Ctrl-C) before the next one starts, as the README says",
    ),
    Cover(
        r"\.venv/bin/python -m local\.send events/payloads/[\w.-]+\.json",
        TRY_IT,
        "run as written, while the stack above serves; the answer its comment promises is checked",
    ),
    Cover(r"scripts/ledger list --local", TRY_IT, "run as written; exit status 0 and the sent incident listed"),
    Cover(r"scripts/doctor --local", TRY_IT, "run as written; exit status 0: every check passed"),
    Cover(
        r"sam local invoke PagerDutyPostmortemFunction -e events/[\w.-]+\.json --env-vars events/env\.local\.json",
        "tests/test_sample_events.py::test_sample_event_gets_its_documented_answer",
        "NOT RUN: needs Docker, which CI has not; ../shared/tools/sam-local-invoke-check ran it with every event by "
        "hand; here that test runs the handler on each event and checks its answer; tests/test_sam_local_files.py "
        "checks the env file against the template",
    ),
    Cover(
        r"scripts/rehearse-deploy",
        REHEARSAL,
        "the rehearsal's own test runs it (sam package, the stack created in moto, the doctor against it), with "
        "--skip-build on the one build its module makes; not again here (about a minute)",
    ),
    Cover(
        r"scripts/build",
        "tests/test_rehearse_deploy.py::build",
        "the rehearsal's module runs it once, with --build-dir a temporary folder (sam build needs PyPI)",
    ),
    Cover(
        r"sam deploy --guided",
        REHEARSAL,
        "NOT RUN: nothing here can deploy (no AWS account); the rehearsal runs what sam deploy runs against moto",
    ),
    Cover(r"PREFIX=/pagerduty-postmortem", PARAMETERS, "run in bash with the put-parameter lines after it"),
    Cover(
        r"aws ssm put-parameter .+",
        PARAMETERS,
        "run as written, in bash, against a moto server (AWS_ENDPOINT_URL): with the AWS CLI where it is installed, "
        "else with a stand-in that takes the options from botocore's service model as the CLI does",
    ),
    Cover(
        r"scripts/doctor --stack pagerduty-postmortem",
        "tests/test_doctor.py::test_a_healthy_deployed_stack_passes_every_check_and_exits_0",
        "against a stack in moto's CloudFormation (no AWS account here); the rehearsal runs it against its moto "
        "stack too",
    ),
    Cover(r"scripts/test", ".ci/run", "CI runs it on a fresh clone: this suite is that run"),
)


@dataclass(frozen=True)
class Command:
    line: int  # where it starts in the README, 1-based
    text: str
    comment: str  # the `# …` after it, without the `#`; "" when none


def _split_comment(line: str) -> tuple[str, str]:
    """A shell line and its trailing comment: a `#` after whitespace, outside quotes."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def readme_commands(text: str | None = None) -> list[Command]:
    """Every command of the README's fenced shell blocks, in order."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    commands: list[Command] = []
    shell, pending, start = None, "", 0
    for number, line in enumerate(lines, 1):
        fence = _FENCE.match(line)
        if fence:
            shell = None if shell is not None else fence.group(1) in SHELLS
            continue
        if not shell:
            continue
        code, comment = _split_comment(line.strip())
        if not code and not pending:
            continue
        if not pending:
            start = number
        if code.endswith("\\"):
            pending += code[:-1].rstrip() + " "
            continue
        commands.append(Command(start, re.sub(r"\s+", " ", pending + code).strip(), comment))
        pending = ""
    return commands


def cover(command: Command) -> list[Cover]:
    return [entry for entry in COVERAGE if re.fullmatch(entry.pattern, command.text)]


def test_the_commands_are_read_as_a_shell_reads_them() -> None:
    text = "\n".join(
        [
            "```bash",
            "scripts/local --param A=1 \\",
            "              --param B='x # y'   # a comment",
            "# a line of comment",
            "",
            "```",
            "```",
            "not a command",
            "```",
        ]
    )

    assert readme_commands(text) == [Command(2, "scripts/local --param A=1 --param B='x # y'", "a comment")]


def test_every_readme_command_is_exercised() -> None:
    commands = readme_commands()
    assert commands, "the README shows no command: is the fence pattern still right?"

    uncovered = [f"README.md:{c.line}: {c.text}" for c in commands if len(cover(c)) != 1]
    unused = [entry.pattern for entry in COVERAGE if not any(re.fullmatch(entry.pattern, c.text) for c in commands)]
    assert uncovered == [], "each README command needs exactly one COVERAGE entry"
    assert unused == [], "a COVERAGE entry that covers no README command is stale"
    for entry in COVERAGE:
        path, _, name = entry.where.partition("::")
        assert (ROOT / path).is_file(), f"{entry.pattern}: no {path}"
        source = (ROOT / path).read_text(encoding="utf-8")
        if name:
            assert re.search(rf"^def {re.escape(name)}\(", source, re.M), f"{entry.pattern}: no {entry.where}"
        elif path == ".ci/run":
            assert re.search(r"^(exec )?scripts/test\b", source, re.M), ".ci/run does not run scripts/test"
        else:
            assert re.search(r"^def test_", source, re.M), f"{path} has no test"


def test_no_command_relies_on_something_a_later_one_creates() -> None:
    commands = [c.text for c in readme_commands()]

    def first(pattern: str) -> int:
        return next(i for i, text in enumerate(commands) if re.match(pattern, text))

    # .venv exists once a script that builds it has run: the demo or the local stack
    assert first(r"\.venv/bin/") > first(r"scripts/(demo|local)\b")
    # --local finds a running stack, and local.send without --url posts to it: one must have been started
    for i, text in enumerate(commands):
        if "--local" in text.split() or (text.startswith(".venv/bin/python -m local.send") and "--url" not in text):
            assert any(c.startswith("scripts/local") for c in commands[:i]), text
    # $PREFIX is set before it is used
    assert first(r"PREFIX=") < first(r".*\$PREFIX")
    # The first thing anyone can run without an account comes before any deploy
    assert first(r"scripts/demo") < first(r"sam deploy")
    assert first(r"scripts/rehearse-deploy") < first(r"sam deploy")


# --- run here


def _bash(command: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        ["bash", "-c", command],  # noqa: S607
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


class _Stack:
    """`scripts/local …` serving in the background, as in a terminal of its own."""

    def __init__(self, command: str, clone: Path) -> None:
        self.command = command
        self.process = subprocess.Popen(  # noqa: S603
            ["bash", "-c", f"{command} --port 0"],  # noqa: S607
            cwd=clone,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.banner = ""
        deadline = time.monotonic() + TIMEOUT
        while "Ctrl-C stops everything" not in self.banner and time.monotonic() < deadline:
            line = self.process.stdout.readline() if self.process.stdout else ""
            if not line:
                break
            self.banner += line
        assert "Ctrl-C stops everything" in self.banner, f"{command}: no banner\n{self.banner}"

    def stop(self) -> int:
        """Ctrl-C, as the README says."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        return self.process.returncode


def _promised(comment: str) -> tuple[int, str] | None:
    """(HTTP status, answer status) of a comment such as "HTTP 200 started", or None."""
    found = re.match(r"HTTP (\d{3}) (\w+)", comment)
    return (int(found.group(1)), found.group(2)) if found else None


@pytest.fixture
def clone() -> Iterator[Path]:
    copy = fresh_clone()
    yield copy
    # No stack of this test may outlive it, nor leave its state behind.
    assert sorted((copy / ".local-stacks").glob("*.json")) == []


@pytest.mark.slow
def test_the_try_it_commands_work_from_a_fresh_clone_in_the_order_shown(clone: Path) -> None:
    ran: list[str] = []
    stack: _Stack | None = None
    try:
        for command in readme_commands():
            if cover(command)[0].where != TRY_IT:
                continue
            if command.text.startswith("scripts/local"):
                if stack is not None:
                    assert stack.stop() == 0, stack.banner
                stack = _Stack(command.text, clone)
                ran.append(command.text)
                continue
            assert stack is not None, f"{command.text}: no stack runs"
            run = _bash(command.text, clone)
            where = f"README.md:{command.line}: {command.text}\n{run.stdout}{run.stderr}"
            assert run.returncode == 0, where
            if promised := _promised(command.comment):
                status, _, body = run.stdout.partition("\n")
                assert (status, json.loads(body)["status"]) == (f"HTTP {promised[0]}", promised[1]), where
            if command.text == "scripts/ledger list --local":
                assert "Q2CKYRLH85UNN4" in run.stdout, where
            ran.append(command.text)
    finally:
        if stack is not None:
            assert stack.stop() == 0, stack.banner

    expected = [c.text for c in readme_commands() if cover(c)[0].where == TRY_IT]
    assert ran == expected


_AWS_STAND_IN = '''#!{python}
"""A stand-in for the AWS CLI's `aws ssm put-parameter`, where the CLI is not installed: its options are the
operation's input members from botocore's service model, named as the CLI names them (Name: --name)."""
import json, os, sys
import boto3, botocore.session
from botocore import xform_name

args = sys.argv[1:]
if args[:2] != ["ssm", "put-parameter"]:
    sys.exit("aws stand-in: only `ssm put-parameter` is here")
shape = botocore.session.get_session().get_service_model("ssm").operation_model("PutParameter").input_shape
options = {{"--" + xform_name(name).replace("_", "-"): (name, member) for name, member in shape.members.items()}}
given, rest = {{}}, args[2:]
while rest:
    option = rest.pop(0)
    negated = option.startswith("--no-") and "--" + option[5:] in options
    name, member = options.get("--" + option[5:] if negated else option, (None, None))
    if name is None:
        print(f"Unknown options: {{option}}", file=sys.stderr)
        sys.exit(252)
    if member.type_name == "boolean":
        given[name] = not negated
        continue
    value = rest.pop(0)
    if value.startswith("file://"):
        with open(value[len("file://"):], encoding="utf-8") as file:
            value = file.read()
    given[name] = int(value) if member.type_name == "integer" else value
missing = [name for name in shape.required_members if name not in given]
if missing:
    print(f"the following arguments are required: {{missing}}", file=sys.stderr)
    sys.exit(252)
answer = boto3.client("ssm", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).put_parameter(**given)
print(json.dumps({{"Version": answer["Version"], "Tier": answer["Tier"]}}))
'''


def _aws_cli_installed() -> bool:
    if shutil.which("aws") is None:
        return False
    with_version = subprocess.run(["aws", "--version"], capture_output=True, timeout=TIMEOUT)  # noqa: S603, S607
    return with_version.returncode == 0


@pytest.mark.slow
def test_the_parameter_store_commands_store_what_the_function_and_the_doctor_read(tmp_path: Path) -> None:
    from bridge.parameters import NAMES, SECRET_NAMES, SIGNING_SECRET, WEBHOOK_SECRET

    from local.aws import LocalAws
    from tests.support.template import load_template

    script = [c.text for c in readme_commands() if cover(c)[0].where == PARAMETERS]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    real_cli = _aws_cli_installed()
    if not real_cli:
        shim = tmp_path / "bin" / "aws"
        shim.parent.mkdir()
        shim.write_text(_AWS_STAND_IN.format(python=sys.executable), encoding="utf-8")
        shim.chmod(0o755)
        env["PATH"] = f"{shim.parent}{os.pathsep}{env['PATH']}"
    aws = LocalAws(port=0).start()
    try:
        env["AWS_ENDPOINT_URL"] = aws.endpoint
        run = _bash("set -euo pipefail\n" + "\n".join(script), tmp_path, env)
        assert run.returncode == 0, f"{'the AWS CLI' if real_cli else 'the stand-in'}: {run.stdout}{run.stderr}"
        stored = aws.client("ssm").get_parameters_by_path(Path="/", Recursive=True, WithDecryption=True)["Parameters"]
    finally:
        aws.stop()

    prefix = load_template()["Parameters"]["SsmParameterPrefix"]["Default"]
    found = {p["Name"].removeprefix(prefix + "/"): p["Type"] for p in stored}
    # Under the prefix the template deploys with, names the function reads, each of the type the doctor wants
    assert all(p["Name"].startswith(prefix + "/") for p in stored)
    assert set(found) <= set(NAMES)
    assert found == {name: "SecureString" if name in SECRET_NAMES else "String" for name in found}
    # And enough for the function to start sessions: the Devin credentials and an authentication secret
    assert {"devin-api-key", "devin-org-id"} <= set(found)
    assert {SIGNING_SECRET, WEBHOOK_SECRET} & set(found)
