"""The scheduled follow-up: reads each open session until it has ended, records what Devin says about it, and puts
each of its pull requests on the PagerDuty incident exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aws_lambda_powertools import Logger

from .devin import DevinClient, DevinError, SessionNotFound, SessionState
from .ledger import NOT_FOUND, Ledger, LedgerUnavailable, acus, recorded_session
from .notes import NoteText, pull_request_note, session_note
from .postmortem import FAILED, NoteWriter, post_notes

logger = Logger(child=True)

# Devin's statuses for a session that will do nothing more (devin-api.md §2).
ENDED = frozenset({"exit", "error"})
# One session's reads get at most this long, so that one slow answer cannot eat the whole run.
SESSION_SECONDS = 10.0


@dataclass
class Report:
    followed: int = 0  # open sessions looked at
    updated: int = 0  # of which something was recorded or posted
    failed: int = 0  # of which something could not be read, recorded or posted (tried again next run)
    stopped: int = 0  # of which no longer followed: ended, vanished or too old
    left: int = 0  # not reached before the run's time ran out (next run)

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
) -> Report:
    """Follow every open session once; one failing incident never stops the others."""
    report = Report()
    for item in ledger.open_sessions():
        if clock() + SESSION_SECONDS > deadline:
            report.left += 1
            continue
        report.followed += 1
        session_deadline = min(deadline, clock() + SESSION_SECONDS)
        try:
            updated, stopped, ok = _follow(item, ledger, devin, notes, follow_up_days, session_deadline, now())
        except LedgerUnavailable:
            logger.exception("could not record what the follow-up read", extra={"incident_id": item["incident_id"]})
            report.failed += 1
            continue
        report.updated += updated
        report.stopped += stopped
        report.failed += not ok
    return report


def _follow(
    item: Mapping[str, Any],
    ledger: Ledger,
    devin: DevinClient,
    notes: NoteWriter | None,
    follow_up_days: float,
    deadline: float,
    now: float,
) -> tuple[bool, bool, bool]:
    """(something recorded or posted, no longer followed, nothing failed) for one ledger item."""
    incident_id = str(item["incident_id"])
    session_id = str(item["session_id"])
    too_old = now - float(item.get("session_recorded_epoch", now)) > follow_up_days * 86400
    state: SessionState | None = None
    ok = True
    if too_old:
        ledger.record_follow(incident_id, None, stop=True)
        stopped = updated = True
    else:
        try:
            state = devin.get_session(session_id, deadline)
        except SessionNotFound:
            logger.warning("Devin no longer has the session", extra={"incident_id": incident_id})
            ledger.record_follow(incident_id, None, stop=True, status=NOT_FOUND)
            stopped = updated = True
            ok = False
        except DevinError as error:
            logger.warning(
                "could not read the session from Devin",
                extra={"incident_id": incident_id, "error": type(error).__name__},
            )
            stopped = updated = False
            ok = False
        else:
            stopped = state.status in ENDED
            updated = _changed(item, state) or stopped
            ledger.record_follow(incident_id, state, stop=stopped)
    if notes is not None:
        wanted = _wanted_notes(item, state)
        if wanted:
            # A missing session note is posted whatever the Devin read answered.
            result = post_notes(ledger, notes, incident_id, wanted)
            updated = updated or result == "posted"
            ok = ok and result != FAILED
    return updated, stopped, ok


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
