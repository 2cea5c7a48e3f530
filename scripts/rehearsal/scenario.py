"""The built functions run on the rehearsal's stack: what a user would notice, and what it proves of the deploy.

Each function that an HTTP API route invokes gets a signed sample delivery (answered `started`) and the same again
(`duplicate`); each function a schedule invokes runs once, and must read the session the delivery started. They run
in a Lambda-like Python 3.13 (lambda_like.py) with the environment the created function configuration holds (its
endpoints pointed at moto and at the Devin and PagerDuty stand-ins), with credentials of their role's actions under
moto's IAM enforcement (iam.py). Then: every variable the code read must be one the template sets; each call is
listed with what proved it allowed; and the cold start of the webhook's build is measured.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.rehearsal import iam, lambda_like
from scripts.rehearsal.layer import load_mapping

if TYPE_CHECKING:
    import zipfile

    from scripts.rehearse_deploy import Report, Stack

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "handler"
SAMPLE = ROOT / "events" / "payloads" / "incident-resolved-p1.json"
# The variables that point a function at the outside world: here at moto and the stand-ins.
ENDPOINTS = {
    "AWS_ENDPOINT_URL": "moto",
    "DEVIN_API_BASE_URL": "the Devin stand-in",
    "PAGERDUTY_API_BASE_URL": "the PagerDuty stand-in",
}
# What the code reads that the template leaves unset on purpose, and why. A name the code no longer reads fails the
# rehearsal, so that the list cannot hide a variable.
UNSET_ON_PURPOSE = {
    "DEVIN_SETTLE_SECONDS": "a knob for the local storm (bridge/config.py); 60 s suits Devin",
    "POWERTOOLS_TRACE_DISABLED": "Powertools' own switch, for tests; the template's TRACING is the deploy's",
}
# The goals of issue 19 for the webhook's cold start, as times a bare `import boto3`: tracing on, and off.
COLD_START_GOALS = {"Active": 1.5, "PassThrough": 1.3}
COLD_START_ROUNDS = 5


@dataclass(frozen=True)
class Function:
    """One function of the stack as created, and how the template says it is invoked."""

    logical: str
    config: dict[str, Any]  # GetFunctionConfiguration's answer
    role: str  # its role's name
    events: tuple[dict[str, Any], ...]  # the template's Events entries ({"Type", "Properties"})

    def invoked_by(self, kind: str) -> list[dict[str, Any]]:
        return [event.get("Properties") or {} for event in self.events if event.get("Type") == kind]


def _functions(stack: Stack, source: Mapping[str, Any]) -> list[Function]:
    lambda_, found = stack.clients("lambda"), []
    for name, resource in stack.template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        config = lambda_.get_function_configuration(FunctionName=stack.physical[name])
        events = ((source["Resources"].get(name) or {}).get("Properties") or {}).get("Events") or {}
        found.append(Function(name, config, str(config["Role"]).rsplit("/", 1)[-1], tuple(events.values())))
    return found


@dataclass(frozen=True)
class Container:
    """Where one function runs: its code unpacked, the environment Lambda would give it, the role copy it runs as."""

    task: Path
    environ: dict[str, str]
    role: str


def _delivery(route: Mapping[str, Any], secret: str) -> tuple[dict[str, Any], str]:
    """A signed sample delivery on `route` as API Gateway hands it to the function, and its incident's id."""
    from local.apigateway import HttpRequest, Route, build_event
    from local.send import signature_header

    payload = json.loads(SAMPLE.read_text(encoding="utf-8"))
    # Dated now: the stack's MaxEventAgeHours would ignore the sample's own date.
    payload["event"]["occurred_at"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = json.dumps(payload).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", "PagerDuty-Webhook/V3.0"),
        ("X-Webhook-Id", str(uuid.uuid4())),
        ("X-PagerDuty-Signature", signature_header(body, [secret])),
    ]
    method, path = str(route.get("Method", "POST")).upper(), str(route.get("Path", "/"))
    request = HttpRequest(method, path, headers, body, source_ip="44.242.69.192", scheme="https", port=443)
    return build_event(request, Route(method, path)), str(payload["event"]["data"]["id"])


