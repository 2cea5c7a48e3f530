"""The one place that orders claim → call → record: exactly one Devin session per incident, and exactly one of
each note the bridge puts on the PagerDuty incident."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from .devin.client import (
    DevinClient,
    DevinError,
    DevinOutcomeUnknown,
    DevinRejected,
    DevinUnavailable,
    SessionNotFound,
)
from .devin.prompt import SessionRequest, event_mark, incident_tag
from .devin.session import Session
from .errors import DevinOutage, DevinRefused, IncidentInFlight
from .ledger import (
    NOT_FOUND,
    PAGERDUTY_USER,
    STARTED,
    UNKNOWN,
    Claim,
    Held,
    Lease,
    Ledger,
    LedgerUnavailable,
    Recorded,
    Refused,
    note_recorded,
    recorded_session,
)
from .pagerduty.client import PagerDutyClient, PagerDutyError, PagerDutyOutcomeUnknown
from .pagerduty.notes import NoteText, has_marker, session_note
from .webhook.event import Incident, WebhookEvent
from .webhook.policy import NO_SESSION, RESOLVED, SESSION_GONE, Ignored

logger = Logger(child=True)

# Devin may still be creating a session when its answer is lost (our call timed out first), so a lookup made
# soon after can miss a session that is about to appear. For this long after an outcome was lost, a lookup
# that finds nothing answers 503 rather than creating: PagerDuty's retry looks again. (DEVIN_SETTLE_SECONDS)
SETTLE_SECONDS = 60
# A note post's own timeout, at most: the note must not hold the answer of the delivery that posts it.
NOTE_SECONDS = 2.0
# With less time than this left for PagerDuty, a note is left for a later delivery or the follow-up.
MIN_NOTE_SECONDS = 0.5

# What happened to the notes a delivery wanted to post (Outcome.notes).
POSTED = "posted"
FAILED = "failed"  # PagerDuty refused or failed, or the ledger could not record it: a later attempt posts it
HELD = "held"  # someone else holds the incident right now: a later attempt posts it
DEFERRED = "deferred"  # too little time was left for PagerDuty in this delivery: a later attempt posts it


@dataclass(frozen=True)
class Outcome:
    status: str  # "started", "duplicate", "messaged" or "ignored"
    incident_id: str
    session: Session | None
    notes: str | None = None  # POSTED, FAILED, HELD or DEFERRED; None when there was nothing to post
    ignored: Ignored | None = None  # why, when "ignored"


@dataclass(frozen=True)
class Forwarding:
    """How a delivery's event reaches the incident's existing session as a message."""

    # Its type is in FOLLOW_UP_EVENT_TYPES; else it is incident.resolved, forwarded only to an early session.
    always: bool
    # The message for the incident's ledger item as it stands (it says when the session started, what came before).
    compose: Callable[[Mapping[str, Any]], str]
    lease_seconds: float
    # Put the item back in the follow-up's index (the deployment follows sessions: it has the PagerDuty key).
    follow: bool = False


@dataclass(frozen=True)
class NoteWriter:
    """Posts the bridge's notes on PagerDuty incidents: configured when the PagerDuty key and from-email are."""

    pagerduty: PagerDutyClient
    lease_seconds: float
    post_seconds: float = NOTE_SECONDS
    clock: Callable[[], float] = time.monotonic
    # How long this delivery's PagerDuty calls may still take in all (the reads took their share already), so that
    # reads and note together leave the answer well inside PagerDuty's 5 s apart from Devin's own time.
    time_left: Callable[[], float] | None = None

    def call_seconds(self) -> float:
        return self.post_seconds if self.time_left is None else min(self.post_seconds, self.time_left())


