"""Duplicates and storms through the local stack: 50 concurrent deliveries of one incident, and a storm of 1,000.

The burst and the storm each run once per module (a fixture); each test then checks one thing about what
happened. The storm's own checker is tested first, on made-up outcomes, so that a passing storm means something.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.send import send
from local.stack import LocalStack
from local.storm import Delivery, Flight, Incident, Plan, StormConfig, StormReport, check, plan_storm, run_storm
from scripts.make_events import TEST_SIGNING_SECRET
from tests.support.events import incident

ROOT = Path(__file__).resolve().parents[1]
BURST = 50
# Bounded waits: a wedged stack fails the test instead of hanging the suite.
TIMEOUT = 20.0
RETRY_AFTER_CAP = 1.0  # PagerDuty's Retry-After, scaled down as local.storm does
MAX_RETRIES = 30


# --- the storm's checker and planner, on made-up outcomes (no stack)


def _incident(incident_id: str, priority: str | None, urgency: str = "high", *, merged: bool = False) -> Incident:
    return Incident(incident_id, 1, priority, urgency, resolves=True, merged=merged, reopens=False)


def _plan(*incidents: Incident, event_type: str = "incident.resolved") -> Plan:
    deliveries = [Delivery(str(uuid.uuid4()), event_type, i.id, b"{}") for i in incidents]
    return Plan({i.id: i for i in incidents}, deliveries)


def _answered(plan: Plan, sessions: dict[str, str]) -> list[Flight]:
    """Every delivery answered as the contract says, given each qualifying incident's session id."""
    flights = []
    for delivery in plan.deliveries:
        session = sessions.get(str(delivery.incident_id))
        answer = {"status": "started", "session_id": session} if session else {"status": "ignored"}
        flights.append(Flight(delivery, ["200"], answer, "answered"))
    return flights


def _session(incident_id: str, session_id: str) -> dict[str, Any]:
    return {"session_id": session_id, "tags": ["pagerduty-postmortem", f"pagerduty-incident:{incident_id}"]}


def test_the_qualifying_set_follows_the_contract() -> None:
    plan = _plan(
        _incident("QP1LOW", "P1", "low"),
        _incident("QP2", "P2"),
        _incident("QP3HIGH", "P3", "high"),
        _incident("QNONEHIGH", None, "high"),
        _incident("QNONELOW", None, "low"),
        _incident("QMERGED", "P1", merged=True),
    )

    assert plan.qualifying() == {"QP1LOW", "QP2", "QNONEHIGH"}


def test_an_incident_with_no_resolve_delivered_does_not_qualify() -> None:
    assert _plan(_incident("QP1", "P1"), event_type="incident.triggered").qualifying() == set()


def test_the_checker_passes_one_session_and_one_started_item_per_qualifying_incident() -> None:
    plan = _plan(_incident("QA", "P1"), _incident("QB", "P3"))
    ledger = [{"incident_id": "QA", "status": "started", "session_id": "devin-a"}]

    report = check(plan, _answered(plan, {"QA": "devin-a"}), [_session("QA", "devin-a")], ledger, config=StormConfig())

    assert report.ok, report.render()


def test_the_checker_fails_a_second_session_for_one_incident() -> None:
    plan = _plan(_incident("QA", "P1"))
    ledger = [{"incident_id": "QA", "status": "started", "session_id": "devin-a"}]
    sessions = [_session("QA", "devin-a"), _session("QA", "devin-b")]

    report = check(plan, _answered(plan, {"QA": "devin-a"}), sessions, ledger, config=StormConfig())

    assert (report.ok, report.more_than_one_session, report.exactly_one) == (False, 1, 0)


def test_the_checker_fails_a_session_for_a_non_qualifying_incident() -> None:
    plan = _plan(_incident("QB", "P3"))

    report = check(plan, _answered(plan, {}), [_session("QB", "devin-b")], [], config=StormConfig())

    assert (report.ok, report.non_qualifying_touched) == (False, 1)


def test_the_checker_fails_a_dropped_delivery_and_its_4xx() -> None:
    plan = _plan(_incident("QB", "P3"))
    flights = [Flight(plan.deliveries[0], ["400"], None, "dropped")]

    report = check(plan, flights, [], [], config=StormConfig())

    assert (report.ok, report.genuine_4xx, report.drops) == (False, 1, 1)


