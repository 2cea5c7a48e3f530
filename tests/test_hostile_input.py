"""Property tests: whatever arrives on the webhook route, the answer is planned and nothing leaks past the door.

Hypothesis throws bodies, headers and encodings at the real lambda_handler: random bytes, bodies of several
megabytes, JSON nested 100,000 levels deep, a wrong type in every field of a valid incident, missing fields,
titles full of control and bidi characters, base64 flags that lie, and signature headers with many, empty,
non-ASCII, duplicated or huge entries. The configuration is complete, so no 500 is planned: every answer must be
200, 400 or 401, as JSON without a traceback. An unauthenticated request must reach neither Devin, nor DynamoDB,
nor the message body of any log line or metric: each body carries a canary that must not show up in them.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scripts.make_events import TEST_SIGNING_SECRET, sign
from tests.conftest import WEBHOOK_SECRET, Answer, delete_parameter, ledger_item, put_parameter
from tests.support.events import api_event, payload

CANARY = "CANARY-7f41c2d9e8"  # in every body: must never reach a log line for an unauthenticated request
PLANNED = {200, 400, 401}


def bounded(max_examples: int) -> settings:
    """Deterministic (derandomized, no example database) and small enough for CI.

    Hypothesis reuses the function-scoped fixtures across examples: `send` resets what each example observes.
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@dataclass
class Seen:
    """What one request caused: its answer, and everything it touched or wrote."""

    answer: Answer
    devin_requests: int
    dynamodb_calls: list[str]
    output: str  # log lines, metrics and anything else printed

    @property
    def reached_nothing(self) -> bool:
        return self.devin_requests == 0 and not self.dynamodb_calls and CANARY not in self.output


@pytest.fixture
def send(invoke, devin, aws_calls, logs, capsys) -> Callable[[dict[str, Any]], Seen]:
    def run(event: dict[str, Any]) -> Seen:
        devin.reset()
        aws_calls.clear()
        logged = len(logs())
        capsys.readouterr()
        answer = invoke(event)
        captured = capsys.readouterr()
        return Seen(
            answer=answer,
            devin_requests=len(devin.requests),
            dynamodb_calls=[call for call in aws_calls if call.startswith("dynamodb.")],
            output=json.dumps(logs()[logged:]) + captured.out + captured.err,
        )

    return run


def assert_planned(seen: Seen) -> None:
    assert seen.answer.status in PLANNED, seen.answer
    text = json.dumps(seen.answer.body)
    assert "Traceback" not in text and 'File "' not in text, text


def assert_kept_out(seen: Seen) -> None:
    assert seen.answer.status in (400, 401), seen.answer
    assert seen.reached_nothing, seen


_ids = itertools.count(1)


def fresh_incident(title: str = f"Checkout down {CANARY}") -> dict[str, Any]:
    """The P1 resolve sample for an incident never seen before, its title carrying the canary."""
    body = payload()
    body["event"]["data"]["id"] = f"QHOSTILE{next(_ids)}"
    body["event"]["data"]["title"] = title
    return body


def unsigned(body: dict[str, Any] | bytes | str, **kwargs: Any) -> dict[str, Any]:
    return api_event(body, secret=None, **kwargs)


# --- Bodies and encodings -------------------------------------------------------------------------------


@bounded(120)
@given(noise=st.binary(max_size=2048), flag_base64=st.booleans(), signature=st.text(max_size=200))
def test_random_bytes_never_reach_devin_dynamodb_or_the_logs(send, noise, flag_base64, signature) -> None:
    raw = CANARY.encode() + noise
    event = unsigned(raw.decode("latin-1"), headers={"x-pagerduty-signature": signature})
    if flag_base64:
        event["isBase64Encoded"], event["body"] = True, base64.b64encode(raw).decode()

    seen = send(event)

    assert_planned(seen)
    assert_kept_out(seen)


