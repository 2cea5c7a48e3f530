"""The scheduled follow-up: reads each open session until it has ended, records what Devin says about it, puts each
of its pull requests on the PagerDuty incident exactly once, and, when the session's structured result is valid and
the session is done, the postmortem's summary too, exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aws_lambda_powertools import Logger

from .devin.client import DevinClient, DevinError, SessionNotFound, SessionState
from .ledger import NOT_FOUND, Ledger, LedgerUnavailable, acus, plain, recorded_session
from .pagerduty.notes import NoteText, pull_request_note, session_note, summary_note
from .postmortem import FAILED, POSTED, NoteWriter, post_notes
from .result import schema as results
from .result.rubric import grade

logger = Logger(child=True)

# Devin's statuses for a session that will do nothing more (devin-api.md §2).
ENDED = frozenset({"exit", "error"})
# What the follow-up made of a session's structured result (the item's result_status).
VALID = "valid"
INVALID = "invalid"
MISSING = "missing"  # the session is done and gave none, though it was created with a schema
# One session's reads get at most this long, so that one slow answer cannot eat the whole run.
SESSION_SECONDS = 10.0


@dataclass
class Report:
    followed: int = 0  # open sessions looked at
    updated: int = 0  # of which something was recorded or posted
    failed: int = 0  # of which something could not be read, recorded or posted (tried again next run)
    stopped: int = 0  # of which no longer followed: ended, vanished or too old
    left: int = 0  # not reached before the run's time ran out (next run)
    # Structured results newly recorded as valid, invalid or missing in this run.
    results_valid: int = 0
    results_invalid: int = 0
    results_missing: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def follow_up(
    *,
    ledger: Ledger,
    devin: DevinClient,
    notes: NoteWriter | None,
    follow_up_days: float,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
    redact: tuple[str, ...] = (),
) -> Report:
    """Follow every open session once; one failing incident never stops the others. `redact` are the bridge's
    secrets, scrubbed from a session's result before anything of it is kept or posted."""
    report = Report()
    for item in ledger.open_sessions():
        if clock() + SESSION_SECONDS > deadline:
            report.left += 1
            continue
        report.followed += 1
        session_deadline = min(deadline, clock() + SESSION_SECONDS)
        try:
            updated, stopped, ok, verdict = _follow(
                item, ledger, devin, notes, follow_up_days, session_deadline, now(), redact
            )
        except LedgerUnavailable:
            logger.exception("could not record what the follow-up read", extra={"incident_id": item["incident_id"]})
            report.failed += 1
            continue
        report.updated += updated
        report.stopped += stopped
        report.failed += not ok
        if verdict is not None:
            setattr(report, f"results_{verdict}", getattr(report, f"results_{verdict}") + 1)
    return report


def _follow(
    item: Mapping[str, Any],
    ledger: Ledger,
    devin: DevinClient,
    notes: NoteWriter | None,
    follow_up_days: float,
    deadline: float,
    now: float,
    redact: tuple[str, ...] = (),
) -> tuple[bool, bool, bool, str | None]:
    """(something recorded or posted, no longer followed, nothing failed, the result's new verdict) for one item."""
    incident_id = str(item["incident_id"])
    session_id = str(item["session_id"])
    too_old = now - float(item.get("session_recorded_epoch", now)) > follow_up_days * 86400
    if too_old:
        ledger.record_follow(incident_id, None, stop=True)
        return True, True, _post_missing(item, ledger, notes) != FAILED, None
    try:
        state = devin.get_session(session_id, deadline)
    except SessionNotFound:
        logger.warning("Devin no longer has the session", extra={"incident_id": incident_id})
        ledger.record_follow(incident_id, None, stop=True, status=NOT_FOUND)
        _post_missing(item, ledger, notes)
        return True, True, False, None
    except DevinError as error:
        logger.warning(
            "could not read the session from Devin", extra={"incident_id": incident_id, "error": type(error).__name__}
        )
        return _post_missing(item, ledger, notes) == POSTED, False, False, None

    outcome = _result(item, state, redact)
    wanted = _wanted_notes(item, state)
    summary = _summary(item, state, outcome)
    if summary is not None:
        wanted.append(summary)
    posted = None
    if notes is not None and wanted:
        # A missing session note is posted whatever else the read says.
        posted = post_notes(ledger, notes, incident_id, wanted)
    ok = posted != FAILED
    # An ended session leaves the index, unless its summary note is still owed: then it stays until the note is
    # posted or the session is too old to follow.
    stopped = state.status in ENDED and (summary is None or notes is None or posted in (POSTED, None))
    updated = _changed(item, state) or stopped or posted == POSTED or outcome.verdict is not None
    ledger.record_follow(incident_id, state, stop=stopped, result=outcome.values, forget=outcome.forget)
    return updated, stopped, ok, outcome.verdict


