"""An incident's record as PagerDuty's REST API keeps it (log entries, alerts, notes, related change events, past
incidents), read into capped plain values.

Pure: no I/O. Every field of PagerDuty's JSON is treated as optional and possibly of the wrong type, every string
is cleaned and capped, and each part is put in chronological order by comparing instants, because PagerDuty's
own order is undocumented and its times come with mixed offsets (`Z` and the account's zone, e.g. `-06:00`).
Every entry carries an `id` the postmortem can cite as evidence: PagerDuty's own, else one derived from the entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..text import clean_text
from ..webhook.event import REFERENCES_LIMIT

# How many entries of each part are kept: the first `HEAD` and the last `TAIL`, chronologically. The start of an
# incident and its end say the most; a flapping middle is counted, not listed.
LOG_HEAD, LOG_TAIL = 25, 25
ALERT_HEAD, ALERT_TAIL = 10, 10
NOTE_HEAD, NOTE_TAIL = 15, 15
# The change events nearest the incident matter most: the last ones, chronologically.
CHANGE_HEAD, CHANGE_TAIL = 0, 20
PAST_INCIDENTS_LIMIT = 5

# Per-field caps: this text comes from outside and ends up in a prompt.
WHAT_LIMIT = 300  # a log entry's "what", an alert's summary
NAME_LIMIT = 200  # who, channel, author, severity, status, kind
CONTENT_LIMIT = 1000  # a note's content
DETAILS_LIMIT = 500  # an alert's custom details, as compact text
TIME_LIMIT = 40
ID_LIMIT = 64
URL_LIMIT = 500
LINKS_LIMIT = 3

_LOG_ENTRY_SUFFIX = "_log_entry"
_REFERENCE_SUFFIX = "_reference"


@dataclass(frozen=True)
class TimelineEntry:
    at: str  # UTC ISO-8601 ending in Z when the time parsed, else the cleaned original
    what: str
    who: str
    channel: str
    kind: str  # the log entry type without "_log_entry", e.g. "resolve"; unknown types are kept as they come
    id: str = ""  # PagerDuty's log entry id, else derived (entry_id)


@dataclass(frozen=True)
class AlertEntry:
    at: str
    severity: str
    status: str
    summary: str
    details: str  # the alert's custom details as compact text: JSON for an object, or the string itself
    id: str = ""


@dataclass(frozen=True)
class NoteEntry:
    at: str
    author: str
    content: str
    id: str = ""


@dataclass(frozen=True)
class ChangeEntry:
    """A change event PagerDuty relates to the incident (a deploy, a configuration change…)."""

    id: str
    at: str
    summary: str
    source: str
    services: tuple[str, ...]
    correlation: str  # why PagerDuty relates it: most_recent, related_service or intelligent
    links: tuple[str, ...]


@dataclass(frozen=True)
class PastIncident:
    """An earlier incident PagerDuty finds similar (same service, last six months), in PagerDuty's order.

    [OAS] lists only `incident{id, created_at, self, title}` and a `score`: no incident number and no web address."""

    id: str
    title: str
    created_at: str
    api_url: str  # the incident's `self`, its address in PagerDuty's REST API; "" when it is not one (_api_url)
    score: float | None  # PagerDuty's own figure, not 0-1 ([OAS] example 46.8249); its scale is undocumented


@dataclass(frozen=True)
class Part[E]:
    """One part of the record."""

    entries: tuple[E, ...]  # the kept entries, in chronological order
    total: int  # how many PagerDuty had (when it said) or how many were read
    omitted: int  # how many were left out by the cap
    # None, or plain words of our own saying why the part is missing or incomplete; never PagerDuty's error text.
    unavailable: str | None = None
    # PagerDuty refused it for an add-on the account lacks: expected for many accounts, not a failure to count.
    not_in_plan: bool = False


@dataclass(frozen=True)
class IncidentRecord:
    log_entries: Part[TimelineEntry]
    alerts: Part[AlertEntry]
    notes: Part[NoteEntry]
    # None: not read at all (a message about what happened since the session started reads neither).
    change_events: Part[ChangeEntry] | None = None
    past_incidents: Part[PastIncident] | None = None
    # What the bridge computed from the log entries (figures.compute); None when they were not all it had to go on.
    computed: Mapping[str, Any] | None = None


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_instant(value: Any) -> datetime | None:
    """The instant a PagerDuty time names, or None. A time without an offset names no instant: it is not used."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # handles "Z" and "-06:00" (Python 3.11+)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
        return None


