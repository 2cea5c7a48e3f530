"""The result back on the incident (issue 14, part 4): the follow-up checks a session's structured result against
its schema, keeps a compact copy, and once the session is done posts exactly one summary note, through repeated
runs, racing runs and a lost answer; an invalid or missing result is recorded and posts nothing; a session without
a result is followed as before."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from bridge.devin.client import DevinClient
from bridge.follow import follow_up
from bridge.ledger import Ledger
from bridge.pagerduty.client import PagerDutyClient
from bridge.postmortem import NoteWriter

from local.http_server import Fault
from local.pagerduty_standin import sample_record
from tests.conftest import (
    DEVIN_KEY,
    DEVIN_ORG,
    PAGERDUTY_FROM,
    PAGERDUTY_KEY,
    TABLE,
    aws_client,
    ledger_item,
)
from tests.support.events import api_event, incident
from tests.support.metrics import emitted
from tests.support.race import OneCallAtATime, race
from tests.support.results import PR_URL, valid_result
from tests.support.template import ROOT

INCIDENT = "QSUMMARY00001"
MARKER = "[pagerduty-postmortem:summary]"


@pytest.fixture
def run(follow_up_run: Any) -> Any:
    return follow_up_run


def start(invoke, pagerduty, incident_id: str = INCIDENT) -> str:  # noqa: ANN001 - fixtures
    pagerduty.add_incident(incident_id, **sample_record(incident_id))
    answer = invoke(api_event(incident(incident_id)))
    assert answer.body["status"] == "started", answer.body
    return answer.body["session_id"]


def summaries(pagerduty, incident_id: str = INCIDENT) -> list[str]:  # noqa: ANN001
    return [note["content"] for note in pagerduty.notes_posted(incident_id) if MARKER in note["content"]]


def finish(devin, session_id: str, result: Any, *, status: str = "exit") -> None:  # noqa: ANN001
    devin.open_pull_request(session_id, PR_URL)
    devin.update_session(session_id, status=status, structured_output=result)


# --- a valid result ------------------------------------------------------------------------------------------


def test_a_valid_result_of_an_ended_session_puts_one_summary_on_the_incident(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    finish(devin, session_id, valid_result())

    report = run()

    (note,) = summaries(pagerduty)
    lines = note.splitlines()
    # What on-call looks for first: the priority, how long (the bridge's own figure: 09:12:44 to 10:03:18), the title
    assert lines[0] == "P1 · 51 min · Checkout API 5xx error rate above 5% — payments failing"
    assert "Impact: 1,840 failed checkouts (estimate: 7% of 26,300 requests) — Customers paying in us-west-2" in note
    assert "Root cause (likely): Deploy 412 shipped a connection pool size of 2" in note
    assert "- [P1 prevent] Check pool size against peak concurrency in the deploy pipeline" in note
    assert "— owner: payments platform on-call" in note
    assert "- [P2 detect] Alert on connection pool saturation above 90%" in note
    assert f"Draft: {PR_URL}" in note
    assert "Rubric score" not in note and "Evidence:" not in note  # no bare score, no check nobody acts on
    assert report["results_valid"] == 1
    item = ledger_item(INCIDENT)
    assert item["result_status"] == "valid"
    assert item["postmortem_result"]["root_cause"] == {
        "statement": valid_result()["root_cause"]["statement"],
        "confidence": "likely",
    }
    assert [entry["title"] for entry in item["postmortem_result"]["action_items"]] == [
        entry["title"] for entry in valid_result()["action_items"]
    ]
    assert item["result_score"]
    assert item["summary_note_posted_at"].endswith("Z")
    assert "following" not in item


def test_the_summary_is_posted_once_over_repeated_runs(pagerduty_writes, pagerduty, invoke, devin, run) -> None:
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="running", status_detail="finished", structured_output=valid_result())

    first, second, third = run(), run(), run()

    assert len(summaries(pagerduty)) == 1
    assert (first["results_valid"], second["results_valid"], third["results_valid"]) == (1, 0, 0)


def test_a_result_given_while_the_session_works_is_kept_and_posted_only_when_it_is_done(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="running", status_detail="working", structured_output=valid_result())

    run()
    kept_early = ledger_item(INCIDENT)
    posted_early = summaries(pagerduty)
    devin.update_session(session_id, status="exit")
    run()

    assert kept_early["result_status"] == "valid" and posted_early == []
    assert len(summaries(pagerduty)) == 1


def test_the_summary_says_which_cited_ids_are_not_in_pagerdutys_record(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    made_up = valid_result(root_cause={"statement": "s", "confidence": "hypothesis", "evidence": ["RMADEUP00000"]})
    finish(devin, session_id, made_up)

    run()

    (note,) = summaries(pagerduty)
    assert "not in PagerDuty's record: RMADEUP00000" in note
    assert ledger_item(INCIDENT)["result_evidence"]["unknown"] == ["RMADEUP00000"]


def test_a_lost_answer_to_the_summary_is_found_by_its_marker_not_posted_twice(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    finish(devin, session_id, valid_result())
    # The PR note goes through; the summary is stored by PagerDuty but its answer is lost.
    pagerduty.enqueue("notes_post", Fault(), Fault.create_then_reset())

    lost = run()
    healed = run()

    assert lost["failed"] == 1
    assert ledger_item(INCIDENT).get("summary_note_posted_at") is not None
    assert healed["failed"] == 0
    assert len(summaries(pagerduty)) == 1
    assert "following" not in ledger_item(INCIDENT)


def test_an_ended_session_stays_followed_until_its_summary_is_posted(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    finish(devin, session_id, valid_result())
    pagerduty.enqueue("notes_post", Fault(), Fault.status(503))

    failing = run()
    still_followed = ledger_item(INCIDENT).get("following")
    healed = run()

    assert (failing["failed"], still_followed) == (1, "open")
    assert healed["failed"] == 0
    assert len(summaries(pagerduty)) == 1
    assert "following" not in ledger_item(INCIDENT)


def test_racing_follow_ups_post_one_summary(pagerduty_writes, pagerduty, invoke, devin) -> None:
    session_id = start(invoke, pagerduty)
    finish(devin, session_id, valid_result())
    # PagerDuty takes 200 ms a request, so that the runs overlap around the notes.
    pagerduty.latency = 0.2
    ledger = Ledger(OneCallAtATime(aws_client("dynamodb")), TABLE, retention_days=90)

    def one_run() -> Any:
        writer = NoteWriter(
            PagerDutyClient(pagerduty.base_url, PAGERDUTY_KEY, requests.Session(), from_email=PAGERDUTY_FROM),
            lease_seconds=30,
        )
        report = follow_up(
            ledger=ledger,
            devin=DevinClient(devin.base_url, DEVIN_KEY, DEVIN_ORG, requests.Session()),
            notes=writer,
            follow_up_days=7,
            deadline=time.monotonic() + 60,
        )
        return type("Outcome", (), {"status": "done" if not report.failed else "held"})()

    outcomes = race(6, one_run)

    assert len(outcomes) == 6
    assert len(summaries(pagerduty)) == 1


# --- an invalid or missing result ----------------------------------------------------------------------------


def test_an_invalid_result_is_recorded_and_counted_and_posts_no_summary(
    pagerduty_writes, pagerduty, invoke, devin, run, capsys
) -> None:
    session_id = start(invoke, pagerduty)
    finish(devin, session_id, valid_result(root_cause={"statement": "s", "confidence": "certain", "evidence": []}))
    capsys.readouterr()

    report = run()

    assert summaries(pagerduty) == []
    item = ledger_item(INCIDENT)
    assert item["result_status"] == "invalid"
    assert "confidence" in item["result_error"]
    assert "postmortem_result" not in item
    assert report["results_invalid"] == 1
    printed = {metric.name: metric.values for metric in emitted(capsys.readouterr().out)}
    assert printed["PostmortemResultInvalid"] == [1.0]
    assert printed["PostmortemResultValid"] == [0.0]


def test_a_session_that_ended_without_a_result_is_recorded_missing_and_posts_no_summary(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    finish(devin, session_id, None)

    report = run()

    assert summaries(pagerduty) == []
    assert ledger_item(INCIDENT)["result_status"] == "missing"
    assert report["results_missing"] == 1
    assert "following" not in ledger_item(INCIDENT)


def test_a_result_that_turns_invalid_posts_no_summary_and_keeps_the_earlier_copy(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="running", status_detail="working", structured_output=valid_result())
    run()
    finish(devin, session_id, {"summary": "rewriting"})

    run()

    assert summaries(pagerduty) == []
    item = ledger_item(INCIDENT)
    assert item["result_status"] == "invalid"
    assert item["postmortem_result"]["summary"] == valid_result()["summary"]


# --- sessions without a result: as before --------------------------------------------------------------------


def test_a_session_created_before_results_existed_is_followed_as_before(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    # The item of a session started before this change: no schema, no figures, no evidence ids.
    aws_client("dynamodb").update_item(
        TableName=TABLE,
        Key={"incident_id": {"S": INCIDENT}},
        UpdateExpression="REMOVE result_schema, computed, evidence_ids",
    )
    finish(devin, session_id, None)

    report = run()

    item = ledger_item(INCIDENT)
    assert not {"result_status", "postmortem_result", "result_error", "summary_note_posted_at"} & set(item)
    assert (report["results_valid"], report["results_invalid"], report["results_missing"]) == (0, 0, 0)
    assert [note["content"] for note in pagerduty.notes_posted(INCIDENT)][-1].startswith(
        "The postmortem draft is ready for review"
    )
    assert "following" not in item


def test_no_secret_reaches_the_note_the_ledger_or_what_the_run_prints(
    pagerduty_writes, pagerduty, invoke, devin, run, capsys
) -> None:
    session_id = start(invoke, pagerduty)
    finish(devin, session_id, valid_result(summary=f"the key {PAGERDUTY_KEY} and {DEVIN_KEY} leaked"))
    capsys.readouterr()

    report = run()
    out, err = capsys.readouterr()

    printed = out + err + str(report)
    assert PAGERDUTY_KEY not in printed and DEVIN_KEY not in printed
    (note,) = summaries(pagerduty)
    assert "the key [redacted] and [redacted] leaked" in note
    kept = str(ledger_item(INCIDENT))
    assert PAGERDUTY_KEY not in kept and DEVIN_KEY not in kept


def documented_sample() -> str:
    """The summary note's sample in docs/configuration.md."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = text.split("<!-- the summary note's sample: tests/test_summary_note.py builds it", 1)[1]
    return block.split("```\n", 2)[1]


def test_the_documented_summary_note_is_byte_for_byte_what_the_follow_up_posts(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    # GIVEN the sample incident (its record: trigger 09:12:44Z, resolve 10:03:18Z, change PCHG7K2D with its link)
    # and a result that implicates that change and cites one id the record never held
    session_id = start(invoke, pagerduty)
    result = valid_result(
        resolution={"what": "Rolled checkout-service back to 2026.03.13-2", "at": "2026-03-14T10:01:02Z"},
        changes=[{"id": "PCHG7K2D", "verdict": "implicated", "reason": "deployed 7 minutes before the first alert"}],
    )
    result["root_cause"]["evidence"].append("RMADEUP00000")
    finish(devin, session_id, result)

    run()

    (note,) = summaries(pagerduty)
    assert note + "\n" == documented_sample(), note
