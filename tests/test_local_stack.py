"""The local stack: real sockets on 127.0.0.1, the real handler in worker processes, moto, the Devin stand-in.

Most tests share one stack (starting one takes about two seconds) and use an incident id of their own, so
that they cannot see each other's sessions; the lifecycle tests start their own.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from bridge.devin.routing import RoutingError, check_template, parse_routing

from local.apigateway import Gateway, HttpRequest, Route, response_from_result
from local.pagerduty_standin import PagerDutyStandIn, sample_record
from local.runtime import Invocation
from local.send import send
from local.stack import (
    STANDIN_PAGERDUTY_API_KEY,
    STANDIN_PAGERDUTY_FROM_EMAIL,
    STATE_DIR,
    LocalStack,
    StackError,
    _suggestion,
    find_stack,
)
from scripts.make_events import PAYLOADS_DIR, TEST_SIGNING_SECRET
from tests.support.events import incident, load_event

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# Every wait in these tests is bounded: a hung stack fails a test instead of hanging the suite.
TIMEOUT = 20.0
PULL_REQUEST = "https://github.com/acme/checkout/pull/412"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_path = tmp_path_factory.mktemp("local-stack") / "function.log"
    with open(log_path, "w", encoding="utf-8") as log, LocalStack(port=0, workers=4, function_log=log) as running:
        yield running


def new_incident() -> tuple[str, bytes]:
    """A qualifying P1 resolve for an incident no other test uses."""
    incident_id = "Q" + uuid.uuid4().hex[:13].upper()
    return incident_id, json.dumps(incident(incident_id)).encode()


def post(url: str, body: bytes, *, secret: str | None = TEST_SIGNING_SECRET, **kwargs: Any) -> tuple[int, dict, dict]:
    status, headers, raw = send(body, url, [secret] if secret else [], timeout=TIMEOUT, **kwargs)
    return status, headers, json.loads(raw)


def raw_request(port: int, data: bytes) -> bytes:
    """Write `data` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def request(port: int, method: str, path: str, body: bytes = b"", headers: list[tuple[str, str]] | None = None):
    """http.client with full control over headers, repeated ones included; returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.putrequest(method, path)
        for name, value in headers or []:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def prompt_data(stack: LocalStack, incident_id: str) -> dict[str, Any]:
    """The JSON data block of the prompt Devin received for the incident."""
    [create] = [
        r.json() for r in stack.devin.create_requests() if f"pagerduty-incident:{incident_id}" in r.json()["tags"]
    ]
    block = create["prompt"].split("<pagerduty-incident>\n", 1)[1].split("\n</pagerduty-incident>", 1)[0]
    return json.loads(block)


def follow_up(stack: LocalStack) -> tuple[int, dict[str, Any]]:
    """Run the scheduled follow-up through the stack's local-only route."""
    status, _, body = request(stack.port, "POST", "/_local/follow-up")
    return status, json.loads(body)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """scripts/local's command with a free port and one worker, run to its end."""
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "local.stack", "--port", "0", "--workers", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


# --- the contract, end to end


def test_a_signed_p1_resolve_starts_a_session_and_devin_receives_the_create(stack: LocalStack) -> None:
    incident_id, body = new_incident()

    status, _, answer = post(stack.url, body)

    assert (status, answer["status"], answer["incident_id"]) == (200, "started", incident_id)
    creates = [
        r.json() for r in stack.devin.create_requests() if f"pagerduty-incident:{incident_id}" in r.json()["tags"]
    ]
    assert len(creates) == 1
    assert incident_id in creates[0]["prompt"]
    assert stack.devin.create_requests()[0].headers["authorization"].startswith("Bearer ")
    [item] = [i for i in stack.ledger_items() if i["incident_id"] == incident_id]
    assert (item["status"], item["session_id"]) == ("started", answer["session_id"])
    # Plain Python values: the number the handler wrote, not a Decimal.
    assert type(item["incident_number"]) is int