def _scheduled(stack: Stack) -> dict[str, Any]:
    """The event EventBridge sends a scheduled rule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": stack.account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": stack.region,
        "resources": [],
        "detail": {},
    }


def _errors(log: str) -> str:
    """The errors a run logged, one line each: the function's own (Powertools' JSON lines) and the interpreter's."""
    found = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            if entry.get("level") in ("ERROR", "CRITICAL"):
                cause = str(entry.get("exception") or "").strip().splitlines()
                found.append(f"{entry.get('message')}" + (f": {cause[-1]}" if cause else ""))
        elif re.match(r"^[A-Za-z_.]*(Error|Exception): ", line):
            found.append(line.strip())
    return "; its log: " + " | ".join(dict.fromkeys(found)) if found else ""


def _answer(run: lambda_like.Run, index: int) -> tuple[int | None, dict[str, Any], str]:
    """(HTTP status, JSON body, how to show it) of one answer of a run."""
    if index >= len(run.answers):
        return None, {}, "no answer"
    if "error" in run.answers[index]:
        return None, {}, f"the function raised {run.answers[index]['error']}"
    result = run.answers[index]["result"]
    if not isinstance(result, dict):
        return None, {}, json.dumps(result)[:300]
    try:
        body = json.loads(result.get("body") or "{}")
    except ValueError:
        body = {}
    return result.get("statusCode"), body if isinstance(body, dict) else {}, f"{result.get('statusCode')} {body}"


def _expect(report: Report, held: bool, what: str, good: str, bad: str) -> bool:
    """One check: `what` followed by what held, or by what went wrong instead."""
    if held:
        report.ok(f"{what}: {good}")
    else:
        report.fail(f"{what}: {bad}")
    return held


@dataclass
class Scene:
    """What the run needs on the rehearsal's side."""

    stack: Stack
    report: Report
    package: Callable[[str], zipfile.ZipFile]
    scratch: Path
    secrets: Mapping[str, tuple[str, str]]  # the parameters seeded: {name: (type, value)}
    env: Mapping[str, str]  # the rehearsal's own environment for the tools it runs (moto's endpoint)

    @property
    def prefix(self) -> str:
        return "/" + self.stack.parameters["SsmParameterPrefix"].strip("/")

    def parameter_arn(self, name: str) -> str:
        return f"arn:aws:ssm:{self.stack.region}:{self.stack.account}:parameter{self.prefix}/{name}"


