"""The notes the bridge puts on a PagerDuty incident, each with a marker it can be recognised by.

PagerDuty notes have no idempotency key: when a post's answer is lost, the bridge looks for the note's marker
among the incident's notes before posting it again. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MARKER_PREFIX = "pagerduty-postmortem"


@dataclass(frozen=True)
class NoteText:
    marker: str
    content: str
    pull_request: str | None = None  # None: the session note


def session_note(session_url: str | None, session_id: str) -> NoteText:
    marker = f"[{MARKER_PREFIX}:session]"
    link = session_url or f"Devin session {session_id}"
    return NoteText(marker, f"A postmortem draft for this incident is being written by Devin: {link}\n{marker}")


def pull_request_note(url: str) -> NoteText:
    marker = f"[{MARKER_PREFIX}:pr {url}]"
    return NoteText(marker, f"The postmortem draft is ready for review: {url}\n{marker}", pull_request=url)


def has_marker(notes: Iterable[Mapping[str, Any]], marker: str) -> bool:
    """True when one of PagerDuty's notes (raw, as GET /incidents/{id}/notes lists them) carries `marker`."""
    return any(isinstance(note, Mapping) and marker in str(note.get("content") or "") for note in notes)