def test_a_retried_delivery_is_answered_duplicate_with_the_same_session(stack: LocalStack) -> None:
    _, body = new_incident()
    _, _, first = post(stack.url, body, webhook_id="retry-1")

    status, _, again = post(stack.url, body, webhook_id="retry-1")

    assert (status, again["status"], again["session_id"]) == (200, "duplicate", first["session_id"])


def test_a_burst_of_20_deliveries_of_one_incident_starts_exactly_one_session(stack: LocalStack) -> None:
    incident_id, body = new_incident()
    answers: list[tuple[int, dict, dict]] = []
    start = threading.Barrier(20)

    def deliver() -> None:
        start.wait(TIMEOUT)
        answers.append(post(stack.url, body))

    threads = [threading.Thread(target=deliver, daemon=True) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)

    assert len(answers) == 20
    started = [a for s, _, a in answers if s == 200 and a["status"] == "started"]
    assert len(started) == 1
    for status, headers, answer in answers:
        # Every other delivery was told about the session, or to come back later.
        assert (status == 200 and answer["session_id"] == started[0]["session_id"]) or (
            status == 429 and "retry-after" in headers
        ), (status, answer)
    sessions = [s for s in stack.devin.sessions if f"pagerduty-incident:{incident_id}" in s["tags"]]
    assert len(sessions) == 1
    assert len([i for i in stack.ledger_items() if i["incident_id"] == incident_id]) == 1


# --- what API Gateway does around the function


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/pagerduty"), ("PUT", "/pagerduty"), ("POST", "/"), ("POST", "/pagerduty/"), ("POST", "/other")],
)
def test_other_routes_get_api_gateways_not_found_without_invoking_the_function(
    stack: LocalStack, method: str, path: str
) -> None:
    invoked_before = len(stack.exchanges)

    status, headers, body = request(stack.port, method, path, b"{}", [("Content-Type", "application/json")])

    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    assert headers["Content-Type"] == "application/json"
    assert len(stack.exchanges) == invoked_before


def test_a_method_http_server_does_not_know_still_gets_not_found(stack: LocalStack) -> None:
    status, _, body = request(stack.port, "BREW", "/pagerduty")

    assert (status, json.loads(body)) == (404, {"message": "Not Found"})


@pytest.mark.parametrize(
    ("body", "signed", "expected"),
    [
        (b"\x00\xff\xfe garbage", False, 401),
        (b"\x00\xff\xfe garbage", True, 400),
        (b"", True, 400),
        (b"[1, 2, 3]", True, 400),
        (b'{"event": "not an object"}', True, 400),
        (b"[" * 100_000, True, 400),
    ],
    ids=["unsigned-bytes", "signed-bytes", "signed-empty", "signed-json-array", "signed-no-event-object", "deep"],
)
def test_garbage_bodies_get_the_answers_the_deployed_function_gives(
    stack: LocalStack, body: bytes, signed: bool, expected: int
) -> None:
    status, _, answer = post(stack.url, body, secret=TEST_SIGNING_SECRET if signed else None)

    assert status == expected
    assert set(answer) == {"message"}


def test_a_request_line_that_is_not_http_gets_a_400_and_the_stack_keeps_serving(stack: LocalStack) -> None:
    reply = raw_request(stack.port, b"\x16\x03\x01 not http at all\r\n\r\n")

    assert reply.startswith(b"HTTP/1.1 400 ")
    assert reply.endswith(b'{"message": "Bad Request"}')
    assert post(stack.url, b"{}", secret=None)[0] == 401


def test_a_body_over_api_gateways_10_mb_limit_gets_413(stack: LocalStack) -> None:
    reply = raw_request(stack.port, b"POST /pagerduty HTTP/1.1\r\nHost: x\r\nContent-Length: 10485761\r\n\r\n{")

    assert reply.startswith(b"HTTP/1.1 413 ")


def test_a_binary_content_type_reaches_the_function_base64_encoded_and_still_verifies(stack: LocalStack) -> None:
    incident_id, body = new_incident()

    status, _, answer = post(stack.url, body, headers={"Content-Type": "application/octet-stream"})

    event = stack.exchanges[-1].event
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    assert (status, answer["status"], answer["incident_id"]) == (200, "started", incident_id)