def _utc_text(instant: datetime) -> str:
    spec = "seconds" if instant.microsecond == 0 else "milliseconds"
    return instant.isoformat(timespec=spec).replace("+00:00", "Z")


def _at(value: Any) -> tuple[datetime | None, str]:
    found = parse_instant(value)
    return found, (_utc_text(found) if found is not None else clean_text(value, TIME_LIMIT))


def _chronological[E](timed: Iterable[tuple[datetime | None, E]]) -> list[E]:
    """By instant (stable for equal ones); entries whose time did not parse go last, in their original order."""
    placed: list[tuple[datetime, int, E]] = []
    unplaced: list[E] = []
    for index, (instant, entry) in enumerate(timed):
        if instant is None:
            unplaced.append(entry)
        else:
            placed.append((instant, index, entry))
    placed.sort(key=lambda item: (item[0], item[1]))
    return [entry for _, _, entry in placed] + unplaced


def _items(raw: Any) -> list[Mapping[str, Any]]:
    return [item for item in raw if isinstance(item, Mapping)] if isinstance(raw, list | tuple) else []


# PagerDuty ids are short alphanumerics; anything else is not used as one.
_PAGERDUTY_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{ID_LIMIT}}}")


def entry_id(raw: Mapping[str, Any], prefix: str, *fields: Any) -> str:
    """PagerDuty's id of an entry, or a stable one derived from what it says (`prefix` and a hash of `fields`), so
    that the same entry read twice is cited by the same id."""
    own = raw.get("id")
    if isinstance(own, str) and _PAGERDUTY_ID.fullmatch(own):
        return own
    digest = hashlib.sha256(json.dumps([str(field) for field in fields]).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:12]}"


def _who(agent: Mapping[str, Any]) -> str:
    name = clean_text(agent.get("summary"), NAME_LIMIT)
    if name:
        return name
    # An agent without a summary (the API leaves it out of some references) still says what acted.
    kind = agent.get("type")
    kind = kind.removesuffix(_REFERENCE_SUFFIX).replace("_", " ") if isinstance(kind, str) else ""
    return clean_text(" ".join(part for part in (kind, agent.get("id")) if isinstance(part, str) and part), NAME_LIMIT)


def _what(entry: Mapping[str, Any], kind: str) -> str:
    parts = [clean_text(entry.get("summary"), WHAT_LIMIT)]
    if kind == "resolve":
        parts.append(clean_text(entry.get("note"), WHAT_LIMIT))  # the resolution text given when resolving
    elif kind == "trigger":
        parts.append(clean_text(_object(entry.get("event_details")).get("description"), WHAT_LIMIT))
    kept = [part for part in parts if part]
    if len(kept) == 2 and kept[0] == kept[1]:
        kept.pop()
    return clean_text(": ".join(kept), WHAT_LIMIT)


def timeline(raw_entries: Any) -> list[TimelineEntry]:
    """Log entries (`GET /incidents/{id}/log_entries` items) as a chronological timeline."""
    timed = []
    for entry in _items(raw_entries):
        raw_kind = entry.get("type")
        kind = clean_text(raw_kind.removesuffix(_LOG_ENTRY_SUFFIX) if isinstance(raw_kind, str) else "", NAME_LIMIT)
        channel = _object(entry.get("channel"))
        instant, at = _at(entry.get("created_at"))
        timed.append(
            (
                instant,
                TimelineEntry(
                    at=at,
                    what=(what := _what(entry, kind)),
                    who=_who(_object(entry.get("agent"))),
                    channel=clean_text(channel.get("type") or channel.get("summary"), NAME_LIMIT),
                    kind=kind,
                    id=entry_id(entry, "log", at, kind, what),
                ),
            )
        )
    return _chronological(timed)