class _StillSettling(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after} s")
        self.retry_after = retry_after


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
    forwarding: Forwarding | None = None,
) -> Outcome:
    """Claim the incident, start its session (`compose` writes the request, only when one is about to be created),
    record it, then post the session note when `notes` is given. `follow` puts it in the follow-up's index. When
    the incident has its session already, the event is forwarded to it if `forwarding` says so, else a duplicate."""
    claim = ledger.claim(incident, event, lease_seconds)
    if isinstance(claim, Recorded):
        if forwarding is not None:
            return forward_event(
                event,
                incident.id,
                forwarding,
                ledger=ledger,
                devin=devin,
                deadline=deadline,
                notes=notes,
                known=claim.item,
            )
        return _duplicate(ledger, notes, incident.id, claim.item)
    if isinstance(claim, Held):
        raise IncidentInFlight("another delivery for this incident is in progress", retry_after=claim.retry_after)

    session = _guarded(ledger, claim, lambda: _earlier_session(claim, devin, deadline, settle_seconds, clock))
    request: SessionRequest | None = None
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
            claim,
            session,
            follow=follow,
            hold_seconds=notes.lease_seconds if notes is not None else None,
            # Only the follow-up reads them, and it runs only with the PagerDuty key (as `follow`).
            details=request.ledger_details() if request is not None and follow else None,
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


