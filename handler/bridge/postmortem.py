"""The one place that orders claim → call → record: exactly one Devin session per incident, and exactly one of
each note the bridge puts on the PagerDuty incident."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from .devin import DevinClient, DevinOutcomeUnknown, DevinRejected, DevinUnavailable, Session
from .errors import BridgeError, IncidentInFlight, Unavailable
from .ledger import Claim, Held, Lease, Ledger, LedgerUnavailable, Recorded
from .notes import NoteText, has_marker, session_note
from .pagerduty import Incident, WebhookEvent
from .pagerduty_rest import PagerDutyClient, PagerDutyError, PagerDutyOutcomeUnknown
from .prompt import SessionRequest, incident_tag

logger = Logger(child=True)

# Devin may still be creating a session when its answer is lost (our call timed out first), so a lookup made
# soon after can miss a session that is about to appear. For this long after an outcome was lost, a lookup
# that finds nothing answers 503 rather than creating: PagerDuty's retry looks again. (DEVIN_SETTLE_SECONDS)
SETTLE_SECONDS = 60
# A note post's own timeout: reads, note and Devin's time together must leave the answer inside PagerDuty's 5 s.
NOTE_SECONDS = 2.0

# What happened to the notes a delivery wanted to post (Outcome.notes).
POSTED = "posted"
FAILED = "failed"  # PagerDuty refused or failed, or the ledger could not record it: a later attempt posts it
HELD = "held"  # someone else holds the incident right now: a later attempt posts it


@dataclass(frozen=True)
class Outcome:
    status: str  # "started" or "duplicate"
    incident_id: str
    session: Session
    notes: str | None = None  # POSTED, FAILED or HELD; None when there was nothing to post


@dataclass(frozen=True)
class NoteWriter:
    """Posts the bridge's notes on PagerDuty incidents: configured when the PagerDuty key and from-email are."""

    pagerduty: PagerDutyClient
    lease_seconds: float
    post_seconds: float = NOTE_SECONDS
    clock: Callable[[], float] = time.monotonic


class _StillSettling(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after} s")
        self.retry_after = retry_after


class DevinFailed(BridgeError):
    """Devin refused the request (credentials, permissions, the request itself): an operator must act."""

    status_code = 502


def start_postmortem(
    incident: Incident,
    event: WebhookEvent,
    compose: Callable[[], SessionRequest],
    *,
    ledger: Ledger,
    devin: DevinClient,
    deadline: float,
    lease_seconds: float,
    settle_seconds: float = SETTLE_SECONDS,
    clock: Callable[[], float] = time.time,
    notes: NoteWriter | None = None,
    follow: bool = False,
) -> Outcome:
    """Claim the incident, start its session (`compose` writes the request, only when one is about to be created),
    record it, then post the session note when `notes` is given. `follow` puts it in the follow-up's index."""
    claim = ledger.claim(incident, event, lease_seconds)
    if isinstance(claim, Recorded):
        posted = None
        if notes is not None and not claim.item.get("session_note_posted_at"):
            posted = post_notes(ledger, notes, incident.id, [session_note(claim.session.url, claim.session.session_id)])
        return Outcome("duplicate", incident.id, claim.session, posted)
    if isinstance(claim, Held):
        raise IncidentInFlight("another delivery for this incident is in progress", retry_after=claim.retry_after)

    session = _guarded(ledger, claim, lambda: _earlier_session(claim, devin, deadline, settle_seconds, clock))
    if session is None:
        try:
            request = compose()
        except BaseException:
            # Nothing was sent to Devin: the incident goes back as it was.
            _settle(ledger.release, claim)
            raise
        session = _guarded(ledger, claim, lambda: devin.create_session(request, deadline))

    try:
        lease = ledger.record(
            claim, session, follow=follow, hold_seconds=notes.lease_seconds if notes is not None else None
        )
    except LedgerUnavailable:
        # The session exists but is not recorded. Flag it so that the retry looks it up instead of creating a
        # second one; if even that write fails, the claim's lease runs out and the retry after it looks it up.
        _settle(ledger.mark_unknown, claim)
        raise
    posted = None
    if notes is not None and lease is not None:
        posted = _post(ledger, notes, lease, [session_note(session.url, session.session_id)])
    return Outcome("started", incident.id, session, posted)


