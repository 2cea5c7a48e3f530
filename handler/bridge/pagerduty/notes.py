"""The notes the bridge puts on a PagerDuty incident, each with a marker it can be recognised by.

PagerDuty notes have no idempotency key: when a post's answer is lost, the bridge looks for the note's marker
among the incident's notes before posting it again. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
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


def _evidence_line(evidence: Mapping[str, Any] | None) -> list[str]:
    if not evidence:
        return []
    cited, unknown = int(evidence.get("cited") or 0), list(evidence.get("unknown") or ())
    if not unknown:
        return [f"Evidence: {cited} citations, every id found in PagerDuty's record."]
    shown = ", ".join(_field(reference, 60) for reference in unknown[:5])
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return [f"Evidence: {cited} citations; {len(unknown)} not in PagerDuty's record: {shown}{more}. Check them."]


def summary_note(
    result: Mapping[str, Any],
    pull_request_urls: Sequence[str],
    score: str | None = None,
    evidence: Mapping[str, Any] | None = None,
    *,
    update: int | None = None,
) -> NoteText:
    """The postmortem's summary on the incident: the root cause in a line, each action item (title, type, priority,
    owner), the pull request's link, the rubric's score and whether the cited evidence exists, within
    SUMMARY_LIMIT characters.

    `result` is the compact copy of a valid result (result.compact), so every field read here exists. With `update`
    (the follow-up episode, from 2) it is the summary of a result that changed after an earlier summary was posted.
    """
    marker = f"[{MARKER_PREFIX}:summary]" if update is None else f"[{MARKER_PREFIX}:summary {update}]"
    root = result["root_cause"]
    head = [
        "Postmortem summary (drafted by Devin):"
        if update is None
        else "Postmortem summary, updated (drafted by Devin):",
        _field(result["summary"], _LINE_LIMIT),
        f"Root cause ({_field(root['confidence'], 20)}): {_field(root['statement'], _LINE_LIMIT)}",
    ]
    items = [
        f"- [{_field(item['priority'], 10)} {_field(item['type'], 20)}] {_field(item['title'], 200)}"
        f" (owner: {_field(item['owner'], 100)})"
        for item in result["action_items"]
    ]
    # Only links the session itself reports (the caller passes them through the link policy): the result's
    # free-text pull_request_url is kept only when it is one of them.
    urls = list(pull_request_urls)
    tail = [
        f"Pull request: {urls[0]}" if urls else "Pull request: none yet",
        *([f"Rubric score: {score} (docs/postmortem-rubric.md)"] if score else []),
        *_evidence_line(evidence),
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
    if len(content) > SUMMARY_LIMIT:  # only with a summary and root cause at their caps and a very long URL
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