def _post_missing(item: Mapping[str, Any], ledger: Ledger, notes: NoteWriter | None) -> str | None:
    """Post the notes the item still lacks when the session could not be read (post_notes' answer, or None)."""
    wanted = _wanted_notes(item, None)
    if notes is None or not wanted:
        return None
    return post_notes(ledger, notes, str(item["incident_id"]), wanted)


@dataclass(frozen=True)
class _Outcome:
    """What one read of a session's structured result changes in its ledger item."""

    values: Mapping[str, Any]
    forget: tuple[str, ...] = ()
    verdict: str | None = None  # VALID, INVALID or MISSING when it changed; None when nothing new
    compact: Mapping[str, Any] | None = None  # the valid result's compact copy (this read's or an earlier one's)
    score: str | None = None
    evidence: Mapping[str, Any] | None = None  # {"cited": n, "unknown": [ids]} when the data block's ids are known


def _result(item: Mapping[str, Any], state: SessionState, redact: tuple[str, ...] = ()) -> _Outcome:
    schema = str(item.get("result_schema") or results.DEFAULT_SCHEMA)
    earlier = item.get("postmortem_result") if item.get("result_status") == VALID else None
    output = results.redacted(state.structured_output, redact)
    if output is None:
        done = state.status in ENDED or state.status_detail == "finished"
        if done and item.get("result_schema") and item.get("result_status") is None:
            logger.warning("the session is done and gave no structured result", extra={"session_status": state.status})
            return _Outcome({"result_status": MISSING}, verdict=MISSING)
        return _Outcome(
            {}, compact=plain(earlier), score=item.get("result_score"), evidence=plain(item.get("result_evidence"))
        )
    error = results.validation_error(output, schema)
    if error is not None:
        changed = item.get("result_status") != INVALID or item.get("result_error") != error
        if changed:
            logger.warning("the session's structured result is invalid", extra={"error": error})
        # No summary from an invalid result, even when an earlier one was valid: the session is rewriting it. The
        # earlier compact copy stays in the item for whoever looks.
        return _Outcome({"result_status": INVALID, "result_error": error}, verdict=INVALID if changed else None)
    compact = results.compact(output)
    score = grade(result=output, computed=plain(item.get("computed")) or None).score
    values: dict[str, Any] = {"result_status": VALID, "postmortem_result": compact, "result_score": score}
    evidence = None
    if item.get("evidence_ids"):
        # Checked against what the data block held: a cited id it never held is made up or mistyped.
        cited, unknown = results.evidence_check(output, list(item["evidence_ids"]))
        evidence = {"cited": cited, "unknown": unknown[: results.MAX_ITEMS]}
        values["result_evidence"] = evidence
    changed = any(plain(item.get(name)) != value for name, value in values.items())
    return _Outcome(
        values,
        forget=("result_error",),
        verdict=VALID if changed else None,
        compact=compact,
        score=score,
        evidence=evidence,
    )


def _summary(item: Mapping[str, Any], state: SessionState, outcome: _Outcome) -> NoteText | None:
    """The summary note, when a valid result exists, the session is done (exit, or finished) and it is not posted."""
    if outcome.compact is None or item.get("summary_note_posted_at"):
        return None
    if not (state.status == "exit" or state.status_detail == "finished"):
        return None
    return summary_note(outcome.compact, state.pull_request_urls, outcome.score, outcome.evidence)


def _changed(item: Mapping[str, Any], state: SessionState) -> bool:
    return (
        item.get("session_status") != state.status
        or list(item.get("pull_request_urls") or []) != list(state.pull_request_urls)
        or (state.acus_consumed is not None and item.get("acus_consumed") != acus(state.acus_consumed))
    )


def _wanted_notes(item: Mapping[str, Any], state: SessionState | None) -> list[NoteText]:
    wanted = []
    if not item.get("session_note_posted_at"):
        session = recorded_session(item)
        wanted.append(session_note(session.url, session.session_id))
    posted = set(item.get("pull_request_notes_posted") or ())
    urls = state.pull_request_urls if state is not None else tuple(item.get("pull_request_urls") or ())
    wanted.extend(pull_request_note(url) for url in urls if url not in posted)
    return wanted