def post_notes(ledger: Ledger, writer: NoteWriter, incident_id: str, wanted: Sequence[NoteText]) -> str | None:
    """Post the notes of `wanted` that the incident does not have yet, holding its lease while doing so.

    Never raises for PagerDuty or the ledger: a note that could not be posted or recorded is left for a later
    delivery or the follow-up, and the answer of the delivery that tried stays what it was.
    """
    try:
        lease = ledger.lease(incident_id, writer.lease_seconds)
    except LedgerUnavailable:
        logger.exception("could not take the incident's lease to post a note")
        return FAILED
    if isinstance(lease, Held):
        return HELD
    return _post(ledger, writer, lease, wanted)


def _post(ledger: Ledger, writer: NoteWriter, lease: Lease, wanted: Sequence[NoteText]) -> str | None:
    posted_prs = set(lease.item.get("pull_request_notes_posted", ()))
    missing = [
        note
        for note in wanted
        if (note.pull_request not in posted_prs if note.pull_request else not lease.item.get("session_note_posted_at"))
    ]
    # Posted before without being recorded: by a post whose answer was lost, or by a holder that died after it.
    unsure = set(lease.item.get("notes_unconfirmed", ()))
    if lease.taken_over:
        unsure |= {note.marker for note in missing}
    existing = None
    try:
        for index, note in enumerate(missing):
            last = index == len(missing) - 1
            if note.marker in unsure:
                if existing is None:
                    existing = writer.pagerduty.notes(lease.incident_id, writer.clock() + writer.post_seconds)
                if has_marker(existing, note.marker):
                    ledger.note_posted(lease, note.marker, pull_request=note.pull_request, release=last)
                    continue
            try:
                writer.pagerduty.post_note(lease.incident_id, note.content, writer.clock() + writer.post_seconds)
            except PagerDutyOutcomeUnknown:
                logger.warning("a note's post was sent but its answer was lost; the next attempt looks for it first")
                ledger.note_unconfirmed(lease, note.marker, release=True)
                return FAILED
            ledger.note_posted(lease, note.marker, pull_request=note.pull_request, release=last)
    except PagerDutyError as error:
        logger.warning("could not post a note on the incident", extra={"reason": error.reason})
        _release(ledger, lease)
        return FAILED
    except LedgerUnavailable:
        logger.exception("a note was posted but could not be recorded; the next attempt looks for it first")
        return FAILED
    if not missing:
        _release(ledger, lease)
        return None
    return POSTED


def _release(ledger: Ledger, lease: Lease) -> None:
    try:
        ledger.release_lease(lease)
    except LedgerUnavailable:
        logger.exception("could not release the incident's lease; it runs out instead")


def _earlier_session(
    claim: Claim, devin: DevinClient, deadline: float, settle_seconds: float, clock: Callable[[], float]
) -> Session | None:
    """The session an earlier attempt may have created, when its outcome was lost; None means create one."""
    session = devin.find_session(incident_tag(claim.incident_id), deadline) if claim.reconcile else None
    if session is not None:
        logger.info("found the session of an earlier attempt", extra={"session_id": session.session_id})
    elif claim.lost_at is not None and (wait := claim.lost_at + settle_seconds - clock()) > 0:
        raise _StillSettling(math.ceil(wait))
    return session


def _guarded[T](ledger: Ledger, claim: Claim, call: Callable[[], T]) -> T:
    """Run a Devin call under the claim, and leave the ledger right for the retry whatever the call does."""
    try:
        return call()
    except _StillSettling as settling:
        _settle(ledger.mark_unknown, claim)
        raise Unavailable(
            "an earlier attempt's session may still appear; the next delivery will look again",
            retry_after=settling.retry_after,
        ) from None
    except DevinOutcomeUnknown as error:
        _settle(ledger.mark_unknown, claim)
        raise Unavailable(
            "Devin's answer was lost; the next delivery will look the session up", retry_after=5
        ) from error
    except DevinUnavailable as error:
        _settle(ledger.release, claim)
        raise Unavailable("Devin API unavailable", retry_after=error.retry_after or 30) from error
    except DevinRejected as error:
        _settle(ledger.release, claim)
        raise DevinFailed(str(error)) from error
    except BaseException:
        # Something unplanned, maybe after the create was sent: a session may exist, so the retry looks first.
        _settle(ledger.mark_unknown, claim)
        raise


def _settle(step: Callable[[Claim], None], claim: Claim) -> None:
    """Run a clean-up write whose failure must not hide the error being answered."""
    try:
        step(claim)
    except LedgerUnavailable:
        logger.exception("ledger clean-up failed; the claim's lease will expire instead")
