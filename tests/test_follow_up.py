"""The scheduled follow-up (handler/follow_up.py): it records what Devin says about each open session, posts each
pull request's link on the incident exactly once over repeated runs, stops following what has ended, and never
lets one failing incident stop the others."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from local.devin_standin import Fault
from local.pagerduty_standin import sample_record
from tests.conftest import PAGERDUTY_KEY, backdate, ledger_item
from tests.support.events import api_event, incident
from tests.support.metrics import emitted

FIRST, SECOND = "QFOLLOW000001", "QFOLLOW000002"
PR = "https://github.com/acme/checkout/pull/412"


@pytest.fixture
def follow_logs(follow_up: Any) -> Iterator[Any]:
    """The follow-up's structured log lines (Powertools writes to the stream it found at import)."""
    stream = io.StringIO()
    previous = follow_up.logger.logger_handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    follow_up.logger.logger_handler.setStream(previous)


@pytest.fixture
def run(follow_up_run: Any) -> Any:
    return follow_up_run


def start(invoke, devin, pagerduty, incident_id: str) -> str:
    pagerduty.add_incident(incident_id, **sample_record(incident_id))
    answer = invoke(api_event(incident(incident_id)))
    assert answer.body["status"] == "started", answer.body
    return answer.body["session_id"]


def pr_notes(pagerduty, incident_id: str) -> list[str]:
    return [
        n["content"] for n in pagerduty.notes_posted(incident_id) if "pull" in n["content"] or "/pull/" in n["content"]
    ]


def session_gets(devin) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in devin.requests if r.method == "GET" and "/sessions/" in r.path]


def test_without_a_pagerduty_key_the_follow_up_does_nothing(invoke, devin, run, aws_calls) -> None:
    assert invoke(api_event(incident(FIRST))).body["status"] == "started"
    devin.reset()
    aws_calls.clear()

    report = run()

    assert (report["followed"], report["off"]) == (0, True)
    assert devin.requests == []
    assert [call for call in aws_calls if call.startswith("dynamodb.")] == []


def test_it_records_the_sessions_status_pull_requests_and_acus(pagerduty_writes, pagerduty, invoke, devin, run) -> None:
    session_id = start(invoke, devin, pagerduty, FIRST)
    devin.update_session(session_id, status="running", acus_consumed=3.5)
    devin.open_pull_request(session_id, PR)

    report = run()

    assert (report["followed"], report["updated"], report["failed"]) == (1, 1, 0)
    item = ledger_item(FIRST)
    assert item["session_status"] == "running"
    assert item["pull_request_urls"] == [PR]
    assert float(item["acus_consumed"]) == 3.5
    assert item["followed_at"].endswith("Z")
    assert item["following"] == "open"


def test_each_pull_request_link_is_posted_once_over_repeated_runs(pagerduty_writes, pagerduty, invoke, devin, run):
    session_id = start(invoke, devin, pagerduty, FIRST)
    devin.open_pull_request(session_id, PR)

    run()
    run()
    devin.open_pull_request(session_id, PR.replace("412", "413"))
    run()
    run()

    notes = [n["content"] for n in pagerduty.notes_posted(FIRST)]
    assert len(notes) == 3  # the session note, then one per pull request
    assert [PR in note for note in notes].count(True) == 1
    assert [PR.replace("412", "413") in note for note in notes].count(True) == 1
    assert set(ledger_item(FIRST)["pull_request_notes_posted"]) == {PR, PR.replace("412", "413")}


def test_a_session_that_ended_is_no_longer_followed(pagerduty_writes, pagerduty, invoke, devin, run) -> None:
    session_id = start(invoke, devin, pagerduty, FIRST)
    devin.open_pull_request(session_id, PR)
    devin.update_session(session_id, status="exit")

    first = run()
    devin.requests.clear()
    second = run()

    assert first["stopped"] == 1
    assert "following" not in ledger_item(FIRST)
    assert ledger_item(FIRST)["session_status"] == "exit"
    assert len(pr_notes(pagerduty, FIRST)) == 1  # the last look still posted its pull request
    assert second["followed"] == 0
    assert session_gets(devin) == []


