"""The notes the bridge puts on a PagerDuty incident, each with a marker it can be recognised by.

PagerDuty notes have no idempotency key: when a post's answer is lost, the bridge looks for the note's marker
among the incident's notes before posting it again. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..text import clean_text

MARKER_PREFIX = "pagerduty-postmortem"
SESSION = "session"
PULL_REQUEST = "pull_request"
SUMMARY = "summary"

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
    kind: str = SESSION  # SESSION, PULL_REQUEST or SUMMARY: which ledger attribute records it as posted


def session_note(session_url: str | None, session_id: str) -> NoteText:
    marker = f"[{MARKER_PREFIX}:session]"
    link = session_url or f"Devin session {session_id}"
    return NoteText(marker, f"A postmortem draft for this incident is being written by Devin: {link}\n{marker}")


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
    shown = ", ".join(clean_text(reference, 60) for reference in unknown[:5])
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return [f"Evidence: {cited} citations; {len(unknown)} not in PagerDuty's record: {shown}{more}. Check them."]


def summary_note(
    result: Mapping[str, Any],
    pull_request_urls: Sequence[str],
    score: str | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> NoteText:
    """The postmortem's summary on the incident: the root cause in a line, each action item (title, type, priority,
    owner), the pull request's link, the rubric's score and whether the cited evidence exists, within
    SUMMARY_LIMIT characters.

    `result` is the compact copy of a valid result (result.compact), so every field read here exists.
    """
    marker = f"[{MARKER_PREFIX}:summary]"
    root = result["root_cause"]
    head = [
        "Postmortem summary (drafted by Devin):",
        clean_text(result["summary"], _LINE_LIMIT),
        f"Root cause ({clean_text(root['confidence'], 20)}): {clean_text(root['statement'], _LINE_LIMIT)}",
    ]
    items = [
        f"- [{clean_text(item['priority'], 10)} {clean_text(item['type'], 20)}] {clean_text(item['title'], 200)}"
        f" (owner: {clean_text(item['owner'], 100)})"
        for item in result["action_items"]
    ]
    urls = list(pull_request_urls) or ([result["pull_request_url"]] if result.get("pull_request_url") else [])
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
    return NoteText(marker, content, kind=SUMMARY)


def has_marker(notes: Iterable[Mapping[str, Any]], marker: str) -> bool:
    """True when one of PagerDuty's notes (raw, as GET /incidents/{id}/notes lists them) carries `marker`."""
    return any(isinstance(note, Mapping) and marker in str(note.get("content") or "") for note in notes)