def test_the_event_is_the_one_api_gateway_sends_for_the_same_request(stack: LocalStack) -> None:
    # GIVEN the request PagerDuty made for the committed sample event (what API Gateway turned into that file)
    sample = load_event("resolved-p1-starts-session.json")
    sent_headers = [(name.title(), value) for name, value in sample["headers"].items() if name != "content-length"]

    # WHEN the same request reaches the local front end
    request(stack.port, "POST", "/pagerduty", sample["body"].encode(), sent_headers)
    event = stack.exchanges[-1].event

    # THEN the function gets the same event, except what differs by nature (ids, times, where it runs)
    assert event["body"] == sample["body"]
    assert event["isBase64Encoded"] is sample["isBase64Encoded"]
    for key in ("version", "routeKey", "rawPath", "rawQueryString"):
        assert event[key] == sample[key], key
    assert set(event) == set(sample)
    assert set(event["requestContext"]) == set(sample["requestContext"])
    assert set(event["requestContext"]["http"]) == set(sample["requestContext"]["http"])
    for key in ("method", "path", "protocol", "userAgent"):
        assert event["requestContext"]["http"][key] == sample["requestContext"]["http"][key], key
    assert event["requestContext"]["stage"] == "$default"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    differ_by_nature = {"host", "x-amzn-trace-id", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"}
    for name, value in sample["headers"].items():
        if name not in differ_by_nature:
            assert event["headers"][name] == value, name
    assert re.fullmatch(r"[A-Za-z0-9]{14}=", event["requestContext"]["requestId"])
    assert abs(event["requestContext"]["timeEpoch"] / 1000 - time.time()) < 60
    parsed = APIGatewayProxyEventV2(event)
    assert parsed.decoded_body == sample["body"]
    assert parsed.headers.get("X-PagerDuty-Signature") == sample["headers"]["x-pagerduty-signature"]
    assert parsed.request_context.http.method == "POST"


def test_repeated_headers_reach_the_function_joined_with_commas(stack: LocalStack) -> None:
    request(stack.port, "POST", "/pagerduty?a=1&a=2&b", b"x", [("X-Repeated", "one"), ("x-repeated", "two")])
    event = stack.exchanges[-1].event

    assert event["headers"]["x-repeated"] == "one,two"
    assert event["rawQueryString"] == "a=1&a=2&b"
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}


def test_a_cookie_header_becomes_the_events_cookie_list() -> None:
    gateway = Gateway([Route("POST", "/pagerduty")], lambda *_: Invocation(result={}), function_timeout_seconds=25)
    gateway.handle(HttpRequest("POST", "/pagerduty", [("Cookie", "a=1; b=2")], b"", "127.0.0.1"))
    event = gateway.exchanges[-1].event

    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]


@pytest.mark.parametrize(
    ("invocation", "status", "message"),
    [
        (Invocation(error="Task timed out after 25.00 seconds"), 500, "Internal Server Error"),
        (Invocation(error="Runtime exited"), 500, "Internal Server Error"),
        (Invocation(throttled=True), 503, "Service Unavailable"),
        (Invocation(result={"statusCode": "not a number"}), 500, "Internal Server Error"),
    ],
    ids=["timeout", "crash", "no-container-free", "malformed-answer"],
)
def test_a_failed_invocation_gets_api_gateways_own_answer(invocation: Invocation, status: int, message: str) -> None:
    gateway = Gateway([Route("POST", "/pagerduty")], lambda *_: invocation, function_timeout_seconds=25)

    response = gateway.handle(HttpRequest("POST", "/pagerduty", [], b"{}", "127.0.0.1"))

    assert (response.status, json.loads(response.body)) == (status, {"message": message})


def test_a_base64_answer_from_the_function_is_decoded_for_the_client() -> None:
    result = {"statusCode": 200, "body": base64.b64encode(b"\x89PNG").decode(), "isBase64Encoded": True}

    response = response_from_result(result)

    assert (response.status, response.body) == (200, b"\x89PNG")