def run_functions(scene: Scene, source: Mapping[str, Any]) -> None:
    """Seed what both functions need, run them, and check what a user would notice."""
    from local.devin_standin import DevinStandIn
    from local.pagerduty_standin import PagerDutyStandIn

    stack, report = scene.stack, scene.report
    lambda_ = lambda_like.runtime(load_mapping().release, report.write)
    functions = _functions(stack, source)
    kinds = {event.get("Type") for function in functions for event in function.events}
    for kind in sorted(kinds - {"HttpApi", "Schedule"}, key=str):
        report.fail(
            f"a function has a {kind} event, which the rehearsal cannot send: teach scripts/rehearsal/scenario.py"
        )
    ssm = stack.clients("ssm")
    for name, (kind, value) in scene.secrets.items():
        ssm.put_parameter(Name=f"{scene.prefix}/{name}", Type=kind, Value=value, Overwrite=True)
    secret = {name: value for name, (_, value) in scene.secrets.items()}
    with (
        DevinStandIn(api_key=secret["devin-api-key"], org_id=secret["devin-org-id"]) as devin,
        PagerDutyStandIn(serve_samples=True) as pagerduty,
    ):
        endpoints = {"AWS_ENDPOINT_URL": scene.env["AWS_ENDPOINT_URL"], "DEVIN_API_BASE_URL": devin.base_url}
        endpoints["PAGERDUTY_API_BASE_URL"] = pagerduty.base_url
        containers = {f.logical: _container(scene, lambda_, f, endpoints) for f in functions}
        report.note(
            f"the stack's function configurations, run with {', '.join(f'{k} at {v}' for k, v in ENDPOINTS.items())};"
            f" seeded {', '.join(scene.secrets)}"
        )
        runs: dict[str, lambda_like.Run] = {}
        incident = ""
        with iam.enforced() as calls:
            for function in functions:
                for route in function.invoked_by("HttpApi"):
                    event, incident = _delivery(route, secret["pagerduty-signing-secret"])
                    runs[function.logical] = _invoke(lambda_, function, containers[function.logical], [event, event])
            for function in functions:
                if function.invoked_by("Schedule"):
                    runs[function.logical] = _invoke(
                        lambda_, function, containers[function.logical], [_scheduled(stack)]
                    )
        session = _check_runs(scene, functions, runs, devin, pagerduty, incident)
        check_environment(functions, runs, {name: c.task for name, c in containers.items()}, report)
        _report_proofs(scene, functions, calls, {name: c.role for name, c in containers.items()})
        if session:
            _check_ledger_tool(scene, incident, session)
        webhook = next((f for f in functions if f.invoked_by("HttpApi")), None)
        if webhook is not None and not runs[webhook.logical].init_error:
            _cold_start(report, lambda_, containers[webhook.logical], webhook)


