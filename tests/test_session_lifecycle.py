"""Devin's sessions as Devin runs them (devin-api.md §2-3), through the real follow-up: every documented status ×
status_detail does what docs/configuration.md's table says; a session that finishes and goes idle between two runs
gets its summary; an early session is never done before the resolve reached it; a person waiting, a billing stop
and an error each say so on the incident once; a forwarded event puts a session back in the follow-up."""

from __future__ import annotations

import time
from typing import Any

import pytest
from bridge.devin.session import DONE, FAILED, STOPPED, STOPPED_DETAILS, TABLE, WAITING, WORKING

from local.devin_standin import Fault, Lifecycle, Step
from local.pagerduty_standin import sample_record
from tests.conftest import backdate, ledger_item
from tests.support.events import api_event, incident, incident_event, note_event
from tests.support.metrics import emitted
from tests.support.results import valid_result

INCIDENT = "QLIFE00000001"
SUMMARY = "[pagerduty-postmortem:summary]"
PR = "https://github.com/acme/postmortems/pull/7"


class Later:
    """The stand-in's clock: real time, moved forward by the test to let Devin's transitions come due."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def later(devin) -> Later:  # noqa: ANN001 - fixture
    clock = Later()
    devin.clock = clock
    return clock


@pytest.fixture
def run(follow_up_run: Any) -> Any:
    return follow_up_run


def start(invoke, pagerduty, incident_id: str = INCIDENT) -> str:  # noqa: ANN001 - fixtures
    pagerduty.add_incident(incident_id, **sample_record(incident_id))
    answer = invoke(api_event(incident(incident_id)))
    assert answer.body["status"] == "started", answer.body
    return answer.body["session_id"]


def notes(pagerduty, incident_id: str = INCIDENT) -> list[str]:  # noqa: ANN001
    return [note["content"] for note in pagerduty.notes_posted(incident_id)]


def with_marker(pagerduty, marker: str, incident_id: str = INCIDENT) -> list[str]:  # noqa: ANN001
    return [content for content in notes(pagerduty, incident_id) if marker in content]


def following(incident_id: str = INCIDENT) -> bool:
    return ledger_item(incident_id).get("following") == "open"


# --- every documented status × detail ----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "detail"), list(TABLE), ids=[f"{s}-{d}" for s, d in TABLE])
def test_every_documented_status_and_detail_does_what_the_table_says(
    pagerduty_writes, pagerduty, invoke, devin, run, status: str, detail: str | None
) -> None:
    # GIVEN a session of a resolved incident that has a valid result and a pull request, in `status` × `detail`
    session_id = start(invoke, pagerduty)
    devin.open_pull_request(session_id, PR)
    devin.update_session(session_id, status=status, status_detail=detail, structured_output=valid_result())
    if detail is None:
        devin.sessions[0]["status_detail"] = None

    # WHEN the follow-up runs twice
    first, second = run(), run()

    # THEN what the incident and the ledger show is what the table says
    expected = TABLE[(status, detail)]
    item = ledger_item(INCIDENT)
    assert item["session_status"] == status
    assert item.get("session_status_detail") == detail
    assert item["result_status"] == "valid"  # kept whatever the phase
    assert len(with_marker(pagerduty, f"/pull/7\n[pagerduty-postmortem:pr {PR}]")) == 1
    assert len(with_marker(pagerduty, SUMMARY)) == (1 if expected == DONE else 0)
    waiting = with_marker(pagerduty, "[pagerduty-postmortem:waiting 1]")
    stopped = with_marker(pagerduty, "[pagerduty-postmortem:stopped 1]")
    assert len(waiting) == (1 if expected == WAITING else 0)
    assert len(stopped) == (1 if expected in (STOPPED, FAILED) else 0)
    assert following() == (expected in (WORKING, WAITING, STOPPED))
    if expected == WAITING:
        assert waiting[0].startswith(f"Devin is waiting for input on the postmortem: {devin.sessions[0]['url']}")
    if expected == STOPPED:
        assert STOPPED_DETAILS[detail] in stopped[0]
    if expected == FAILED:
        assert "ended with an error" in stopped[0]
    new = {"waiting": "sessions_waiting", "stopped": "sessions_stopped", "failed": "sessions_failed"}
    for phase, name in new.items():
        assert first[name] == (1 if expected == phase else 0), name
        assert second[name] == 0, name


def test_an_undocumented_status_is_followed_as_work_in_progress(pagerduty_writes, pagerduty, invoke, devin, run):
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="hibernating", status_detail="dreaming", structured_output=valid_result())

    run()

    assert following()
    assert with_marker(pagerduty, SUMMARY) == []


# --- the case that failed: finished, then idle, between two runs -------------------------------------------


def test_a_session_that_finishes_and_goes_idle_between_two_runs_gets_its_summary_once(
    pagerduty_writes, pagerduty, invoke, devin, run, later
) -> None:
    # GIVEN Devin works on the session, finishes with a result after a minute, and is suspended when idle
    session_id = start(invoke, pagerduty)
    devin.plan(
        session_id,
        [
            Step(0, "running", "working"),
            Step(60, "running", "finished", result=True, pull_request=PR),
            Step(360, "suspended", "inactivity"),
        ],
    )
    working = run()
    assert ledger_item(INCIDENT)["session_status_detail"] == "working"

    # WHEN the next run comes after it finished and went idle
    later.advance(600)
    done = run()
    again = run()

    # THEN the summary of its result is on the incident once, and it is no longer followed
    assert (working["results_valid"], done["results_valid"], again["followed"]) == (0, 1, 0)
    (summary,) = with_marker(pagerduty, SUMMARY)
    assert f"Draft: {PR}" in summary
    item = ledger_item(INCIDENT)
    assert (item["session_status"], item["session_status_detail"]) == ("suspended", "inactivity")
    assert not following()


def test_the_stand_ins_own_lifecycle_ends_idle_with_a_result_and_the_summary_arrives(
    pagerduty_writes, pagerduty, invoke, devin, run, later
) -> None:
    devin.lifecycle = Lifecycle(work_seconds=30, idle_seconds=300)
    start(invoke, pagerduty)

    later.advance(1000)
    report = run()

    assert report["results_valid"] == 1
    assert len(with_marker(pagerduty, SUMMARY)) == 1
    assert devin.sessions[0]["status"] == "suspended"


def test_idle_without_a_result_is_recorded_missing_and_the_missing_notes_posted(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    pagerduty.enqueue("notes_post", Fault.status(500))  # the session note is still owed
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="suspended", status_detail="inactivity")

    report = run()

    assert report["results_missing"] == 1
    item = ledger_item(INCIDENT)
    assert item["result_status"] == "missing"
    assert item["session_note_posted_at"]
    assert not following()


# --- an early session waits for the resolve ----------------------------------------------------------------

ACK = ("incident.acknowledged", "01JLIFEACK0000000000000001", "2026-03-14T09:15:02Z")
RESOLVE = ("incident.resolved", "01JLIFERES0000000000000001", "2026-03-14T10:03:18Z")
REOPEN = ("incident.reopened", "01JLIFEREO0000000000000001", "2026-03-14T10:20:00Z")
RESOLVE_AGAIN = ("incident.resolved", "01JLIFERES0000000000000002", "2026-03-14T11:00:00Z")


@pytest.fixture
def early(env, monkeypatch) -> None:  # noqa: ANN001 - fixtures
    monkeypatch.setenv("EVENT_TYPES", "incident.acknowledged")
    monkeypatch.setenv("FOLLOW_UP_EVENT_TYPES", "incident.annotated,incident.reopened")


def deliver(invoke, kind: tuple[str, str, str], status: str) -> Any:  # noqa: ANN001
    return invoke(api_event(incident_event(*kind, incident_id=INCIDENT, status=status)))


def test_an_early_session_idle_with_an_early_result_is_not_done_until_the_resolve_reached_it(
    early, pagerduty_writes, pagerduty, invoke, devin, run, later
) -> None:
    # GIVEN a session started on acknowledgement gives an early result and goes idle while the incident is open
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    session_id = deliver(invoke, ACK, "acknowledged").body["session_id"]
    early_result = {**valid_result(), "summary": "Early: still under investigation."}
    devin.update_session(session_id, status="suspended", status_detail="inactivity", structured_output=early_result)

    before = run()
    assert (before["results_valid"], with_marker(pagerduty, SUMMARY), following()) == (1, [], True)

    # WHEN the resolve is forwarded: the message resumes the session, which finishes with its final result
    devin.lifecycle = Lifecycle(work_seconds=60, idle_seconds=300)
    assert deliver(invoke, RESOLVE, "resolved").body["status"] == "messaged"
    devin.update_session(session_id, structured_output=valid_result())
    while_working = run()
    posted_while_working = with_marker(pagerduty, SUMMARY)
    later.advance(1000)
    done = run()

    # THEN the one summary is the final result's, posted after the resolve reached the session
    assert (while_working["results_valid"], posted_while_working) == (1, [])
    assert done["results_valid"] == 0  # the final result was recorded while the session worked
    (summary,) = with_marker(pagerduty, SUMMARY)
    assert valid_result()["summary"][:60] in summary
    assert "Early:" not in summary
    assert not following()


def test_a_session_that_has_not_seen_the_resolve_yet_is_not_done(
    early, pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    # GIVEN the resolve was forwarded, but Devin still reports the idle state it had before the message
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    session_id = deliver(invoke, ACK, "acknowledged").body["session_id"]
    deliver(invoke, RESOLVE, "resolved")
    stale = int(time.time()) - 30
    devin.sessions[0].update(
        status="suspended", status_detail="inactivity", structured_output=valid_result(), updated_at=stale
    )

    # WHEN the follow-up reads it: not done yet
    run()
    assert (with_marker(pagerduty, SUMMARY), following()) == ([], True)

    # AND once Devin reports an update after the message, it is
    devin.update_session(session_id, status="suspended")
    run()
    assert len(with_marker(pagerduty, SUMMARY)) == 1


def test_a_reopened_incident_is_not_done_until_it_resolves_again(
    early, pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    session_id = deliver(invoke, ACK, "acknowledged").body["session_id"]
    deliver(invoke, RESOLVE, "resolved")
    deliver(invoke, REOPEN, "triggered")
    devin.update_session(session_id, status="suspended", status_detail="inactivity", structured_output=valid_result())

    run()
    assert with_marker(pagerduty, SUMMARY) == []

    deliver(invoke, RESOLVE_AGAIN, "resolved")
    devin.update_session(session_id, status="suspended", status_detail="inactivity")
    run()
    assert len(with_marker(pagerduty, SUMMARY)) == 1


def test_follow_up_days_count_from_the_last_event_that_reached_the_session(
    early, pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    deliver(invoke, ACK, "acknowledged")
    backdate(INCIDENT, "session_recorded_epoch", 8 * 86400)
    deliver(invoke, RESOLVE, "resolved")  # today

    report = run()

    assert (report["followed"], report["stopped"]) == (1, 0)
    assert following()
    backdate(INCIDENT, "delivered_epoch", 8 * 86400)
    assert run()["stopped"] == 1


# --- a person waiting, a billing stop, an error ------------------------------------------------------------


def test_each_waiting_spell_gets_one_note_through_repeated_runs_and_a_lost_answer(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="running", status_detail="waiting_for_user")
    pagerduty.enqueue("notes_post", Fault.status(201, create=True, content_type="text/plain", body=b"cut"))

    lost = run()  # the note was written, its answer unreadable
    found = run()  # it is found by its marker, not posted again
    devin.update_session(session_id, status_detail="working")
    run()
    devin.update_session(session_id, status_detail="waiting_for_approval")
    second_spell = run()
    run()

    assert (lost["sessions_waiting"], found["sessions_waiting"], second_spell["sessions_waiting"]) == (1, 0, 1)
    assert len(with_marker(pagerduty, "[pagerduty-postmortem:waiting 1]")) == 1
    assert len(with_marker(pagerduty, "[pagerduty-postmortem:waiting 2]")) == 1
    assert ledger_item(INCIDENT)["waiting_spells"] == 2
    assert following()


@pytest.mark.parametrize("detail", list(STOPPED_DETAILS))
def test_a_billing_stop_says_why_once_counts_for_the_alarm_and_keeps_the_result(
    pagerduty_writes, pagerduty, invoke, devin, run, capsys, detail: str
) -> None:
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="suspended", status_detail=detail, structured_output=valid_result())
    capsys.readouterr()

    run()
    printed = {metric.name: metric.values for metric in emitted(capsys.readouterr().out)}
    run()

    (note,) = with_marker(pagerduty, "[pagerduty-postmortem:stopped 1]")
    assert note.startswith(f"The postmortem draft stopped: {STOPPED_DETAILS[detail]}.")
    assert printed["SessionsStopped"] == [1.0]
    item = ledger_item(INCIDENT)
    assert item["result_status"] == "valid" and item["postmortem_result"]["summary"]
    assert with_marker(pagerduty, SUMMARY) == []
    assert following()  # a session the owner resumes is followed to its end


def test_a_stopped_session_that_is_resumed_and_finishes_gets_its_summary(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="suspended", status_detail="out_of_credits")
    run()

    devin.update_session(session_id, status="running", status_detail="finished", structured_output=valid_result())
    run()

    assert len(with_marker(pagerduty, SUMMARY)) == 1
    assert not following()


# --- a forwarded event brings a session back ---------------------------------------------------------------


@pytest.fixture
def notes_forwarded(env, monkeypatch) -> None:  # noqa: ANN001 - fixtures
    monkeypatch.setenv("FOLLOW_UP_EVENT_TYPES", "incident.annotated")


def annotate(invoke, event_id: str) -> Any:  # noqa: ANN001
    return invoke(api_event(note_event(event_id, "2026-03-14T12:00:00Z", "Found a second trigger.", INCIDENT)))


def test_a_forwarded_event_after_the_summary_brings_the_session_back_and_a_changed_result_is_posted_once(
    notes_forwarded, pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    # GIVEN the session was done and its summary posted
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="exit", structured_output=valid_result())
    run()
    assert not following()

    # WHEN a responder's note is forwarded, and Devin changes its result and is done again
    assert annotate(invoke, "01JLIFENOTE000000000000001").body["status"] == "messaged"
    assert following() and ledger_item(INCIDENT)["follow_episode"] == 2
    changed = {**valid_result(), "summary": "Two triggers: the deploy and a cache stampede after it."}
    devin.update_session(session_id, status="exit", structured_output=changed)
    run()
    run()

    # THEN one "updated" summary of the new result, and the item left the index again
    (update,) = with_marker(pagerduty, "[pagerduty-postmortem:summary 2]")
    assert update.splitlines()[1].startswith("Postmortem draft by Devin, updated: ")
    assert "cache stampede" in update
    assert len(with_marker(pagerduty, SUMMARY)) == 1
    assert not following()


def test_an_unchanged_result_after_a_forwarded_event_posts_nothing_new(
    notes_forwarded, pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="exit", structured_output=valid_result())
    run()
    annotate(invoke, "01JLIFENOTE000000000000002")
    devin.update_session(session_id, status="exit")

    run()

    assert with_marker(pagerduty, "[pagerduty-postmortem:summary 2]") == []
    assert not following()


def test_a_forward_while_the_follow_up_stops_the_session_keeps_it_followed(
    notes_forwarded, pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    # GIVEN the follow-up read a done session, and an event reaches the session before the follow-up records it
    from bridge.ledger import Ledger

    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="exit", structured_output=valid_result())
    record = Ledger.record_follow

    def forwarded_meanwhile(self, incident_id, state, **kwargs):  # noqa: ANN001, ANN202
        if kwargs.get("stop") and not getattr(forwarded_meanwhile, "done", False):
            forwarded_meanwhile.done = True
            assert annotate(invoke, "01JLIFENOTE000000000000003").body["status"] == "messaged"
        return record(self, incident_id, state, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Ledger, "record_follow", forwarded_meanwhile)
        run()

    # THEN the item stays in the index: the session works on what was just delivered
    assert following()


# --- asking for a missing result: opt-in -------------------------------------------------------------------


def test_a_session_done_without_a_result_is_not_asked_for_it_unless_the_deployment_opts_in(
    pagerduty_writes, pagerduty, invoke, devin, run
) -> None:
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="suspended", status_detail="inactivity")

    run()

    assert devin.message_requests() == []
    assert ledger_item(INCIDENT)["result_status"] == "missing"


def test_with_ask_for_missing_result_the_session_is_asked_once_then_recorded_missing(
    pagerduty_writes, pagerduty, invoke, devin, run, monkeypatch
) -> None:
    monkeypatch.setenv("ASK_FOR_MISSING_RESULT", "true")
    session_id = start(invoke, pagerduty)
    devin.update_session(session_id, status="suspended", status_detail="inactivity")

    asked = run()
    assert "result_status" not in ledger_item(INCIDENT) and following()
    (reminder,) = devin.messages(session_id)
    assert "structured output" in reminder
    devin.update_session(session_id, status="suspended", status_detail="inactivity")
    missing = run()

    assert (asked["results_missing"], missing["results_missing"]) == (0, 1)
    assert len(devin.messages(session_id)) == 1
    assert not following()