def _details(body: Mapping[str, Any]) -> str:
    details = body.get("details")
    if details is None:
        return ""
    if isinstance(details, str):  # PagerDuty allows a plain string here (OAS changelog 2022-05-09)
        return clean_text(details, DETAILS_LIMIT)
    try:
        text = json.dumps(details, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return ""
    return clean_text(text, DETAILS_LIMIT)


def alerts(raw: Any) -> list[AlertEntry]:
    """Alerts (`GET /incidents/{id}/alerts` items), chronological by creation."""
    timed = []
    for alert in _items(raw):
        instant, at = _at(alert.get("created_at"))
        summary = clean_text(alert.get("summary"), WHAT_LIMIT)
        entry = AlertEntry(
            at=at,
            severity=clean_text(alert.get("severity"), NAME_LIMIT),
            status=clean_text(alert.get("status"), NAME_LIMIT),
            summary=summary,
            details=_details(_object(alert.get("body"))),
            id=entry_id(alert, "alert", at, summary),
        )
        timed.append((instant, entry))
    return _chronological(timed)


def notes(raw: Any) -> list[NoteEntry]:
    """Notes (`GET /incidents/{id}/notes` items), chronological by creation."""
    timed = []
    for note in _items(raw):
        instant, at = _at(note.get("created_at"))
        author = clean_text(_object(note.get("user")).get("summary"), NAME_LIMIT)
        content = clean_text(note.get("content"), CONTENT_LIMIT)
        entry = NoteEntry(at=at, author=author, content=content, id=entry_id(note, "note", at, content))
        timed.append((instant, entry))
    return _chronological(timed)


def _links(raw: Any) -> tuple[str, ...]:
    hrefs = []
    for link in _items(raw)[:LINKS_LIMIT]:
        href = link.get("href")
        if isinstance(href, str) and href.startswith(("https://", "http://")) and " " not in href:
            hrefs.append(clean_text(href, URL_LIMIT))
    return tuple(hrefs)


def change_events(raw: Any) -> list[ChangeEntry]:
    """Change events (`GET /incidents/{id}/related_change_events` items), chronological."""
    timed = []
    for change in _items(raw):
        instant, at = _at(change.get("timestamp"))
        summary = clean_text(change.get("summary"), WHAT_LIMIT)
        services = tuple(
            name
            for service in _items(change.get("services"))[:REFERENCES_LIMIT]
            if (name := clean_text(service.get("summary") or service.get("id"), NAME_LIMIT))
        )
        entry = ChangeEntry(
            id=entry_id(change, "change", at, summary),
            at=at,
            summary=summary,
            source=clean_text(change.get("source"), NAME_LIMIT),
            services=services,
            correlation=clean_text(_object(change.get("correlation_reason")).get("reason"), NAME_LIMIT),
            links=_links(change.get("links")),
        )
        timed.append((instant, entry))
    return _chronological(timed)


def _api_url(incident: Mapping[str, Any]) -> str:
    """The incident's `self` when it is PagerDuty's https address of this very incident, else "": it is outside
    text, and a link of anyone's choosing must not reach the prompt as if PagerDuty had given it."""
    own, address = incident.get("id"), incident.get("self")
    if not (isinstance(own, str) and _PAGERDUTY_ID.fullmatch(own) and isinstance(address, str)):
        return ""
    if len(address) > URL_LIMIT or clean_text(address, URL_LIMIT) != address or " " in address:
        return ""
    try:
        parts = urlsplit(address)
        host = parts.hostname or ""
    except ValueError:  # e.g. an unclosed "[" in the host
        return ""
    if parts.scheme != "https" or not (host == "pagerduty.com" or host.endswith(".pagerduty.com")):
        return ""
    return address if (parts.path, parts.query, parts.fragment) == (f"/incidents/{own}", "", "") else ""


def past_incidents(raw: Any) -> list[PastIncident]:
    """Similar earlier incidents (`GET /incidents/{id}/past_incidents` items), in PagerDuty's order.

    Only what [OAS] lists is read: `incident{id, created_at, self, title}` and `score`.
    """
    found = []
    for item in _items(raw)[:PAST_INCIDENTS_LIMIT]:
        incident = _object(item.get("incident"))
        found.append(
            PastIncident(
                id=entry_id(incident, "incident", incident.get("created_at"), incident.get("title")),
                title=clean_text(incident.get("title"), WHAT_LIMIT),
                created_at=_at(incident.get("created_at"))[1],
                api_url=_api_url(incident),
                score=_score(item.get("score")),
            )
        )
    return found


def _score(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        score = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return score if math.isfinite(score) else None  # Python's json reads NaN and Infinity, which JSON has not


def cap[E](entries: Sequence[E], head: int, tail: int) -> tuple[list[E], int]:
    """The first `head` and the last `tail` entries, and how many were left out between them."""
    if len(entries) <= head + tail:
        return list(entries), 0
    kept = list(entries[:head]) + (list(entries[-tail:]) if tail > 0 else [])
    return kept, len(entries) - len(kept)


def after[E: (TimelineEntry, AlertEntry, NoteEntry)](entries: Iterable[E], instant_iso: str) -> list[E]:
    """The entries strictly after `instant_iso` (an ISO-8601 time with an offset), in their order.

    An entry whose time did not parse is kept: it cannot be shown to be older, and leaving out something that
    happened since is worse than repeating something that did not.
    """
    since = parse_instant(instant_iso)
    if since is None:
        raise ValueError("instant_iso must be an ISO-8601 time with an offset")
    kept = []
    for entry in entries:
        at = parse_instant(entry.at)
        if at is None or at > since:
            kept.append(entry)
    return kept


def part[E](
    entries: Sequence[E],
    head: int,
    tail: int,
    *,
    total: int | None = None,
    unavailable: str | None = None,
    not_in_plan: bool = False,
) -> Part[E]:
    """A Part of `entries` (already chronological) capped to `head` + `tail`; `total` defaults to their count."""
    kept, omitted = cap(entries, head, tail)
    return Part(tuple(kept), len(entries) if total is None else total, omitted, unavailable, not_in_plan)


_PARTS: tuple[tuple[str, Callable[[IncidentRecord], Part[Any] | None]], ...] = (
    ("timeline", lambda record: record.log_entries),
    ("alerts", lambda record: record.alerts),
    ("notes", lambda record: record.notes),
    ("changes", lambda record: record.change_events),
    ("recurrence", lambda record: record.past_incidents),
)


def _entry_data(entry: Any) -> dict[str, Any]:
    values = asdict(entry)
    # The id first: it is what the postmortem cites.
    return {"id": values.pop("id"), **values}


def data_ids(record: IncidentRecord) -> list[str]:
    """The ids of every entry the data block holds: what a postmortem may cite as evidence."""
    return [entry.id for _, select in _PARTS if (chosen := select(record)) is not None for entry in chosen.entries]


def as_data(record: IncidentRecord) -> dict[str, Any]:
    """JSON-ready values for the prompt's data block.

    `{"computed": {...}, "timeline": [...], "timeline_omitted": n, "alerts": [...], "notes": [...], "changes": [...],
    "recurrence": [...]}`: each `<part>_omitted` only when the cap left something out, and a part that is unavailable
    with nothing read (or not read at all) is left out entirely (an empty list would say there was nothing). Why a
    part is missing is in `Part.unavailable`, for the prompt's prose.
    """
    data: dict[str, Any] = {}
    if record.computed:
        data["computed"] = dict(record.computed)
    for key, select in _PARTS:
        chosen = select(record)
        if chosen is None or (chosen.unavailable is not None and not chosen.entries):
            continue
        data[key] = [_entry_data(entry) for entry in chosen.entries]
        if chosen.omitted:
            data[f"{key}_omitted"] = chosen.omitted
    return data