# --- the PagerDuty feature, and the template's parameters


def test_with_pagerduty_the_stack_stores_the_key_and_the_from_email_and_points_both_functions_at_the_standin(
    stack: LocalStack,
) -> None:
    names = [f"{stack.parameter_prefix}/pagerduty-api-key", f"{stack.parameter_prefix}/pagerduty-from-email"]

    stored = stack.aws_client("ssm").get_parameters(Names=names, WithDecryption=True)["Parameters"]

    assert {p["Name"]: (p["Type"], p["Value"]) for p in stored} == {
        names[0]: ("SecureString", STANDIN_PAGERDUTY_API_KEY),
        names[1]: ("String", STANDIN_PAGERDUTY_FROM_EMAIL),
    }
    assert stack.function_env["PAGERDUTY_API_BASE_URL"] == stack.pagerduty.base_url
    assert stack.follow_up_env["PAGERDUTY_API_BASE_URL"] == stack.pagerduty.base_url


def test_with_pagerduty_a_started_incident_has_its_timeline_in_the_prompt_and_one_note_back(stack: LocalStack) -> None:
    incident_id, body = new_incident()

    _, _, answer = post(stack.url, body)

    assert answer["status"] == "started"
    timeline = prompt_data(stack, incident_id)["timeline"]
    assert len(timeline) == len(sample_record(incident_id)["log_entries"])
    assert timeline[0]["kind"] == "trigger" and timeline[-1]["kind"] == "resolve"
    [note] = stack.pagerduty.notes_posted(incident_id)
    assert answer["session_url"] in note["content"]


def test_the_follow_up_route_posts_a_pull_requests_link_once_over_two_runs(stack: LocalStack) -> None:
    incident_id, body = new_incident()
    _, _, answer = post(stack.url, body)
    stack.devin.open_pull_request(answer["session_id"], PULL_REQUEST)

    runs = [follow_up(stack), follow_up(stack)]

    assert [status for status, _ in runs] == [200, 200]
    assert all(report["followed"] >= 1 for _, report in runs)
    posted = [n["content"] for n in stack.pagerduty.notes_posted(incident_id) if PULL_REQUEST in n["content"]]
    assert len(posted) == 1
    [item] = [i for i in stack.ledger_items() if i["incident_id"] == incident_id]
    assert item["pull_request_urls"] == [PULL_REQUEST]


def test_without_pagerduty_no_function_asks_pagerduty_anything_and_the_prompt_has_no_timeline() -> None:
    # GIVEN a stack without the feature, whose functions are nonetheless pointed at a PagerDuty that listens
    with (
        PagerDutyStandIn(serve_samples=True) as listening_pagerduty,
        LocalStack(
            port=0,
            workers=1,
            pagerduty=False,
            env={"PAGERDUTY_API_BASE_URL": listening_pagerduty.base_url},
            function_log=subprocess.DEVNULL,
        ) as stack,
    ):
        incident_id, body = new_incident()
        # WHEN an incident starts a session, the session opens a pull request and the follow-up runs
        _, _, answer = post(stack.url, body)
        stack.devin.open_pull_request(answer["session_id"], PULL_REQUEST)
        status, report = follow_up(stack)
        stored = stack.aws_client("ssm").get_parameters_by_path(Path=stack.parameter_prefix)["Parameters"]
        data = prompt_data(stack, incident_id)

    # THEN the session starts as it always did, with PagerDuty asked nothing and only what was stored before
    assert answer["status"] == "started"
    assert "timeline" not in data
    assert (status, report["followed"], report["off"]) == (200, 0, True)
    assert listening_pagerduty.requests == []
    assert stack.pagerduty is None
    assert {p["Name"].rsplit("/", 1)[-1] for p in stored} == {
        "devin-api-key",
        "devin-org-id",
        "pagerduty-signing-secret",
    }


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path, Path]]:
    """A stack deployed with Urgencies='*', the example routing document and a prompt template."""
    routing = ROOT / "docs/routing.example.json"
    template = tmp_path_factory.mktemp("prompt") / "prompt.txt"
    template.write_text("Write the postmortem of ${service} incident ${incident_number} under ${postmortem_path}.\n")
    with LocalStack(
        port=0,
        workers=1,
        parameters={"Urgencies": "*"},
        routing=routing,
        prompt_template=template,
        function_log=subprocess.DEVNULL,
    ) as running:
        yield running, routing, template