@bounded(60)
@given(text=st.text(max_size=300))
def test_a_base64_flag_on_text_that_is_not_base64_is_a_400_before_anything(send, text) -> None:
    event = api_event(f"{CANARY} {text}")  # signed over the text itself
    event["isBase64Encoded"] = True

    seen = send(event)

    assert_kept_out(seen)
    assert seen.answer.status == 400


def test_base64_text_sent_without_the_flag_fails_the_signature(send) -> None:
    # GIVEN a body signed over its bytes, but handed over as its base64 text without saying so
    raw = json.dumps(fresh_incident()).encode()
    event = unsigned(base64.b64encode(raw).decode(), headers={"x-pagerduty-signature": sign(raw, TEST_SIGNING_SECRET)})

    assert_kept_out(send(event))


@bounded(4)
@given(size=st.integers(min_value=1_000_000, max_value=6_000_000), signed=st.booleans(), flag_base64=st.booleans())
@example(size=6_000_000, signed=True, flag_base64=False)
@example(size=6_000_000, signed=False, flag_base64=True)
def test_a_body_of_megabytes_is_verified_and_answered(send, size, signed, flag_base64) -> None:
    body = fresh_incident()
    body["event"]["data"]["padding"] = "x" * size  # an unknown field: ignored, but signed over

    seen = send(api_event(body, secret=TEST_SIGNING_SECRET if signed else None, base64_encoded=flag_base64))

    assert_planned(seen)
    if signed:
        assert (seen.answer.status, seen.answer.body["status"]) == (200, "started")
    else:
        assert_kept_out(seen)


@bounded(12)
@given(
    depth=st.integers(min_value=1, max_value=100_000),
    opener=st.sampled_from(["[", '{"a":']),
    inside_incident=st.booleans(),
    signed=st.booleans(),
)
@example(depth=100_000, opener="[", inside_incident=False, signed=True)
@example(depth=100_000, opener='{"a":', inside_incident=True, signed=True)
def test_deeply_nested_json_is_a_400_or_read_never_a_crash(send, depth, opener, inside_incident, signed) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + f'"{CANARY}"' + closer * depth
    if inside_incident:
        shell = json.dumps(fresh_incident())
        raw = shell.replace('"data": {', f'"data": {{"nested": {nested}, ', 1)
    else:
        raw = nested

    seen = send(api_event(raw, secret=TEST_SIGNING_SECRET if signed else None))

    assert_planned(seen)
    if not signed:
        assert_kept_out(seen)
    elif inside_incident and seen.answer.status == 200:
        assert seen.answer.body["status"] == "started"  # shallow enough to read: the nesting is ignored


# --- Fields ---------------------------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


SAMPLE_PATHS = sorted(_paths(payload()), key=repr)
# Without these, or with nonsense in them, the body is not a readable incident delivery: 400 is planned.
REQUIRED = {(), ("event",), ("event", "event_type"), ("event", "data", "id")}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def _replace(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return document


def _delete(document: dict[str, Any], path: tuple[Any, ...]) -> None:
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])


@bounded(150)
@given(path=st.sampled_from(SAMPLE_PATHS), value=json_values)
@example(path=("event", "data", "number"), value=10**40)  # more digits than a DynamoDB number holds
@example(path=("event", "data", "number"), value=True)
@example(path=("event", "data", "priority"), value=["P1"])
@example(path=("event", "data", "id"), value="Q1 OR 1=1")
def test_a_wrong_type_in_any_field_of_a_signed_incident_is_a_planned_answer(send, path, value) -> None:
    body = _replace(fresh_incident(), path, value)

    seen = send(api_event(json.dumps(body)))

    assert_planned(seen)
    assert seen.answer.status != 401
    if path not in REQUIRED:
        assert seen.answer.status == 200, seen.answer
        assert seen.answer.body["status"] in ("started", "duplicate", "ignored")
    assert seen.devin_requests <= 1