def test_the_checker_fails_an_answer_naming_another_session() -> None:
    plan = _plan(_incident("QA", "P1"))
    ledger = [{"incident_id": "QA", "status": "started", "session_id": "devin-a"}]

    report = check(plan, _answered(plan, {"QA": "devin-z"}), [_session("QA", "devin-a")], ledger, config=StormConfig())

    assert (report.ok, report.contract_breaks) == (False, 1)


def test_the_same_seed_plans_the_same_storm() -> None:
    config = StormConfig(deliveries=120, incidents=40, seed=5)

    assert plan_storm(config) == plan_storm(config)
    assert plan_storm(config) != plan_storm(StormConfig(deliveries=120, incidents=40, seed=6))


def test_the_plan_has_the_configured_size_and_every_incident_has_a_delivery() -> None:
    plan = plan_storm(StormConfig(deliveries=400, incidents=120, seed=2))

    assert len(plan.deliveries) == 400
    assert len(plan.incidents) == 120
    assert set(plan.incidents) <= {d.incident_id for d in plan.deliveries}


def test_a_duplicate_repeats_its_original_bytes_and_webhook_id() -> None:
    plan = plan_storm(StormConfig(deliveries=400, incidents=120, seed=2))
    originals = {d.webhook_id: d for d in plan.deliveries if not d.duplicate}
    duplicates = [d for d in plan.deliveries if d.duplicate]

    assert duplicates
    for duplicate in duplicates:
        assert duplicate.body == originals[duplicate.webhook_id].body


# --- 50 concurrent deliveries of one incident


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Burst:
    incident_id: str
    first: list[Answer]  # each delivery's first answer
    final: list[Answer]  # each delivery's last answer, after retrying its 429s
    sessions: list[dict[str, Any]]  # the incident's Devin sessions
    ledger: list[dict[str, Any]]  # the incident's ledger items


def _post(stack: LocalStack, body: bytes, webhook_id: str) -> Answer:
    status, headers, raw = send(body, stack.url, [TEST_SIGNING_SECRET], webhook_id=webhook_id, timeout=TIMEOUT)
    return Answer(status, headers, json.loads(raw))


def _until_not_429(stack: LocalStack, body: bytes, webhook_id: str, answer: Answer) -> Answer:
    """PagerDuty's retries of one delivery (same X-Webhook-Id), honouring Retry-After scaled down."""
    for _ in range(MAX_RETRIES):
        if answer.status != 429:
            return answer
        time.sleep(min(float(answer.headers.get("retry-after", "1")), RETRY_AFTER_CAP))
        answer = _post(stack, body, webhook_id)
    return answer


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Burst]:
    log_path = tmp_path_factory.mktemp("burst") / "function.log"
    # Devin takes a second to answer, so that the holder's claim is live while the other deliveries arrive.
    with (
        open(log_path, "w", encoding="utf-8") as log,
        LocalStack(port=0, workers=4, devin_latency=1.0, function_log=log) as stack,
    ):
        incident_id = "Q" + uuid.uuid4().hex[:13].upper()
        body = json.dumps(incident(incident_id)).encode()
        webhook_ids = [str(uuid.uuid4()) for _ in range(BURST)]
        first: dict[int, Answer] = {}
        final: dict[int, Answer] = {}
        start = threading.Barrier(BURST)

        def deliver(n: int) -> None:
            start.wait(TIMEOUT)
            first[n] = _post(stack, body, webhook_ids[n])
            # Each delivery is retried on its own schedule, as PagerDuty retries them: side by side.
            final[n] = _until_not_429(stack, body, webhook_ids[n], first[n])

        threads = [threading.Thread(target=deliver, args=(n,), daemon=True) for n in range(BURST)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT + MAX_RETRIES * RETRY_AFTER_CAP)
        assert len(final) == BURST, "some deliveries got no final answer"
        tag = f"pagerduty-incident:{incident_id}"
        assert stack.devin is not None
        statuses = Counter(f"{a.status} {a.body.get('status', '')}".strip() for a in first.values())
        print(f"burst of {BURST}: first answers {dict(statuses)}")  # shown with -s
        yield Burst(
            incident_id,
            [first[n] for n in range(BURST)],
            [final[n] for n in range(BURST)],
            [s for s in stack.devin.sessions if tag in s["tags"]],
            [i for i in stack.ledger_items() if i["incident_id"] == incident_id],
        )