def test_param_urgencies_any_makes_a_low_urgency_resolve_start_a_session(
    configured: tuple[LocalStack, Path, Path],
) -> None:
    stack, _, _ = configured

    status, _, answer = post(stack.url, (PAYLOADS_DIR / "incident-resolved-low-urgency.json").read_bytes())

    assert (status, answer["status"]) == (200, "started")
    assert stack.function_env["URGENCIES"] == stack.follow_up_env["URGENCIES"] == "*"


def test_the_routing_document_and_prompt_template_files_go_into_parameter_store(
    configured: tuple[LocalStack, Path, Path],
) -> None:
    stack, routing, template = configured
    ssm = stack.aws_client("ssm")

    stored = {
        name: ssm.get_parameter(Name=f"{stack.parameter_prefix}/{name}")["Parameter"]["Value"]
        for name in ("routing", "prompt-template")
    }

    assert stored == {
        "routing": routing.read_text(encoding="utf-8"),
        "prompt-template": template.read_text(encoding="utf-8"),
    }


@pytest.mark.parametrize(
    ("param", "named"),
    [("NoSuchParameter=1", "'NoSuchParameter'"), ("PagerDutyReadSeconds=9", "must be at most 4")],
    ids=["unknown-name", "above-max-value"],
)
def test_a_parameter_sam_deploy_would_refuse_is_one_error_line_and_exit_2(param: str, named: str) -> None:
    refused = run_cli("--param", param)

    assert (refused.returncode, refused.stdout) == (2, "")
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: ") and named in line


@pytest.mark.parametrize(
    ("option", "text", "check"),
    [
        ("--routing", '{"rules": [{"nme": "payments"}]}', parse_routing),
        ("--prompt-template", "Postmortem of ${servce}", check_template),
    ],
    ids=["routing", "prompt-template"],
)
def test_a_broken_routing_document_or_prompt_template_is_refused_at_start_saying_what_is_wrong(
    tmp_path: Path, option: str, text: str, check: Any
) -> None:
    broken = tmp_path / "broken"
    broken.write_text(text, encoding="utf-8")
    with pytest.raises(RoutingError) as what:
        check(text)

    refused = run_cli(option, str(broken))

    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.splitlines() == [f"error: {option} {broken}: {what.value}"]


# --- the local AWS


def test_local_aws_serves_one_request_at_a_time(stack: LocalStack) -> None:
    # GIVEN a client that has started a request to moto and not finished it
    port = int(stack.aws_endpoint.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as slow:
        slow.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.2)
        # WHEN another call arrives THEN it waits: the server does not run two requests at once
        other = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        with pytest.raises(TimeoutError):
            other.request("GET", "/moto-api/data.json")
            other.getresponse()
        other.close()
    # AND once the first request is over, calls are served again
    assert stack.ledger_items() is not None


