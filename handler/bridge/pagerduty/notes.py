"""The notes the bridge puts on a PagerDuty incident, each with a marker it can be recognised by.

PagerDuty notes have no idempotency key: when a post's answer is lost, the bridge looks for the note's marker
among the incident's notes before posting it again. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..text import echoed as _field

MARKER_PREFIX = "pagerduty-postmortem"
SESSION = "session"
PULL_REQUEST = "pull_request"
SUMMARY = "summary"
# A note there may be several of, one per waiting spell, stop or follow-up episode: recorded by its marker.
MARKED = "marked"

# PagerDuty documents no limit on a note's length (UNCONFIRMED: pagerduty-rest-api.md §3.5). The summary note stays
# well under what any tool around PagerDuty is seen to cap (1,024 for an event's summary, Slack's 4,000 for a
# message): short enough to read on a phone during the next incident.
SUMMARY_LIMIT = 3000
_LINE_LIMIT = 400


@dataclass(frozen=True)
class NoteText:
    marker: str
    content: str
    pull_request: str | None = None  # the pull request's note
    kind: str = SESSION  # SESSION, PULL_REQUEST, SUMMARY or MARKED: which ledger attribute records it as posted
    digest: str | None = None  # a summary note's: what it was made from (result_digest), so a change shows


def _link(session_url: str | None, session_id: str) -> str:
    """The session's link when Devin gave an https one of plain characters; else its id, in words."""
    url = session_url or ""
    if url.startswith("https://") and url.isascii() and url.isprintable() and " " not in url and len(url) <= 500:
        return url
    return f"Devin session {_field(session_id, 100)}"


def session_note(session_url: str | None, session_id: str) -> NoteText:
    marker = f"[{MARKER_PREFIX}:session]"
    link = _link(session_url, session_id)
    return NoteText(marker, f"A postmortem draft for this incident is being written by Devin: {link}\n{marker}")


def waiting_note(session_url: str | None, session_id: str, spell: int) -> NoteText:
    """Devin's session waits for a person (its `spell`th time): someone must answer it in Devin."""
    marker = f"[{MARKER_PREFIX}:waiting {spell}]"
    link = _link(session_url, session_id)
    return NoteText(marker, f"Devin is waiting for input on the postmortem: {link}\n{marker}", kind=MARKED)


def stopped_note(session_url: str | None, session_id: str, why: str, spell: int) -> NoteText:
    """The draft stopped (its `spell`th time), `why` in words of the bridge's own (devin.session.stopped_words)."""
    marker = f"[{MARKER_PREFIX}:stopped {spell}]"
    link = _link(session_url, session_id)
    return NoteText(marker, f"The postmortem draft stopped: {why}. Devin's session: {link}\n{marker}", kind=MARKED)


def result_digest(result: Mapping[str, Any]) -> str:
    """A short fingerprint of a compact result, to tell whether a later summary would say anything new."""
    text = json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pull_request_note(url: str) -> NoteText:
    marker = f"[{MARKER_PREFIX}:pr {url}]"
    return NoteText(
        marker, f"The postmortem draft is ready for review: {url}\n{marker}", pull_request=url, kind=PULL_REQUEST
    )


def _unknown_line(evidence: Mapping[str, Any] | None) -> list[str]:
    """One line naming the cited ids PagerDuty's record never held; nothing when every id was found."""
    unknown = list((evidence or {}).get("unknown") or ())
    if not unknown:
        return []
    shown = ", ".join(_field(reference, 60) for reference in unknown[:5])
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return [f"Cited, but not in PagerDuty's record: {shown}{more}."]


@dataclass(frozen=True)
class Heading:
    """What the note's first line says of the incident (the ledger's own record of it, not Devin's words)."""

    title: str = ""
    priority: str | None = None
    urgency: str = ""
    seconds_to_resolve: float | None = None  # the bridge's computed figure


def duration(seconds: float | None) -> str:
    """A duration as a person reads it at a glance: "45 s", "51 min", "2 h 5 min"; "" when unknown."""
    if seconds is None or seconds < 0:
        return ""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = (whole + 30) // 60
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


def _first_line(heading: Heading) -> str:
    severity = _field(heading.priority, 20) or (f"{_field(heading.urgency, 20)} urgency" if heading.urgency else "")
    took = duration(heading.seconds_to_resolve) or "duration unknown"
    return " · ".join(part for part in (severity, took, _field(heading.title, 200) or "PagerDuty incident") if part)


