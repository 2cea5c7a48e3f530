"""The scheduled follow-up: reads each open session, does what its status means (devin/session.py: keep following,
done, waiting for a person, stopped for billing or quota, failed), records what Devin says about it, puts each of
its pull requests on the PagerDuty incident exactly once, and, when the session is done with a valid structured
result after the incident's resolve reached it, the postmortem's summary too, exactly once per follow-up episode."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from .devin.client import DevinClient, DevinError, DevinOutcomeUnknown, DevinUnreadable, SessionNotFound
from .devin.prompt import RESULT_REMINDER
from .devin.session import DONE, FAILED, STOPPED, WAITING, SessionState, phase, stopped_words
from .ledger import (
    DELIVERED_EPOCH,
    EPISODE,
    NOT_FOUND,
    STATUS_DETAIL,
    SUMMARY_DIGEST,
    Ledger,
    LedgerUnavailable,
    acus,
    iso_time,
    plain,
    recorded_session,
)
from .pagerduty.notes import (
    Heading,
    NoteText,
    pull_request_note,
    result_digest,
    session_note,
    stopped_note,
    summary_note,
    waiting_note,
)
from .postmortem import FAILED as NOTE_FAILED
from .postmortem import POSTED, NoteWriter, post_notes
from .result import schema as results
from .result.links import LinkPolicy
from .result.rubric import grade, not_covered
from .scrub import Scrubber
from .text import clean_text

logger = Logger(child=True)

# What the follow-up made of a session's structured result (the item's result_status).
VALID = "valid"
INVALID = "invalid"
MISSING = "missing"  # the session is done and gave none, though it was created with a schema
UNPROCESSABLE = "unprocessable"  # the follow-up failed the same way on it GIVE_UP_AFTER runs in a row, and gave up
# A session on which the follow-up fails the same way this many runs in a row (an answer it cannot read, an error
# of its own) leaves the index: it must not cost every run its time until FollowUpDays. Devin or PagerDuty being
# unavailable is not counted: that is tried again until FollowUpDays.
GIVE_UP_AFTER = 3
FAILURE_KIND = "follow_failure"
NO_SECRETS = Scrubber()  # still scrubs tokens by their shapes
DEFAULT_LINKS = LinkPolicy()
FAILURE_COUNT = "follow_failures"
# One session's reads get at most this long, so that one slow answer cannot eat the whole run.
SESSION_SECONDS = 10.0
# A session that got a message is taken to have seen it once it reports an update made after the message went out
# (updated_at), or, should Devin not report one (UNCONFIRMED that a message moves updated_at), after this long:
# until then what it reports may be from before the message, an early result among it.
SETTLE_SECONDS = 600
# Resolving and reopening: the events that say whether the incident is resolved now.
RESOLVED = "incident.resolved"
REOPENED = "incident.reopened"
# The spells of a session that the follow-up tells the incident about, one note each: the ledger attribute that
# counts them and the phases that make one.
WAITING_SPELLS = "waiting_spells"
STOPPED_SPELLS = "stopped_spells"
_SPELLS = {WAITING_SPELLS: (WAITING,), STOPPED_SPELLS: (STOPPED, FAILED)}


@dataclass
class Report:
    followed: int = 0  # open sessions looked at
    updated: int = 0  # of which something was recorded or posted
    failed: int = 0  # of which something could not be read, recorded or posted (tried again next run)
    stopped: int = 0  # of which no longer followed: done, failed, vanished or too old
    left: int = 0  # not reached before the run's time ran out (next run)
    # Structured results newly recorded as valid, invalid or missing in this run.
    results_valid: int = 0
    results_invalid: int = 0
    results_missing: int = 0
    # Sessions newly found waiting for a person, stopped for billing, quota or a usage limit, or failed.
    sessions_waiting: int = 0
    sessions_stopped: int = 0
    sessions_failed: int = 0
    # Links a session gave that the bridge does not pass on (not https, not an allowed host, not a pull request's).
    links_dropped: int = 0
    # Sessions given up after failing the same way GIVE_UP_AFTER runs in a row (result_status unprocessable).
    given_up: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Read:
    """What one follow-up read of an item came to."""

    updated: bool = False
    stopped: bool = False
    ok: bool = True
    verdict: str | None = None  # VALID, INVALID or MISSING when the result's verdict changed
    began: str | None = None  # WAITING, STOPPED or FAILED when a spell of one began
    links_dropped: int = 0


@dataclass(frozen=True)
class _Run:
    """What one follow-up run works with."""

    ledger: Ledger
    devin: DevinClient
    notes: NoteWriter | None
    follow_up_days: float
    scrubber: Scrubber
    links: LinkPolicy
    ask_for_result: bool


def follow_up(
    *,
    ledger: Ledger,
    devin: DevinClient,
    notes: NoteWriter | None,
    follow_up_days: float,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
    scrubber: Scrubber = NO_SECRETS,
    links: LinkPolicy = DEFAULT_LINKS,
    ask_for_result: bool = False,
) -> Report:
    """Follow every open session once; one failing session never stops the others, and one that fails the same way
    run after run is given up. `scrubber` holds the bridge's secrets: everything a session gives back is normalised
    and scrubbed before anything of it is kept or posted; `links` says which of its links may reach the incident.
    With `ask_for_result` a session that is done without its structured result is asked once for it (a message
    resumes it: it costs ACUs)."""
    run = _Run(ledger, devin, notes, follow_up_days, scrubber, links, ask_for_result)
    report = Report()
    for item in ledger.open_sessions():
        if clock() + SESSION_SECONDS > deadline:
            report.left += 1
            continue
        report.followed += 1
        session_deadline = min(deadline, clock() + SESSION_SECONDS)
        incident_id = str(item.get("incident_id"))
        try:
            read = _follow(item, run, session_deadline, now())
        except LedgerUnavailable:
            logger.exception("could not record what the follow-up read", extra={"incident_id": incident_id})
            report.failed += 1
            continue
        except Exception as error:  # noqa: BLE001 - whatever one session does, the others are followed
            logger.exception("the follow-up failed on a session", extra={"incident_id": incident_id})
            report.failed += 1
            report.given_up += _failed(item, run, type(error).__name__)
            continue
        report.updated += read.updated
        report.stopped += read.stopped
        report.failed += not read.ok
        report.links_dropped += read.links_dropped
        if read.verdict is not None:
            setattr(report, f"results_{read.verdict}", getattr(report, f"results_{read.verdict}") + 1)
        if read.began is not None:
            name = {WAITING: "sessions_waiting", STOPPED: "sessions_stopped", FAILED: "sessions_failed"}[read.began]
            setattr(report, name, getattr(report, name) + 1)
    return report


def _failed(item: Mapping[str, Any], run: _Run, kind: str) -> bool:
    """Count a failure of `kind` on the item; give the session up (True) when it is the same GIVE_UP_AFTER times in a
    row. Never raises: a ledger that cannot record it leaves the count as it was."""
    count = int(item.get(FAILURE_COUNT) or 0) + 1 if item.get(FAILURE_KIND) == kind else 1
    incident_id = str(item.get("incident_id"))
    give_up = count >= GIVE_UP_AFTER
    values: dict[str, Any] = {FAILURE_KIND: kind, FAILURE_COUNT: count}
    if give_up:
        logger.error("the follow-up gives the session up", extra={"incident_id": incident_id, "failure": kind})
        values.update(
            result_status=UNPROCESSABLE,
            result_error=f"the follow-up failed on this session {count} runs in a row ({clean_text(kind, 100)})",
        )
    try:
        run.ledger.record_follow(incident_id, None, stop=give_up, values=values, delivered=item.get(DELIVERED_EPOCH))
    except Exception:  # noqa: BLE001 - the failure is logged above; the next run counts again
        logger.exception("could not record the follow-up's failure", extra={"incident_id": incident_id})
        return False
    return give_up


def last_delivered(item: Mapping[str, Any], now: float) -> float:
    """When the last event reached the session: its start, or the last message forwarded to it."""
    return max(float(item.get("session_recorded_epoch", now)), float(item.get(DELIVERED_EPOCH) or 0))


def resolved_for_session(item: Mapping[str, Any]) -> bool:
    """Whether the incident is resolved as far as its session knows: it started on the resolve, or the resolve was
    forwarded to it, and no reopening came after. (An item that does not say what started it is taken to have
    started on a resolve, the default and only start before early starts existed.)"""
    last = item.get("event_type") or RESOLVED
    for forwarded in item.get("forwarded") or ():
        kind = forwarded.get("event_type") if isinstance(forwarded, Mapping) else None
        if kind in (RESOLVED, REOPENED):
            last = kind
    return last == RESOLVED


def _settled(item: Mapping[str, Any], state: SessionState, now: float) -> bool:
    """Whether what the session reports can be taken as its answer to the last message it got."""
    sent = item.get(DELIVERED_EPOCH)
    if sent is None:
        return True
    return (state.updated_at is not None and state.updated_at >= float(sent)) or now - float(sent) >= SETTLE_SECONDS


def _follow(item: Mapping[str, Any], run: _Run, deadline: float, now: float) -> _Read:
    ledger, notes = run.ledger, run.notes
    incident_id = str(item["incident_id"])
    session_id = str(item["session_id"])
    delivered = item.get(DELIVERED_EPOCH)
    if now - last_delivered(item, now) > run.follow_up_days * 86400:
        ledger.record_follow(incident_id, None, stop=True, delivered=delivered)
        return _Read(updated=True, stopped=True, ok=_post_missing(item, run) != NOTE_FAILED)
    try:
        raw = run.devin.get_session(session_id, deadline)
    except SessionNotFound:
        logger.warning("Devin no longer has the session", extra={"incident_id": incident_id})
        ledger.record_follow(incident_id, None, stop=True, status=NOT_FOUND, delivered=delivered)
        _post_missing(item, run)
        return _Read(updated=True, stopped=True, ok=False)
    except DevinUnreadable:
        raise  # the same answer again next run is no outage: counted towards giving the session up
    except DevinError as error:
        logger.warning(
            "could not read the session from Devin", extra={"incident_id": incident_id, "error": type(error).__name__}
        )
        return _Read(updated=_post_missing(item, run) == POSTED, ok=False)
    state, dropped = _trusted(raw, run)

    current = state.phase
    done = current == DONE and resolved_for_session(item) and _settled(item, state, now)
    values: dict[str, Any] = {}
    if done and run.ask_for_result and _owes_result(item, state):
        asked = _ask_for_result(item, run.devin, deadline, now)
        if asked is not None:
            values.update(asked)
            done = False  # it works on the reminder now; its answer is read by a later run
    outcome = _result(item, state, run.scrubber, run.links, ended=done or current == FAILED)
    wanted = _wanted_notes(item, state, run.links)
    began = None
    for attribute, phases in _SPELLS.items():
        if current in phases:
            spell, new = _spell(item, attribute, phases)
            values[attribute] = spell
            began = current if new else None
            link = recorded_session(item)
            if current == WAITING:
                wanted.append(waiting_note(link.url, link.session_id, spell))
            else:
                wanted.append(stopped_note(link.url, link.session_id, stopped_words(state), spell))
    summary = _summary(item, state, outcome) if done else None
    if summary is not None:
        wanted.append(summary)
    posted = None
    if notes is not None and wanted:
        # A missing session note is posted whatever else the read says.
        posted = post_notes(ledger, notes, incident_id, wanted)
    # A done or failed session leaves the index, unless a note it owes (its summary, a pull request's) is still to be
    # posted: then it stays until the note is posted or the session is too old to follow.
    notes_done = notes is None or posted in (POSTED, None)
    stopped = (done or current == FAILED) and notes_done
    updated = _changed(item, state) or stopped or posted == POSTED or outcome.verdict is not None or began is not None
    forget = (*outcome.forget, FAILURE_KIND, FAILURE_COUNT) if item.get(FAILURE_KIND) else outcome.forget
    ledger.record_follow(
        incident_id, state, stop=stopped, result=outcome.values, forget=forget, values=values, delivered=delivered
    )
    if began is not None:
        logger.warning(
            "the session needs attention",
            extra={"incident_id": incident_id, "phase": began, "session_status_detail": state.status_detail},
        )
    return _Read(updated, stopped, posted != NOTE_FAILED, outcome.verdict, began, dropped + outcome.links_dropped)


def _trusted(state: SessionState, run: _Run) -> tuple[SessionState, int]:
    """The session as the bridge may pass it on: its pull request links scrubbed, and only those the link policy
    allows (how many were dropped). Its structured output is scrubbed where it is read (_result)."""
    kept: dict[str, None] = {}
    for url in state.pull_request_urls:
        # Rebuilt from its parts first (no user, password, query or fragment), then scrubbed: a link that still
        # carries something of a secret's shape is not passed on at all.
        allowed = run.links.pull_request(url)
        if allowed is not None and run.scrubber.text(allowed) == allowed:
            kept[allowed] = None
    dropped = len(state.pull_request_urls) - len(kept)
    if dropped:
        logger.warning("links the session gave were not passed on", extra={"dropped": dropped})
    return replace(state, pull_request_urls=tuple(kept)), dropped


def _spell(item: Mapping[str, Any], attribute: str, phases: tuple[str, ...]) -> tuple[int, bool]:
    """(the number of the session's current spell of `phases`, whether it began since the last read)."""
    count = int(item.get(attribute) or 0)
    was = item.get("session_status")
    ongoing = was is not None and phase(str(was), item.get(STATUS_DETAIL)) in phases
    return (count, False) if ongoing and count else (count + 1, True)


def _owes_result(item: Mapping[str, Any], state: SessionState) -> bool:
    """Done without the structured result it was created for, and not asked for it yet."""
    return (
        state.structured_output is None
        and bool(item.get("result_schema"))
        and item.get("result_status") is None
        and not item.get("result_requested_at")
    )


def _ask_for_result(item: Mapping[str, Any], devin: DevinClient, deadline: float, now: float) -> dict[str, Any] | None:
    """Ask the session once for its structured result; what the ledger keeps of the asking, or None when it could
    not be sent (the next run tries again, or records the result missing when it is too late)."""
    try:
        devin.send_message(str(item["session_id"]), RESULT_REMINDER, deadline)
    except DevinOutcomeUnknown:
        pass  # it may have arrived: asked, never twice
    except DevinError as error:
        logger.warning("could not ask the session for its result", extra={"error": type(error).__name__})
        return None
    return {"result_requested_at": iso_time(now), DELIVERED_EPOCH: int(now)}


def _post_missing(item: Mapping[str, Any], run: _Run) -> str | None:
    """Post the notes the item still lacks when the session could not be read (post_notes' answer, or None)."""
    wanted = _wanted_notes(item, None, run.links)
    if run.notes is None or not wanted:
        return None
    return post_notes(run.ledger, run.notes, str(item["incident_id"]), wanted)


@dataclass(frozen=True)
class _Outcome:
    """What one read of a session's structured result changes in its ledger item."""

    values: Mapping[str, Any]
    forget: tuple[str, ...] = ()
    verdict: str | None = None  # VALID, INVALID or MISSING when it changed; None when nothing new
    compact: Mapping[str, Any] | None = None  # the valid result's compact copy (this read's or an earlier one's)
    score: str | None = None
    evidence: Mapping[str, Any] | None = None  # {"cited": n, "unknown": [ids]} when the data block's ids are known
    not_covered: tuple[str, ...] | None = None  # what the rubric finds missing, in words (None: not known)
    links_dropped: int = 0


def _result(
    item: Mapping[str, Any], state: SessionState, scrubber: Scrubber, links: LinkPolicy, *, ended: bool
) -> _Outcome:
    """What the session's structured result changes in the item; `ended`: the session is done or failed, so a
    result it has not given is missing. The result is bounded and scrubbed before anything else reads it."""
    schema = str(item.get("result_schema") or results.DEFAULT_SCHEMA)
    earlier = item.get("postmortem_result") if item.get("result_status") == VALID else None
    try:
        output = results.scrubbed(state.structured_output, scrubber.text)
    except results.Unreadable as why:
        return _invalid(item, str(why))
    if output is None:
        if ended and item.get("result_schema") and item.get("result_status") is None:
            logger.warning("the session is done and gave no structured result", extra={"session_status": state.status})
            return _Outcome({"result_status": MISSING}, verdict=MISSING)
        return _Outcome(
            {},
            compact=plain(earlier),
            score=item.get("result_score"),
            evidence=plain(item.get("result_evidence")),
            not_covered=_known_gaps(item),
        )
    version = int(item.get("result_schema_version") or 1)  # items from before versions were recorded: version 1
    error = results.validation_error(output, schema, version)
    if error is not None:
        return _invalid(item, error)
    compact = results.compact(output)
    if compact.get("pull_request_url") not in (None, *state.pull_request_urls):
        # The free-text link is kept only when it is one the session itself reports.
        del compact["pull_request_url"]
    dropped = _pages_only_where_the_rule_says(
        compact, replace(links, page_hosts=frozenset(item.get("link_hosts") or ()))
    )
    graded = grade(result=output, computed=plain(item.get("computed")) or None)
    score = graded.score
    missing = not_covered(graded)
    values: dict[str, Any] = {
        "result_status": VALID,
        "postmortem_result": compact,
        "result_score": score,
        "result_not_covered": list(missing),
    }
    evidence = None
    if item.get("evidence_ids"):
        # Checked against what the data block held: a cited id it never held is made up or mistyped.
        cited, unknown = results.evidence_check(output, list(item["evidence_ids"]))
        evidence = {"cited": cited, "unknown": [clean_text(ref, 100) for ref in unknown[: results.MAX_ITEMS]]}
        values["result_evidence"] = evidence
    changed = any(plain(item.get(name)) != value for name, value in values.items())
    return _Outcome(
        values,
        forget=("result_error",),
        verdict=VALID if changed else None,
        compact=compact,
        score=score,
        evidence=evidence,
        not_covered=missing,
        links_dropped=dropped,
    )


def _pages_only_where_the_rule_says(compact: dict[str, Any], policy: LinkPolicy) -> int:
    """Keep the page and ticket links of a compact result that are on the hosts its routing rule names (the wiki it
    publishes to, the tracker of its action items); drop the others, and say how many."""
    dropped = 0
    for holder, name in [(compact, "document_url"), *((item, "tracking_url") for item in compact["action_items"])]:
        if name not in holder:
            continue
        allowed = policy.page(holder[name])
        if allowed is None:
            del holder[name]
            dropped += 1
        else:
            holder[name] = allowed
    return dropped


def _known_gaps(item: Mapping[str, Any]) -> tuple[str, ...] | None:
    gaps = item.get("result_not_covered")
    return tuple(str(gap) for gap in gaps) if isinstance(gaps, list | tuple) else None


def _invalid(item: Mapping[str, Any], error: str) -> _Outcome:
    changed = item.get("result_status") != INVALID or item.get("result_error") != error
    if changed:
        logger.warning("the session's structured result is invalid", extra={"error": error})
    # No summary from an invalid result, even when an earlier one was valid: the session is rewriting it. The
    # earlier compact copy stays in the item for whoever looks.
    return _Outcome({"result_status": INVALID, "result_error": error}, verdict=INVALID if changed else None)


def _summary(item: Mapping[str, Any], state: SessionState, outcome: _Outcome) -> NoteText | None:
    """The summary note of a done session's valid result: the first one, or, when one was posted in an earlier
    follow-up episode and the result has changed since, one "updated" note for this episode."""
    if outcome.compact is None:
        return None
    episode = int(item.get(EPISODE) or 1)
    first = not item.get("summary_note_posted_at")
    if not first and (episode < 2 or item.get(SUMMARY_DIGEST) == result_digest(outcome.compact)):
        return None
    return summary_note(
        outcome.compact,
        state.pull_request_urls,
        _heading(item),
        outcome.not_covered,
        outcome.evidence,
        change_links=plain(item.get("change_links")) or None,
        update=None if first else episode,
    )


def _heading(item: Mapping[str, Any]) -> Heading:
    """The incident as the ledger recorded it from PagerDuty, and how long it took: the bridge's computed figure,
    else the time between its creation and its resolve."""
    computed = plain(item.get("computed")) or {}
    seconds = computed.get("seconds_to_resolve") if isinstance(computed, Mapping) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        seconds = _between(item.get("created_at"), item.get("resolved_at"))
    return Heading(
        title=str(item.get("title") or ""),
        priority=item.get("priority") if isinstance(item.get("priority"), str) else None,
        urgency=str(item.get("urgency") or ""),
        seconds_to_resolve=seconds,
    )


def _between(start: Any, end: Any) -> float | None:
    try:
        began = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        ended = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    if began.tzinfo is None or ended.tzinfo is None:
        return None
    return (ended - began).total_seconds()


def _changed(item: Mapping[str, Any], state: SessionState) -> bool:
    return (
        item.get("session_status") != state.status
        or item.get(STATUS_DETAIL) != state.status_detail
        or list(item.get("pull_request_urls") or []) != list(state.pull_request_urls)
        or (state.acus_consumed is not None and item.get("acus_consumed") != acus(state.acus_consumed))
    )


def _wanted_notes(item: Mapping[str, Any], state: SessionState | None, links: LinkPolicy) -> list[NoteText]:
    """The session note, if it is still missing, and a note for each pull request not posted yet (from the state
    just read, already checked; else from the item, checked again: it may have been written before the checks)."""
    wanted = []
    if not item.get("session_note_posted_at"):
        session = recorded_session(item)
        wanted.append(session_note(session.url, session.session_id))
    posted = set(item.get("pull_request_notes_posted") or ())
    if state is not None:
        urls: tuple[str, ...] = state.pull_request_urls
    else:
        urls = tuple(filter(None, map(links.pull_request, item.get("pull_request_urls") or ())))
    wanted.extend(pull_request_note(url) for url in urls if url not in posted)
    return wanted