def forward_event(
    event: WebhookEvent,
    incident_id: str,
    forwarding: Forwarding,
    *,
    ledger: Ledger,
    devin: DevinClient,
    deadline: float,
    notes: NoteWriter | None = None,
    not_started: Ignored | None = None,
    known: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Take the started incident, send `event` to its session as a message, record it: exactly once per event id.

    `known` is the item when the caller has just read it; `not_started` says why this delivery does not start a
    session itself (the answer when the incident has none).
    """
    if known is not None and (verdict := _verdict(known, event, forwarding)) is not None:
        return _not_forwarded(verdict, ledger, notes, incident_id, known)
    lease = ledger.forward_lease(incident_id, event, forwarding.lease_seconds, early_only=not forwarding.always)
    if isinstance(lease, Refused):
        item = lease.item
        if not item:
            why = not_started or Ignored(f"the incident has no session and {event.event_type} does not start one")
            return Outcome("ignored", incident_id, None, ignored=Ignored(why.reason, NO_SESSION))
        if item.get("status") != STARTED:
            # A start is in flight, or its outcome unknown: the session may be about to exist.
            wait = max(lease.retry_after, 5) if item.get("status") == UNKNOWN else lease.retry_after
            raise IncidentInFlight("the incident's session is being started", retry_after=wait)
        verdict = _verdict(item, event, forwarding)
        if verdict is None:
            raise IncidentInFlight("another delivery for this incident is in progress", retry_after=lease.retry_after)
        return _not_forwarded(verdict, ledger, notes, incident_id, item)

    session = recorded_session(lease.item)
    repeat = event.id in lease.item.get("forwards_unconfirmed", ())
    try:
        if repeat and _received(devin, session.session_id, event, deadline):
            logger.info("the session received the message whose answer was lost; not sent again")
            ledger.record_forward(lease, event, follow=forwarding.follow)
            return Outcome("messaged", incident_id, session)
        text = forwarding.compose(lease.item)
        sent_at = clock()
        devin.send_message(session.session_id, text, deadline)
    except SessionNotFound:
        logger.warning("Devin no longer has the incident's session", extra={"session_id": session.session_id})
        ledger.session_gone(lease)
        return Outcome("ignored", incident_id, session, ignored=_GONE)
    except DevinOutcomeUnknown as error:
        if repeat:
            # This was the one repeat a lost answer allows: recorded, never sent a third time.
            logger.warning("Devin's answer to a repeated message was lost too; recorded as sent")
            ledger.record_forward(lease, event, confirmed=False, sent_at=sent_at, follow=forwarding.follow)
            return Outcome("messaged", incident_id, session)
        _release_after(ledger.forward_unconfirmed, lease, event)
        raise DevinOutage(
            "Devin's answer to the message was lost; the retry looks for it before sending it again", retry_after=5
        ) from error
    except DevinUnavailable as error:
        _release(ledger, lease)
        raise DevinOutage("Devin API unavailable", retry_after=error.retry_after or 30) from error
    except DevinRejected as error:
        _release(ledger, lease)
        raise DevinRefused(str(error)) from error
    except BaseException:
        _release(ledger, lease)
        raise
    ledger.record_forward(lease, event, sent_at=sent_at, follow=forwarding.follow)
    return Outcome("messaged", incident_id, session)


def _received(devin: DevinClient, session_id: str, event: WebhookEvent, deadline: float) -> bool:
    """Whether the session's messages already hold the one forwarding `event` (its answer was lost). When they
    cannot be read, False: the message is sent once more, which is the one repeat a lost answer allows."""
    try:
        messages = devin.messages(session_id, deadline)
    except DevinError as error:
        logger.warning(
            "could not read the session's messages; sending once more", extra={"error": type(error).__name__}
        )
        return False
    mark = event_mark(event.id)
    return any(message.startswith(mark) for message in messages)


_GONE = Ignored("the incident's Devin session no longer exists", SESSION_GONE)


def _verdict(item: Mapping[str, Any], event: WebhookEvent, forwarding: Forwarding) -> str | None:
    """Why `event` is not forwarded to the item's session ("duplicate" or "gone"), or None: it may be."""
    if event.id == item.get("event_id") or event.id in item.get("forwarded_event_ids", ()):
        return "duplicate"
    if item.get("session_status") == NOT_FOUND:
        return "gone"
    if not forwarding.always and item.get("event_type") == RESOLVED:
        # incident.resolved goes only to a session that started early; this one started on a resolve.
        return "duplicate"
    return None


def _not_forwarded(
    verdict: str, ledger: Ledger, notes: NoteWriter | None, incident_id: str, item: Mapping[str, Any]
) -> Outcome:
    if verdict == "gone":
        return Outcome("ignored", incident_id, recorded_session(item), ignored=_GONE)
    return _duplicate(ledger, notes, incident_id, item)


def _duplicate(ledger: Ledger, notes: NoteWriter | None, incident_id: str, item: Mapping[str, Any]) -> Outcome:
    """The incident has its session: answer with it, and post its note if a failure left it missing."""
    session = recorded_session(item)
    posted = None
    if notes is not None and not item.get("session_note_posted_at"):
        posted = post_notes(ledger, notes, incident_id, [session_note(session.url, session.session_id)])
    return Outcome("duplicate", incident_id, session, posted)


def _release_after[A](step: Callable[[Lease, A], None], lease: Lease, argument: A) -> None:
    try:
        step(lease, argument)
    except LedgerUnavailable:
        logger.exception("could not record the message's state; the incident's lease runs out instead")


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
    missing = [note for note in wanted if not note_recorded(lease.item, note)]
    # Posted before without being recorded: by a post whose answer was lost, or by a holder that died after it.
    unsure = set(lease.item.get("notes_unconfirmed", ()))
    if lease.taken_over:
        unsure |= {note.marker for note in missing}
    if missing and writer.call_seconds() < MIN_NOTE_SECONDS:
        logger.info("too little time left for PagerDuty in this delivery; the note is left for a later one")
        _release(ledger, lease)
        return DEFERRED
    existing = None
    try:
        for index, note in enumerate(missing):
            last = index == len(missing) - 1
            if note.marker in unsure:
                if existing is None:
                    existing = writer.pagerduty.notes(lease.incident_id, writer.clock() + writer.call_seconds())
                if has_marker(existing, note.marker, user_id=lease.item.get(PAGERDUTY_USER)):
                    ledger.note_posted(lease, note, release=last)
                    continue
            try:
                created = writer.pagerduty.post_note(
                    lease.incident_id, note.content, writer.clock() + writer.call_seconds()
                )
            except PagerDutyOutcomeUnknown:
                logger.warning("a note's post was sent but its answer was lost; the next attempt looks for it first")
                ledger.note_unconfirmed(lease, note.marker, release=True)
                return FAILED
            ledger.note_posted(lease, note, release=last, user_id=_author(created))
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


def _author(note: Mapping[str, Any]) -> str | None:
    """The PagerDuty user a note the bridge posted was written by: the bridge's own user, from then on the only one
    whose notes can carry its markers."""
    user = note.get("user")
    user_id = user.get("id") if isinstance(user, Mapping) else None
    return user_id if isinstance(user_id, str) and 0 < len(user_id) <= 64 else None


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
        raise DevinOutage(
            "an earlier attempt's session may still appear; the next delivery will look again",
            retry_after=settling.retry_after,
        ) from None
    except DevinOutcomeUnknown as error:
        _settle(ledger.mark_unknown, claim)
        raise DevinOutage(
            "Devin's answer was lost; the next delivery will look the session up", retry_after=5
        ) from error
    except DevinUnavailable as error:
        _settle(ledger.release, claim)
        raise DevinOutage("Devin API unavailable", retry_after=error.retry_after or 30) from error
    except DevinRejected as error:
        _settle(ledger.release, claim)
        raise DevinRefused(str(error)) from error
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