def test_a_vanished_session_is_recorded_and_the_others_are_still_followed(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    gone = start(invoke, devin, pagerduty, FIRST)
    kept = start(invoke, devin, pagerduty, SECOND)
    devin.forget_session(gone)
    devin.open_pull_request(kept, PR)

    report = run()

    assert (report["followed"], report["failed"]) == (2, 1)
    assert ledger_item(FIRST)["session_status"] == "not_found"
    assert "following" not in ledger_item(FIRST)
    assert len(pr_notes(pagerduty, SECOND)) == 1


def test_a_failing_note_is_counted_and_posted_by_the_next_run(pagerduty_writes, pagerduty, invoke, devin, run) -> None:
    first = start(invoke, devin, pagerduty, FIRST)
    second = start(invoke, devin, pagerduty, SECOND)
    devin.open_pull_request(first, PR)
    devin.open_pull_request(second, PR.replace("412", "500"))
    pagerduty.enqueue("notes_post", Fault.status(503))

    failing = run()
    healed = run()

    assert (failing["followed"], failing["failed"]) == (2, 1)
    assert healed["failed"] == 0
    assert len(pr_notes(pagerduty, FIRST)) == 1
    assert len(pr_notes(pagerduty, SECOND)) == 1


def test_a_missing_session_note_is_posted_even_when_devin_cannot_be_read(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    # GIVEN the session note failed when the session started, and Devin fails every read now
    pagerduty.enqueue("notes_post", Fault.status(500))
    session_id = start(invoke, devin, pagerduty, FIRST)
    assert pagerduty.notes_posted(FIRST) == []
    devin.enqueue_get(*[Fault.status(503)] * 10)

    report = run()

    assert report["failed"] == 1
    (note,) = [n["content"] for n in pagerduty.notes_posted(FIRST)]
    assert session_id in note
    assert ledger_item(FIRST)["session_note_posted_at"]
    assert ledger_item(FIRST)["following"] == "open"  # Devin's answer is still wanted


def test_a_session_older_than_follow_up_days_is_dropped_without_asking_devin(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    start(invoke, devin, pagerduty, FIRST)
    backdate(FIRST, "session_recorded_epoch", 8 * 86400)
    devin.requests.clear()

    report = run()

    assert report["stopped"] == 1
    assert session_gets(devin) == []
    assert "following" not in ledger_item(FIRST)


def test_with_the_key_but_no_from_email_it_records_and_posts_nothing(
    pagerduty_reads, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, devin, pagerduty, FIRST)
    devin.open_pull_request(session_id, PR)

    run()

    assert ledger_item(FIRST)["pull_request_urls"] == [PR]
    assert [r.method for r in pagerduty.requests if r.method == "POST"] == []


def test_the_open_sessions_come_from_the_index_never_a_scan(pagerduty_writes, pagerduty, invoke, devin, run, aws_calls):
    start(invoke, devin, pagerduty, FIRST)
    aws_calls.clear()

    run()

    dynamodb = [call for call in aws_calls if call.startswith("dynamodb.")]
    assert dynamodb[0] == "dynamodb.Query"
    assert "dynamodb.Scan" not in dynamodb


def test_the_run_reports_in_one_log_line_and_metrics(
    pagerduty_writes, pagerduty, invoke, devin, run, capsys, follow_logs
) -> None:
    session_id = start(invoke, devin, pagerduty, FIRST)
    devin.open_pull_request(session_id, PR)
    capsys.readouterr()

    run()

    (summary,) = [line for line in follow_logs() if line.get("message") == "follow-up run"]
    assert (summary["followed"], summary["updated"], summary["failed"]) == (1, 1, 0)
    printed = {metric.name: metric.values for metric in emitted(capsys.readouterr().out)}
    assert printed["FollowUpFollowed"] == [1.0]
    assert printed["FollowUpUpdated"] == [1.0]
    assert printed["FollowUpFailed"] == [0.0]


def test_the_pagerduty_key_never_appears_in_what_the_run_prints(
    pagerduty_writes, pagerduty, invoke, devin, run, capsys, follow_logs
) -> None:
    session_id = start(invoke, devin, pagerduty, FIRST)
    devin.open_pull_request(session_id, PR)
    pagerduty.enqueue("notes_post", Fault.status(401))

    report = run()
    out, err = capsys.readouterr()

    assert report["failed"] == 1
    assert PAGERDUTY_KEY not in out + err + json.dumps(report) + json.dumps(follow_logs())