def _container(
    scene: Scene, lambda_: lambda_like.Runtime, function: Function, endpoints: Mapping[str, str]
) -> Container:
    from bench.lambda_env import sandbox_environ

    stack, config = scene.stack, function.config
    task = scene.scratch / f"task-{function.logical}"
    swapped = lambda_like.unpack(scene.package(function.logical), task)
    if swapped:
        scene.report.note(
            f"{function.logical}: compiled wheels built for this machine, not what ships: {', '.join(swapped)}"
        )
    variables = {k: str(v) for k, v in ((config.get("Environment") or {}).get("Variables") or {}).items()}
    missing = [name for name in ENDPOINTS if name not in variables]
    if missing:
        scene.report.fail(f"{function.logical}'s environment has no {', '.join(missing)} to point at the rehearsal")
    copy, credentials = iam.assume_actions_only(
        stack.clients("iam"), stack.clients("sts"), function.role, str(config["FunctionName"]), stack.account
    )
    sandbox = sandbox_environ(
        str(task),
        function=str(config["FunctionName"]),
        handler=str(config.get("Handler")),
        memory_mb=int(config.get("MemorySize") or 128),
        log_group=str((config.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{config['FunctionName']}"),
        region=stack.region,
    )
    return Container(task, {**sandbox, **variables, **endpoints, **credentials}, copy)


def _invoke(
    lambda_: lambda_like.Runtime, function: Function, container: Container, events: list[Any]
) -> lambda_like.Run:
    config = function.config
    return lambda_like.invoke(
        lambda_,
        container.task,
        container.environ,
        str(config.get("Handler")),
        events,
        timeout_ms=int(config.get("Timeout") or 3) * 1000,
        arn=str(config["FunctionArn"]),
    )


def _check_runs(
    scene: Scene,
    functions: list[Function],
    runs: Mapping[str, lambda_like.Run],
    devin: Any,
    pagerduty: Any,
    incident: str,
) -> str:
    """The answers, the ledger, what Devin and PagerDuty received; returns the session started ("" if none)."""
    report, stack = scene.report, scene.stack
    session = ""
    # The deliveries first: the scheduled run must have read the session they started.
    for function in sorted(functions, key=lambda f: not f.invoked_by("HttpApi")):
        run = runs.get(function.logical)
        if run is None:
            continue
        name = f"{function.logical} ({function.config.get('Handler')})"
        log = _errors(run.log)
        if run.init_error:
            report.fail(f"{name} cannot start: {run.init_error}{log}")
            continue
        if function.invoked_by("HttpApi"):
            status, body, shown = _answer(run, 0)
            started = (status, body.get("status")) == (200, "started") and bool(body.get("session_id"))
            session = str(body.get("session_id")) if started else ""
            _expect(
                report,
                started,
                f"{name}, a signed delivery of incident {incident}",
                f"200 started, session {session}",
                f"answered {shown}, not 200 started{log}",
            )
            status, body, shown = _answer(run, 1)
            _expect(
                report,
                started and (status, body.get("status"), body.get("session_id")) == (200, "duplicate", session),
                f"{name}, the same delivery again",
                "200 duplicate, the same session",
                f"answered {shown}, not 200 duplicate with the first one's session{log}",
            )
        if function.invoked_by("Schedule"):
            _, result, shown = _answer(run, 0)
            result = (run.answers[0].get("result") if run.answers else None) or {}
            read = [r for r in devin.requests if r.method == "GET" and session and r.path.endswith(f"/{session}")]
            ran = isinstance(result, dict) and result.get("off") is False and result.get("failed") == 0
            _expect(
                report,
                ran and (not session or (result.get("followed") == 1 and bool(read))),
                f"{name}, one scheduled run",
                f"followed the open session and read {session} from Devin"
                if session
                else "ran, with no session to follow (no delivery started one)",
                f"answered {shown}; Devin got {len(read)} read(s) of {session or 'no session'}{log}",
            )
    if session:
        item = (
            stack.clients("dynamodb")
            .get_item(TableName=stack.physical["LedgerTable"], Key={"incident_id": {"S": incident}})
            .get("Item", {})
        )
        notes, creates = pagerduty.notes_posted(incident), devin.create_requests()
        _expect(
            report,
            item.get("session_id", {}).get("S") == session and len(creates) == 1 and len(notes) == 1,
            f"what {incident} left behind",
            f"the ledger's item holds {session}; Devin got one create, PagerDuty one note on the incident",
            f"ledger item {item.get('session_id')}, Devin creates {len(creates)}, notes {len(notes)}",
        )
    return session


def check_environment(
    functions: list[Function], runs: Mapping[str, lambda_like.Run], tasks: Mapping[str, Path], report: Report
) -> None:
    """Every variable the functions' own code read is set by the template (or unset on purpose), and every variable
    the template sets was read by something that ran: a default in the code cannot hide a variable the template
    lost, nor a renamed one linger. A variable the template sets for one function only (a setting of its own) may
    be read by the other's code too, which then runs with its default: that is said, not failed."""
    code = {
        path.name for path in HANDLER.iterdir() if path.name != "requirements.txt" and not path.name.startswith(".")
    }
    sets = {
        f.logical: set((f.config.get("Environment") or {}).get("Variables") or {})
        for f in functions
        if f.logical in runs and not runs[f.logical].init_error
    }
    declared = set().union(*sets.values()) if sets else set()
    read_by_code: dict[str, set[str]] = {}
    read_at_all: set[str] = set()
    problems, notes = [], []
    for function, variables in sets.items():
        for name, file in runs[function].reads:
            read_at_all.add(name)
            try:
                relative = Path(file).relative_to(tasks[function])
            except ValueError:
                continue
            if relative.parts[0] not in code:
                continue
            read_by_code.setdefault(name, set()).add(str(relative))
            if name in variables or name in UNSET_ON_PURPOSE or name.startswith(("AWS_", "_", "LAMBDA_")):
                continue
            if name in declared:
                others = ", ".join(sorted(f for f, names in sets.items() if name in names))
                notes.append(f"{name} (read by {relative} in {function}, set for {others} only)")
            else:
                problems.append(
                    f"{name} is read by {relative} but the template does not set it for {function}: a default"
                    " would hide it (add it to the function's Environment in template.yaml)"
                )
    problems += [
        f"{name} is set by the template but nothing the functions ran read it: renamed? (template.yaml)"
        for name in sorted(declared - read_at_all)
    ]
    problems += [
        f"{name} is listed as unset on purpose but the code no longer reads it: remove it from UNSET_ON_PURPOSE"
        for name in sorted(set(UNSET_ON_PURPOSE) - set(read_by_code))
    ]
    if not declared:
        return
    files = sorted({file for found in read_by_code.values() for file in found})
    _expect(
        report,
        not problems,
        "the functions' environment",
        f"each of the {len(read_by_code)} variables their code read ({', '.join(files)}) is set by the template,"
        f" and each of the {len(declared)} it sets was read",
        "; ".join(dict.fromkeys(problems)),
    )
    report.note("read but left unset on purpose: " + "; ".join(f"{k} ({v})" for k, v in UNSET_ON_PURPOSE.items()))
    if notes:
        report.note("a function's own setting, read by the other with its default: " + "; ".join(dict.fromkeys(notes)))


def _report_proofs(scene: Scene, functions: list[Function], calls: list[iam.Call], copies: Mapping[str, str]) -> None:
    """Which proof covers which call: moto ran the action, reading the role covers its resource and conditions."""
    report, stack = scene.report, scene.stack
    client = stack.clients("iam")
    report.section(
        "IAM: each call the functions made, and what proves their role allows it (moto enforced each role's actions"
        ' as written with every Resource "*"; resources and conditions are read from the role as created)'
    )
    secure = {name for name, (kind, _) in scene.secrets.items() if kind == "SecureString"}
    for function in functions:
        statements = iam.role_statements(client, function.role)
        mine = [call for call in calls if call.role == copies[function.logical]]
        for call in sorted(set(mine), key=lambda c: (c.allowed, c.action, c.resources)):
            if not call.allowed:
                report.fail(
                    f"{function.logical}: moto refused {call.action} to its role {function.role}: no statement allows"
                    " that action (add it to the function's Policies in template.yaml)"
                )
                continue
            if not call.resources:
                report.fail(f"{function.logical}: {call.action} ran, but the rehearsal cannot tell its resource")
                continue
            covered = {r: iam.allowance(statements, call.action, r) for r in call.resources}
            uncovered = [r for r, found in covered.items() if found.denied or not found.statements]
            sids = sorted({sid for found in covered.values() for sid in found.statements})
            _expect(
                report,
                not uncovered,
                f"{function.logical} {call.action} on {_short(call.resources)}",
                f"action run (moto), resource read ({', '.join(sids)})",
                f"moto allowed the action, but no statement of {function.role} allows it on {_short(tuple(uncovered))}",
            )
        decrypted = sorted({n for c in mine if c.allowed for n in c.decrypted if n.rsplit("/", 1)[-1] in secure})
        if decrypted:
            sids, problems = iam.decrypt_problems(
                statements,
                [scene.parameter_arn(n.rsplit("/", 1)[-1]) for n in decrypted],
                stack.region,
                stack.account,
                function.logical,
            )
            _expect(
                report,
                not problems,
                f"{function.logical} kms:Decrypt by SSM for {', '.join(decrypted)}",
                f"read only, as moto's SSM decrypts without KMS ({', '.join(sids)}: through"
                f" ssm.{stack.region}.amazonaws.com, for those parameters)",
                "; ".join(problems),
            )
        ran = {call.action.lower() for call in mine if call.allowed} | ({"kms:decrypt"} if decrypted else set())
        idle = [
            f"{action} ({statement.get('Sid', '?')})"
            for statement in statements
            for action in iam.as_list(statement.get("Action"))
            if str(action).lower() not in ran
        ]
        if idle:
            report.note(f"granted to {function.logical}, not called in this run: {', '.join(idle)}")


def _short(arns: tuple[str, ...]) -> str:
    """ARNs that differ only in their last part, written once: ...:parameter/prefix/{a, b}."""
    heads = {arn.rpartition("/")[0] for arn in arns}
    if len(arns) < 2 or len(heads) != 1:
        return ", ".join(arns)
    return f"{heads.pop()}/{{{', '.join(arn.rpartition('/')[2] for arn in arns)}}}"


def _check_ledger_tool(scene: Scene, incident: str, session: str) -> None:
    """scripts/ledger on the stack, as an operator runs it: the by-status index lists the incident, show reads it."""
    listed = subprocess.run(  # noqa: S603 - this interpreter, our own module
        [sys.executable, "-m", "scripts.ledger_cli", "list", "--stack", scene.stack.name, "--json"],
        cwd=ROOT,
        env={**scene.env, "AWS_REGION": scene.stack.region, "AWS_DEFAULT_REGION": scene.stack.region},
        capture_output=True,
        text=True,
        timeout=lambda_like.TIMEOUT_SECONDS,
        check=False,
    )
    try:
        items = json.loads(listed.stdout)
    except ValueError:
        items = []
    found = [item for item in items if isinstance(item, dict) and item.get("incident_id") == incident]
    scene.report.check(
        listed.returncode == 0 and bool(found) and found[0].get("session_id") == session,
        f"scripts/ledger list --stack {scene.stack.name}: {incident} and its session, from the table's status index",
        f"exit status {listed.returncode}: {listed.stdout.strip()[-300:]} {listed.stderr.strip()[-300:]}",
    )


def _cold_start(report: Report, lambda_: lambda_like.Runtime, container: Container, function: Function) -> None:
    """Importing the webhook's Handler module in the Lambda-like interpreter, tracing on and off, against a bare
    `import boto3` in the same interpreter; fresh interpreters, the three alternately, median of a few rounds. The
    CPU time's ratio is shown too: on a shared machine it moves less than the wall clock's."""
    module = str(function.config.get("Handler")).rpartition(".")[0]
    times: dict[str, list[tuple[float, float]]] = {"boto3": [], **{setting: [] for setting in COLD_START_GOALS}}
    for _ in range(COLD_START_ROUNDS):
        times["boto3"].append(lambda_like.import_seconds(lambda_, container.task, container.environ, "boto3"))
        for setting in COLD_START_GOALS:
            environ = {**container.environ, "TRACING": setting}
            times[setting].append(lambda_like.import_seconds(lambda_, container.task, environ, "app"))

    def median(name: str, which: int) -> float:
        return statistics.median(sample[which] for sample in times[name])

    parts = []
    for setting, goal in COLD_START_GOALS.items():
        ratio = median(setting, 0) / median("boto3", 0)
        rounds = sorted(app[0] / boto3[0] for app, boto3 in zip(times[setting], times["boto3"], strict=True))
        verdict = "met" if ratio <= goal else "MISSED"
        parts.append(
            f"tracing {setting}: {median(setting, 0) * 1000:.0f} ms, {ratio:.2f}× (each round {rounds[0]:.2f}-"
            f"{rounds[-1]:.2f}×; CPU time {median(setting, 1) / median('boto3', 1):.2f}×; goal ≤ {goal}×: {verdict})"
        )
    report.section(f"cold start of {function.logical}'s build (a figure, not a check)")
    report.note(
        f"import {module}, against a bare import boto3 ({median('boto3', 0) * 1000:.0f} ms, boto3 {lambda_.boto3}) in"
        f" the same Lambda-like interpreter, median of {COLD_START_ROUNDS} fresh interpreters each: {'; '.join(parts)}"
    )
    report.note("on shared cores one round can be off by a third: docs/performance.md has 21 rounds' figures")