@pytest.mark.slow
def test_fifty_concurrent_deliveries_of_one_incident_start_exactly_one_devin_session(burst: Burst) -> None:
    assert len(burst.sessions) == 1


@pytest.mark.slow
def test_fifty_concurrent_deliveries_leave_one_started_ledger_item_naming_the_session(burst: Burst) -> None:
    [item] = burst.ledger
    assert (item["status"], item["session_id"]) == ("started", burst.sessions[0]["session_id"])


@pytest.mark.slow
def test_every_first_answer_is_200_started_or_duplicate_or_429_with_retry_after(burst: Burst) -> None:
    for answer in burst.first:
        assert (answer.status == 200 and answer.body["status"] in ("started", "duplicate")) or (
            answer.status == 429 and answer.headers.get("retry-after", "").isdigit()
        ), answer


@pytest.mark.slow
def test_exactly_one_of_the_fifty_is_answered_started(burst: Burst) -> None:
    assert [a.body.get("status") for a in burst.final].count("started") == 1


@pytest.mark.slow
def test_after_retrying_the_429s_every_delivery_ends_200_with_the_same_session(burst: Burst) -> None:
    assert any(a.status == 429 for a in burst.first), "no delivery overlapped the holder: the retry path went untried"
    session_id = burst.sessions[0]["session_id"]
    assert [(a.status, a.body.get("session_id")) for a in burst.final] == [(200, session_id)] * BURST


# --- the storm: 1,000 deliveries over 300 incidents, 10% of Devin creates failing


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> StormReport:
    log_path = tmp_path_factory.mktemp("storm") / "function.log"
    with open(log_path, "w", encoding="utf-8") as log:
        # The defaults are the storm of issue 4; the seed is fixed so a failure can be replayed with local.storm.
        report = run_storm(StormConfig(deliveries=1000, incidents=300, failure_rate=0.1, seed=1), function_log=log)
    print(report.render())  # shown with -s, or by pytest when a test fails
    return report


@pytest.mark.slow
def test_the_storm_sends_the_planned_deliveries_with_duplicates_and_retries(storm: StormReport) -> None:
    assert (storm.deliveries, storm.incidents) == (1000, 300)
    assert storm.duplicates > 0 and storm.retries > 0
    assert storm.qualifying > 0 and storm.qualifying < storm.incidents


@pytest.mark.slow
def test_the_storm_makes_devin_fail_transiently_and_lose_answers(storm: StormReport) -> None:
    lost = sum(n for kind, n in storm.injected.items() if "answer lost" in kind or kind == "reset before creating")
    assert sum(storm.injected.values()) > 0 and lost > 0
    # Every outcome the function could not know was settled by looking the session up by tag.
    assert storm.devin_lookups >= lost


@pytest.mark.slow
def test_every_qualifying_incident_has_exactly_one_session_and_one_started_ledger_item(storm: StormReport) -> None:
    assert storm.exactly_one == storm.qualifying, storm.examples


@pytest.mark.slow
def test_no_incident_in_the_storm_has_more_than_one_session(storm: StormReport) -> None:
    assert storm.more_than_one_session == 0, storm.examples


@pytest.mark.slow
def test_no_non_qualifying_incident_has_a_session_or_a_ledger_item(storm: StormReport) -> None:
    assert storm.non_qualifying_touched == 0, storm.examples


@pytest.mark.slow
def test_no_genuine_delivery_in_the_storm_gets_a_4xx_other_than_429(storm: StormReport) -> None:
    assert storm.genuine_4xx == 0, storm.answers


@pytest.mark.slow
def test_every_delivery_in_the_storm_ends_with_a_2xx(storm: StormReport) -> None:
    assert (storm.drops, storm.gave_up) == (0, 0), storm.examples


@pytest.mark.slow
def test_every_final_answer_in_the_storm_is_the_contracts(storm: StormReport) -> None:
    assert storm.contract_breaks == 0, storm.examples


@pytest.mark.slow
def test_the_storm_command_prints_the_figures_and_exits_0_when_every_invariant_holds(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own module, with our own interpreter
        [sys.executable, "-m", "local.storm", "--deliveries", "60", "--incidents", "20", "--seed", "4"]
        + ["--logs", str(tmp_path / "function.log")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "deliveries sent                          60 " in result.stdout
    assert "OK: every invariant holds" in result.stdout