@bounded(60)
@given(missing=st.lists(st.sampled_from([p for p in SAMPLE_PATHS if p]), min_size=1, max_size=6, unique=True))
def test_missing_fields_in_a_signed_incident_are_a_planned_answer(send, missing) -> None:
    body = fresh_incident()
    for path in sorted(missing, key=len, reverse=True):
        with contextlib.suppress(KeyError, IndexError):  # a parent was deleted first
            _delete(body, path)

    seen = send(api_event(json.dumps(body)))

    assert_planned(seen)
    assert seen.answer.status != 401
    if not REQUIRED & set(missing):
        assert seen.answer.status == 200, seen.answer


@bounded(60)
@given(title=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=400))
@example(title="\x00\x1b[31m\u202e\u2066\ufeff\r\n\t\x7f\x85")
@example(title="😀" * 400)
def test_any_unicode_title_of_a_signed_incident_starts_a_session_with_a_clean_one_line_title(
    send, devin, title
) -> None:
    seen = send(api_event(fresh_incident(title)))

    assert (seen.answer.status, seen.answer.body["status"]) == (200, "started")
    (create,) = devin.create_requests()
    sent_title = create.json()["title"]
    assert sent_title.startswith("Postmortem: ")
    assert len(sent_title) <= len("Postmortem: ") + 300
    assert not any(char in sent_title for char in "\x00\x1b\r\n\u202e\u2066\ufeff\x85")


# --- Signature headers ----------------------------------------------------------------------------------

signature_entries = st.one_of(
    st.just(""),
    st.just("v1="),
    st.text(max_size=80),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"v1={h}"),
    st.text(alphabet=st.characters(min_codepoint=128), max_size=20).map(lambda t: f"v1={t}"),
    st.just("sha256=" + "0" * 64),
)


@bounded(120)
@given(
    entries=st.lists(signature_entries, max_size=40),
    include_valid=st.booleans(),
    position=st.integers(min_value=0, max_value=40),
    padding=st.sampled_from(["", " ", "  "]),
    header_name=st.sampled_from(["x-pagerduty-signature", "X-PagerDuty-Signature", "X-PAGERDUTY-SIGNATURE"]),
)
def test_a_delivery_gets_in_only_with_a_valid_v1_entry_among_any_others(
    send, entries, include_valid, position, padding, header_name
) -> None:
    raw = json.dumps(fresh_incident()).encode()
    if include_valid:
        entries = [*entries]
        entries.insert(min(position, len(entries)), padding + sign(raw, TEST_SIGNING_SECRET) + padding)
    header = ",".join(entries)  # how API Gateway joins a repeated header

    seen = send(unsigned(raw, headers={header_name: header}))

    assert_planned(seen)
    if include_valid:
        assert (seen.answer.status, seen.answer.body["status"]) == (200, "started")
    else:
        assert seen.answer.status == 401
        assert_kept_out(seen)


@pytest.mark.parametrize(
    "header",
    [
        "v1=" * 100_000,
        ",".join(["v1=" + "f" * 64] * 20_000),
        "v1=" + "é" * 100_000,
        "\x00" * 10_000,
        "," * 100_000,
    ],
    ids=["v1-repeated", "20k-wrong-entries", "non-ascii", "nul-bytes", "only-commas"],
)
def test_a_huge_or_malformed_signature_header_is_a_401_that_reaches_nothing(send, header: str) -> None:
    seen = send(unsigned(fresh_incident(), headers={"x-pagerduty-signature": header}))

    assert_planned(seen)
    assert_kept_out(seen)


@pytest.fixture
def shared_secret_only(secrets) -> str:
    """The subscription authenticates with the custom X-Webhook-Secret header alone (no signing secret)."""
    delete_parameter("pagerduty-signing-secret")
    put_parameter("webhook-secret", WEBHOOK_SECRET)
    return WEBHOOK_SECRET