def _impact(result: Mapping[str, Any]) -> str:
    impact = result.get("impact") if isinstance(result.get("impact"), Mapping) else {}
    quantity = impact.get("quantity") if isinstance(impact.get("quantity"), Mapping) else {}
    parts = []
    value, unit = quantity.get("value"), _field(quantity.get("unit"), 100)
    number = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value)
    )
    if number and unit:
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            value = int(value)
        figure = (f"{value:,}" if isinstance(value, int) else f"{value:,.2f}".rstrip("0").rstrip("."))[:30]
        basis = _field(quantity.get("basis"), 200)
        estimate = (f" (estimate: {basis})" if basis else " (estimate)") if quantity.get("estimate") else ""
        parts.append(f"{figure} {unit}{estimate}")
    who, what = _field(impact.get("who"), 200), _field(impact.get("what"), 300)
    parts += [text for text in (who, what) if text]
    return "Impact: " + (" — ".join(parts) if parts else "not stated")


def _ended(result: Mapping[str, Any]) -> str:
    resolution = result.get("resolution") if isinstance(result.get("resolution"), Mapping) else {}
    what = _field(resolution.get("what"), 300)
    at = _field(resolution.get("at"), 40)
    when = f" ({at[11:16]} UTC)" if len(at) >= 16 and at.endswith("Z") else ""
    return f"Ended by: {what}{when}" if what else "Ended by: not stated"


def summary_note(
    result: Mapping[str, Any],
    pull_request_urls: Sequence[str],
    heading: Heading | None = None,
    not_covered: Sequence[str] | None = None,
    evidence: Mapping[str, Any] | None = None,
    *,
    change_links: Mapping[str, str] | None = None,
    update: int | None = None,
) -> NoteText:
    """The postmortem's summary on the incident, for a person at a glance, within SUMMARY_LIMIT characters: the
    priority, how long and the title first; who and what was hurt; what ended it; the root cause with its confidence
    and the implicated change's link; the action items with owners and tickets; where the draft is; what the draft
    does not cover yet, in words; and the cited ids PagerDuty's record never held, if any.

    `result` is the compact copy of a valid result (result.compact): every field it must have exists, the rest may
    not (a copy kept before version 2 of the schema has none of them). Its links were checked by the caller.
    `not_covered` are the rubric's words for what the result misses (None: not known, nothing said). With `update`
    (the follow-up episode, from 2) it is the summary of a result that changed after an earlier one was posted.
    """
    marker = f"[{MARKER_PREFIX}:summary]" if update is None else f"[{MARKER_PREFIX}:summary {update}]"
    root = result["root_cause"]
    implicated = [link for change in result.get("implicated") or () if (link := (change_links or {}).get(str(change)))]
    cause = f"Root cause ({_field(root['confidence'], 20)}): {_field(root['statement'], _LINE_LIMIT)}"
    head = [
        _first_line(heading or Heading()),
        ("Postmortem draft by Devin, updated: " if update is not None else "Postmortem draft by Devin: ")
        + _field(result["summary"], _LINE_LIMIT),
        _impact(result),
        _ended(result),
        cause + (f" Change: {implicated[0]}" if implicated else ""),
    ]
    items = [
        f"- [{_field(item['priority'], 10)} {_field(item['type'], 20)}] {_field(item['title'], 200)}"
        f" — owner: {_field(item['owner'], 100)}" + (f" — {item['tracking_url']}" if item.get("tracking_url") else "")
        for item in result["action_items"]
    ]
    draft = result.get("document_url") or (pull_request_urls[0] if pull_request_urls else None)
    tail = [
        f"Draft: {draft}" if draft else "Draft: not opened yet",
        *([f"Not covered: {', '.join(not_covered)}"] if not_covered else []),
        *_unknown_line(evidence),
        marker,
    ]
    total = len(items) + int(result.get("action_items_omitted") or 0)

    def text(kept: list[str]) -> str:
        left = total - len(kept)
        listed = ["Action items:", *kept, *([f"- … and {left} more"] if left else [])] if total else []
        return "\n".join([*head, *(listed or ["Action items: none"]), *tail])

    kept: list[str] = []
    for item in items:
        if len(text([*kept, item])) > SUMMARY_LIMIT:
            break
        kept.append(item)
    content = text(kept)
    if len(content) > SUMMARY_LIMIT:  # only with every text at its cap and very long links
        end = "\n".join(tail)
        content = content[: SUMMARY_LIMIT - len(end) - 2] + "…\n" + end
    return NoteText(marker, content, kind=SUMMARY if update is None else MARKED, digest=result_digest(result))


def has_marker(notes: Iterable[Mapping[str, Any]], marker: str, user_id: str | None = None) -> bool:
    """True when one of PagerDuty's notes (raw, as GET /incidents/{id}/notes lists them) is a note of the bridge's
    carrying `marker`: its exact last line, and, when the bridge knows its own PagerDuty user (`user_id`, learned
    from a note it posted), written by that user. A marker quoted anywhere else, or in someone else's note, does not
    count."""
    for note in notes:
        if not isinstance(note, Mapping):
            continue
        lines = str(note.get("content") or "").strip().splitlines()
        if not lines or lines[-1].strip() != marker:
            continue
        user = note.get("user")
        if user_id is None or (isinstance(user, Mapping) and user.get("id") == user_id):
            return True
    return False