def test_concurrent_conditional_writes_to_local_aws_have_exactly_one_winner(stack: LocalStack) -> None:
    clients = [stack.aws_client("dynamodb") for _ in range(16)]
    key = {"incident_id": {"S": f"race-{uuid.uuid4().hex}"}}
    wins: list[int] = []
    start = threading.Barrier(len(clients))

    def claim(client: Any) -> None:
        start.wait(TIMEOUT)
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName=stack.table_name,
                Key=key,
                UpdateExpression="SET claimed = :yes",
                ConditionExpression="attribute_not_exists(incident_id)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )
            wins.append(1)

    threads = [threading.Thread(target=claim, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)

    assert len(wins) == 1


# --- lifecycle


def test_stop_leaves_no_port_listening_and_no_worker_running(tmp_path: Path) -> None:
    stack = LocalStack(port=0, workers=2, function_log=subprocess.DEVNULL).start()
    ports = [stack.port, int(stack.aws_endpoint.rsplit(":", 1)[1]), stack.devin.port, stack.pagerduty.port]
    # What stop() must end: the webhook's workers and the follow-up's.
    workers = [c._process.pid for service in (stack._lambda, stack._follow_up) for c in service._all]  # noqa: SLF001
    assert len(workers) == 3
    assert all(listening(port) for port in ports)

    stack.stop()

    assert not any(listening(port) for port in ports)
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_port_in_use_raises_a_stack_error_and_starts_nothing() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalStack(port=port, workers=1)

        with pytest.raises(StackError, match=f"127.0.0.1:{port} is already in use"):
            stack.start()

    assert stack._aws is None  # noqa: SLF001 - nothing was left running


@pytest.mark.parametrize("option", ["--port", "--aws-port", "--devin-port", "--pagerduty-port"])
def test_a_port_in_use_is_one_clear_error_line(option: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        refused = run_cli(option, str(port))

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"error: 127.0.0.1:{port} is already in use (another local stack?); choose another port with {option}"
    ]


def test_ctrl_c_stops_everything_the_cli_started(tmp_path: Path) -> None:
    # GIVEN the CLI serving with a free port
    cli = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "local.stack", "--port", "0", "--workers", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = ""
        deadline = time.monotonic() + TIMEOUT
        while "Ctrl-C stops everything" not in banner and time.monotonic() < deadline:
            line = cli.stdout.readline()
            if not line:
                break
            banner += line
        ports = [int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", banner)]
        assert len(set(ports)) == 4, banner  # webhook (and the follow-up route), moto, Devin and PagerDuty stand-ins
        assert TEST_SIGNING_SECRET in banner
        assert "python -m local.send events/payloads/incident-resolved-p1.json" in banner
        # AND it answers, the webhook and the follow-up command it prints
        url = next(u for u in re.findall(r"http://\S+/pagerduty", banner))
        body = (ROOT / "events/payloads/pagey-ping.json").read_bytes()
        assert send(body, url, [TEST_SIGNING_SECRET], timeout=TIMEOUT)[0] == 200
        command = re.search(r"\.venv/bin/python (-m local\.follow_up --url \S+)", banner)
        assert command, banner
        run = subprocess.run(  # noqa: S603
            [sys.executable, *command.group(1).split()], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert (run.returncode, run.stdout.splitlines()[0]) == (0, "HTTP 200")

        # WHEN Ctrl-C arrives
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=TIMEOUT)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()

    # THEN it exits cleanly and nothing it started is still listening
    assert cli.returncode == 0
    assert "Traceback" not in stderr
    assert not any(listening(port) for port in ports)


def test_devin_real_without_credentials_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    monkeypatch.setenv("DEVIN_ORG_ID", "org-x")

    with pytest.raises(StackError, match="DEVIN_API_KEY and DEVIN_ORG_ID"):
        LocalStack(port=0, devin="real", workers=1).start()


def test_a_function_that_cannot_be_imported_fails_the_start_with_one_line() -> None:
    stack = LocalStack(port=0, workers=1, env={"_HANDLER": "app.no_such_handler"}, function_log=subprocess.DEVNULL)

    with pytest.raises(StackError, match="the function failed to start in worker 1: AttributeError"):
        stack.start()
    assert stack._server is None  # noqa: SLF001 - everything started was stopped again


def test_devin_real_points_the_function_at_the_real_api(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN real credentials (made up here); the stack is not started far enough to call anything
    monkeypatch.setenv("DEVIN_API_KEY", "cog_made_up")
    monkeypatch.setenv("DEVIN_ORG_ID", "org-made-up")
    stack = LocalStack(port=0, devin="real", workers=1, function_log=subprocess.DEVNULL, env={"_HANDLER": "app.x"})

    with pytest.raises(StackError):
        stack.start()

    assert stack.devin is None
    assert stack.function_env["DEVIN_API_BASE_URL"] == "https://api.devin.ai"


def test_the_rie_runtime_answers_like_the_worker_runtime() -> None:
    import awslambdaric  # noqa: F401 - requirements-dev.txt installs it; a missing one must fail, not skip

    from local.runtime import find_rie

    assert find_rie(ROOT) is not None, "the Runtime Interface Emulator comes with .venv-sam: run scripts/test"
    incident_id, body = new_incident()
    with LocalStack(port=0, workers=1, runtime="rie", function_log=subprocess.DEVNULL) as stack:
        first = post(stack.url, body)
        again = post(stack.url, body)
        forged = post(stack.url, body, secret="not-the-secret")

    assert (first[0], first[2]["status"], first[2]["incident_id"]) == (200, "started", incident_id)
    assert (again[0], again[2]["status"]) == (200, "duplicate")
    assert forged[0] == 401


# --- several stacks, and what the banner suggests


def _banner_of(cli: subprocess.Popen[str]) -> str:
    banner = ""
    deadline = time.monotonic() + TIMEOUT
    while "Ctrl-C stops everything" not in banner and time.monotonic() < deadline:
        line = cli.stdout.readline() if cli.stdout else ""
        if not line:
            break
        banner += line
    return banner


def _suggested(banner: str) -> tuple[str, list[str]]:
    """The banner's promise for its suggested sample ("200 started" or "200 ignored: …") and the command, as argv."""
    lines = banner.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Send a signed sample event"))
    command = next(line.strip() for line in lines[at:] if ".venv/bin/python -m local.send" in line)
    promise = "200 started" if "200 started" in lines[at] else lines[at + 1].strip()
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/python"
    return promise, [sys.executable, *argv[1:]]


def _answer(run: subprocess.CompletedProcess[str]) -> str:
    """local.send's output as the banner words an answer: "200 started", "200 ignored: <reason>"."""
    status, _, body = run.stdout.partition("\n")
    answer = json.loads(body)
    said = f"{status.removeprefix('HTTP ')} {answer['status']}"
    return f"{said}: {answer['reason']}" if answer["status"] == "ignored" else said


def test_two_stacks_keep_their_own_state_and_each_banners_command_gets_what_it_promises() -> None:
    # GIVEN two stacks at once: one that requires a webhook secret, one that judges events by age as AWS does
    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "local.stack", "--port", "0", "--workers", "1", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    secret, stale = start("--webhook-secret", "local-only-header"), start("--param", "MaxEventAgeHours=72")
    try:
        banners = {"secret": _banner_of(secret), "stale": _banner_of(stale)}
        ports = {
            name: int(re.search(r"POST http://127\.0\.0\.1:(\d+)/pagerduty", b).group(1)) for name, b in banners.items()
        }

        # THEN each has a state file of its own, and each is found by its port
        assert (STATE_DIR / f"{secret.pid}.json").is_file() and (STATE_DIR / f"{stale.pid}.json").is_file()
        for name, port in ports.items():
            assert find_stack(port)[0]["WebhookUrl"] == f"http://127.0.0.1:{port}/pagerduty", name

        # AND each banner's suggested command gets what the banner promises
        for name, banner in banners.items():
            promise, command = _suggested(banner)
            run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)  # noqa: S603
            assert run.returncode == 0, (name, run.stdout, run.stderr)
            assert _answer(run) == promise, (name, banner)
        assert "--webhook-secret local-only-header" in " ".join(_suggested(banners["secret"])[1])
        assert _suggested(banners["secret"])[0] == "200 started"
        assert "more than MAX_EVENT_AGE_HOURS (72)" in _suggested(banners["stale"])[0]
        assert "--param MaxEventAgeHours=0" in banners["stale"]

        # WHEN one stops, THEN only its state file goes; the other is still found
        secret.send_signal(signal.SIGINT)
        assert secret.wait(timeout=TIMEOUT) == 0
        assert not (STATE_DIR / f"{secret.pid}.json").exists()
        assert find_stack(ports["stale"])[0]["WebhookUrl"].endswith(f":{ports['stale']}/pagerduty")
        with pytest.raises(StackError, match=f"no local stack is running on port {ports['secret']}"):
            find_stack(ports["secret"])
    finally:
        for cli in (secret, stale):
            if cli.poll() is None:
                cli.send_signal(signal.SIGINT)
                try:
                    cli.wait(timeout=TIMEOUT)
                except subprocess.TimeoutExpired:
                    cli.kill()
                    cli.wait()
    assert not (STATE_DIR / f"{stale.pid}.json").exists()


def _unstarted(parameters: dict[str, str] | None = None, routing: Path | None = None) -> LocalStack:
    """A stack as the banner sees it, without starting one: its functions' environment from template.yaml."""
    from local.template import function_environment

    stack = LocalStack(port=3000, parameters=parameters, routing=routing)
    stack.function_env = function_environment("ledger", parameters=stack.parameters)
    return stack


@pytest.mark.parametrize(
    ("parameters", "sample", "promise"),
    [
        ({}, "incident-resolved-p1.json", "200 started"),
        # A P1 resolve only messages an early session: the acknowledgement is the sample that starts one.
        ({"EventTypes": "incident.acknowledged"}, "lifecycle-acknowledged.json", "200 started"),
        ({"Priorities": "P3", "Urgencies": "low"}, "incident-resolved-low-urgency.json", "200 started"),
        (
            {"MaxEventAgeHours": "72"},
            "incident-resolved-p1.json",
            "200 ignored: event occurred * hours ago, more than MAX_EVENT_AGE_HOURS (72): a stale or replayed delivery",
        ),
        (
            {"EventTypes": "incident.triggered", "Priorities": "P3"},
            "incident-resolved-p1.json",
            "200 ignored: event type incident.resolved does not start a postmortem",
        ),
    ],
    ids=["defaults", "early-start", "low-urgency-only", "age-checked", "nothing-starts"],
)
def test_the_banner_suggests_a_sample_that_starts_a_session_or_says_what_the_sample_gets(
    parameters: dict[str, str], sample: str, promise: str
) -> None:
    lines = _suggestion(_unstarted(parameters))

    assert f"events/payloads/{sample} --url http://127.0.0.1:3000/pagerduty" in "\n".join(lines)
    if promise == "200 started":
        assert lines[0].endswith("200 started, one session; send it again: 200 duplicate:")
    else:
        assert fnmatch.fnmatchcase(lines[1].strip(), promise), lines


def test_the_banner_says_when_the_routing_document_skips_the_sample(tmp_path: Path) -> None:
    routing = tmp_path / "routing.json"
    routing.write_text('{"rules": [{"name": "all checkout", "match": {"service": ["Checkout*"]}, "skip": true}]}')

    text = "\n".join(_suggestion(_unstarted(routing=routing)))

    assert "200 ignored: routing rule 'all checkout' skips this incident" in text


def test_local_prompt_prints_the_exact_prompt_an_incident_produced(stack, tmp_path, monkeypatch, capsys) -> None:
    from local import prompt as local_prompt
    from local.stack import write_state

    # GIVEN a running local stack that started a session for an incident
    monkeypatch.setattr("local.stack.STATE_DIR", tmp_path / ".local-stacks")
    write_state(stack)
    incident_id, body = new_incident()
    status, _, answer = post(stack.url, body)
    assert (status, answer["status"]) == (200, "started")
    capsys.readouterr()

    # WHEN the documented command asks for its prompt, and for an incident without a session
    found = local_prompt.main([incident_id])
    printed = capsys.readouterr().out
    missing = local_prompt.main(["QNOSUCHINCIDENT"])

    # THEN it prints exactly what Devin's stand-in received, and says when there is nothing
    (sent,) = [r.json()["prompt"] for r in stack.devin.create_requests() if f":{incident_id}" in r.body.decode()]
    assert printed == sent + "\n"
    assert missing == 1 and found == 0