@bounded(80)
@given(
    value=st.one_of(
        st.text(max_size=60),
        st.sampled_from([WEBHOOK_SECRET[:-1], WEBHOOK_SECRET + "x", WEBHOOK_SECRET.upper(), f"{WEBHOOK_SECRET},x"]),
        st.sampled_from(["", " ", "\t"]).map(lambda pad: f"{pad}{WEBHOOK_SECRET}{pad}"),
    )
)
def test_the_shared_secret_header_admits_exactly_the_secret(shared_secret_only, send, value) -> None:
    seen = send(unsigned(fresh_incident(), headers={"x-webhook-secret": value}))

    assert_planned(seen)
    if value.strip() == shared_secret_only:
        assert (seen.answer.status, seen.answer.body["status"]) == (200, "started")
    else:
        assert_kept_out(seen)


def test_a_valid_signature_for_another_body_does_not_open_the_door(send) -> None:
    other = json.dumps(payload("pagey-ping.json")).encode()

    seen = send(unsigned(fresh_incident(), headers={"x-pagerduty-signature": sign(other, TEST_SIGNING_SECRET)}))

    assert_kept_out(seen)


def test_a_signature_made_with_the_secret_as_the_message_does_not_pass(send) -> None:
    # HMAC(key=body, msg=secret) and a bare SHA-256 are classic verifier mix-ups.
    raw = json.dumps(fresh_incident()).encode()
    swapped = "v1=" + hmac.new(raw, TEST_SIGNING_SECRET.encode(), hashlib.sha256).hexdigest()
    bare = "v1=" + hashlib.sha256(raw).hexdigest()

    seen = send(unsigned(raw, headers={"x-pagerduty-signature": f"{swapped},{bare}"}))

    assert_kept_out(seen)


def test_an_event_without_headers_or_body_is_a_401(send) -> None:
    event = unsigned(b"")
    event["headers"] = None
    event["body"] = None

    assert_kept_out(send(event))


def test_an_incident_number_too_large_for_dynamodb_is_dropped_instead_of_a_500(send, devin) -> None:
    # A 39-digit number used to raise decimal.Rounded in the ledger write: an unplanned 500, retried for 48 h.
    body = fresh_incident()
    body["event"]["data"]["number"] = 10**40

    seen = send(api_event(body))

    assert (seen.answer.status, seen.answer.body["status"]) == (200, "started")
    facts = devin.create_requests()[0].json()["prompt"]
    assert '"incident_number": null' in facts
    assert "incident_number" not in ledger_item(body["event"]["data"]["id"])


# --- Replays ------------------------------------------------------------------------------------------------


def test_a_replayed_delivery_of_a_started_incident_starts_nothing(send, devin) -> None:
    captured = api_event(fresh_incident())
    first = send(captured)
    recorded = ledger_item(first.answer.body["incident_id"])

    replay = send(copy.deepcopy(captured))

    assert replay.answer.body == {**first.answer.body, "status": "duplicate"}
    assert replay.devin_requests == 0
    assert ledger_item(first.answer.body["incident_id"]) == recorded


def test_a_correctly_signed_delivery_from_years_ago_for_a_started_incident_starts_nothing(send, devin) -> None:
    # GIVEN an incident that has its session
    body = fresh_incident()
    first = send(api_event(body))
    recorded = ledger_item(first.answer.body["incident_id"])
    # WHEN an old, genuinely signed delivery for it arrives (another event id, occurred years ago)
    old = copy.deepcopy(body)
    old["event"]["id"] = "01AAAAAAAAAAAAAAAAAAAAAAAA"
    old["event"]["occurred_at"] = "2019-01-01T00:00:00.000Z"
    old["event"]["data"]["created_at"] = "2018-12-31T23:00:00Z"

    replay = send(api_event(old))

    # THEN it is answered duplicate with the recorded session, nothing is created and the record is untouched
    assert (replay.answer.status, replay.answer.body["status"]) == (200, "duplicate")
    assert replay.answer.body["session_id"] == first.answer.body["session_id"]
    assert replay.devin_requests == 0
    assert ledger_item(first.answer.body["incident_id"]) == recorded
