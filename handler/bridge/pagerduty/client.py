"""A small PagerDuty REST API v2 client: read an incident's record, write a note; retry what is safe, within a deadline.

Sources: [OAS] PagerDuty's OpenAPI schema (PagerDuty/api-schema, reference/REST/openapiv3.json), [DD] its developer
docs (PagerDuty/developer-docs, docs/REST-API/NN-*.md by number). What they leave open is marked UNCONFIRMED where
this code relies on it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..http import USER_AGENT, RetryPolicy, json_or_none, not_sent, retry_after_seconds
from . import figures, record

if TYPE_CHECKING:
    # Imported where it is used, as in devin/client.py: importing requests costs every cold start about 20 ms.
    import requests

ACCEPT = "application/vnd.pagerduty+json;version=2"  # pins the API version ([OAS]: required)


def request_headers(api_key: str) -> dict[str, str]:
    """The headers of every request to PagerDuty (scripts/doctor sends the same). [OAS] marks Accept and
    Content-Type required on every operation, GETs included, though a GET carries no body."""
    return {
        "Authorization": f"Token token={api_key}",
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


# Classic pagination ([DD] 09): at most 100 a page, and offset + limit may not pass 10000 (a 400 otherwise).
PAGE_LIMIT = 100
MAX_OFFSET_PLUS_LIMIT = 10_000

# Why a listing stopped short, in plain words (Page.stopped).
OUT_OF_TIME = "the time budget ran out"
LISTING_LIMIT = f"PagerDuty lists at most {MAX_OFFSET_PLUS_LIMIT}"


def _retryable(status: int) -> bool:
    # 408 "took too long to process", 429 rate limited, 5xx transient ([DD] 14).
    return status in (408, 429) or status >= 500


class PagerDutyError(Exception):
    """Base of what PagerDuty can do to a call. `reason` is short plain words of our own, fit for a prompt: never
    the API key, never PagerDuty's error text."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class PagerDutyNotConfigured(PagerDutyError):
    """A write was asked for without a From address: nothing was sent."""


class PagerDutyRefused(PagerDutyError):
    """PagerDuty answered a 4xx other than 408/429 (the key, its rights, the incident, the request), or a redirect:
    not retried, nothing was done."""

    def __init__(self, status: int, *, write: bool = False) -> None:
        super().__init__(_refusal_reason(status, write), status)


class PagerDutyUnavailable(PagerDutyError):
    """408/429/5xx or no connection, until tries or time ran out; nothing was written. Keeps `status` if any."""


class PagerDutyTimedOut(PagerDutyUnavailable):
    """PagerDuty did not answer within the time given (or no time was left to ask)."""

    def __init__(self) -> None:
        super().__init__("PagerDuty did not answer in time")


class PagerDutyOutcomeUnknown(PagerDutyError):
    """A note was sent but its answer was lost, unreadable or an error that may come after writing: it may exist."""


def _refusal_reason(status: int, write: bool) -> str:
    if status == 401:
        return "PagerDuty refused the API key (HTTP 401)"
    if status == 403 and write:
        # UNCONFIRMED that a read-only key gets a 403 when writing; a missing incidents.write scope does.
        return "PagerDuty did not allow the API key to write a note; a read-only key cannot (HTTP 403)"
    if status == 403:
        return "PagerDuty did not allow the API key to read this incident (HTTP 403)"
    if status == 404:
        return "PagerDuty does not know this incident (HTTP 404)"
    if status == 402:
        return "the PagerDuty account lacks a feature this needs (HTTP 402)"
    if status == 400 and write:
        return "PagerDuty refused the note as invalid, e.g. for a From address that is not a user's (HTTP 400)"
    if status == 400:
        return "PagerDuty refused the request as invalid (HTTP 400)"
    if 300 <= status < 400:
        return f"PagerDuty answered with a redirect, not followed: is the API base URL right? (HTTP {status})"
    return f"PagerDuty refused the request (HTTP {status})"


def _unavailable_reason(status: int, write: bool) -> str:
    what = "the note" if write else "the reads"
    if status == 429:
        return f"PagerDuty rate-limited {what} (HTTP 429)"
    if status == 408:
        return "PagerDuty took too long to process the request (HTTP 408)"
    return f"PagerDuty failed with a server error (HTTP {status})"


def _wait_hint(response: requests.Response) -> float | None:
    """Seconds PagerDuty asks us to wait: on a 429 `ratelimit-reset` ([DD] 04), else `Retry-After` (UNCONFIRMED
    that PagerDuty sends it). Both "may" be missing on a 429.

    `ratelimit-reset` counts down to the end of the rate-limit window and may come with any answer: after a 5xx
    it says nothing about when to try again, so only a 429 honours it.
    """
    value = response.headers.get("ratelimit-reset", "").strip() if response.status_code == 429 else ""
    try:
        seconds = float(value) if value else None
    except ValueError:
        seconds = None
    if seconds is not None and math.isfinite(seconds) and seconds >= 0:
        return seconds
    return retry_after_seconds(response)


@dataclass(frozen=True)
class Page:
    """What a paginated listing read: `items` in PagerDuty's order; `total` when PagerDuty said (total=true);
    `complete` False when it stopped before the end, with `stopped` saying why in plain words (OUT_OF_TIME,
    LISTING_LIMIT or an error's reason)."""

    items: list[dict[str, Any]]
    total: int | None
    complete: bool
    stopped: str | None = None


class PagerDutyClient:
    """Calls within `deadline` (a `clock()` value): it never starts an attempt with less than `min_attempt_time`
    left, nor a wait it could not follow with an attempt, and caps each request's connect and read timeouts by
    the time left."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        http: requests.Session,
        *,
        from_email: str | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 1.0,
        read_timeout: float = 3.0,
        backoff_base: float = 0.25,
        backoff_cap: float = 1.0,
        min_attempt_time: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = request_headers(api_key)
        self._from_email = from_email
        self._http = http
        self._retry = RetryPolicy(
            max_attempts=max_attempts,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            min_attempt_time=min_attempt_time,
            clock=clock,
            sleep=sleep,
            jitter=jitter,
        )

    def __repr__(self) -> str:
        return f"PagerDutyClient({self._base_url!r})"

    def incident(self, incident_id: str, deadline: float) -> dict[str, Any]:
        """GET /incidents/{id} (the id or the incident number)."""
        found = _object(json_or_none(self._get(self._incident_url(incident_id), deadline)), "incident")
        if found is None:
            raise PagerDutyUnavailable("PagerDuty's answer could not be read")
        return found

    def incidents(self, deadline: float, *, limit: int = 1) -> list[dict[str, Any]]:
        """The first `limit` incidents of GET /incidents: enough to check that the key can read incidents."""
        document = json_or_none(self._get(f"{self._base_url}/incidents", deadline, params={"limit": limit}))
        items = document.get("incidents") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise PagerDutyUnavailable("PagerDuty's answer could not be read")
        return [item for item in items if isinstance(item, dict)]

    def log_entries(self, incident_id: str, deadline: float, *, since: str | None = None) -> Page:
        """Every log entry of the incident (after `since`, an ISO-8601 time, when given), as far as time allows.

        In PagerDuty's order, which is undocumented (observed newest first: UNCONFIRMED); record.timeline sorts.
        """
        params = {"since": since} if since is not None else {}
        return self._list(f"{self._incident_url(incident_id)}/log_entries", "log_entries", deadline, params)

    def alerts(self, incident_id: str, deadline: float) -> Page:
        """Every alert of the incident, as far as time allows."""
        return self._list(f"{self._incident_url(incident_id)}/alerts", "alerts", deadline, {})

    def notes(self, incident_id: str, deadline: float) -> list[dict[str, Any]]:
        """Every note of the incident (not paginated: PagerDuty returns them all, up to 2000)."""
        return self._items(f"{self._incident_url(incident_id)}/notes", "notes", deadline)

    def related_change_events(self, incident_id: str, deadline: float) -> list[dict[str, Any]]:
        """The change events PagerDuty relates to the incident (one page, as PagerDuty gives it: whether this listing
        paginates is UNCONFIRMED). Needs PagerDuty's AIOps add-on; without it a refusal (402/403, UNCONFIRMED which)."""
        return self._items(f"{self._incident_url(incident_id)}/related_change_events", "change_events", deadline)

    def past_incidents(self, incident_id: str, deadline: float, *, limit: int = 5) -> list[dict[str, Any]]:
        """Up to `limit` similar earlier incidents of the same service (the last six months), PagerDuty's best first.
        Needs the AIOps add-on, as related_change_events."""
        url = f"{self._incident_url(incident_id)}/past_incidents"
        return self._items(url, "past_incidents", deadline, params={"limit": limit})

    def _items(self, url: str, key: str, deadline: float, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        document = json_or_none(self._get(url, deadline, params=params))
        items = document.get(key) if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise PagerDutyUnavailable("PagerDuty's answer could not be read")
        return [item for item in items if isinstance(item, dict)]

    def post_note(self, incident_id: str, content: str, deadline: float) -> dict[str, Any]:
        """Add a note to the incident; returns the note PagerDuty created.

        PagerDuty has no idempotency key, so a request that may have reached it is never sent again: a lost or
        unreadable answer, or a 408/5xx, is PagerDutyOutcomeUnknown (look for the note with notes() before
        writing it again). A 429, which says nothing was done, and a connection never made are retried.
        """
        if not self._from_email:
            # [OAS] requires From on this call; with an account key PagerDuty answers 400 without it.
            raise PagerDutyNotConfigured("no From address is configured for writing PagerDuty notes")
        response = self._call(
            "POST",
            f"{self._incident_url(incident_id)}/notes",
            deadline,
            write=True,
            headers={"From": self._from_email},
            json={"note": {"content": content}},
        )
        # Any 2xx: [OAS] says 200, [DD] 05 says creates answer 201 (UNCONFIRMED which).
        created = _object(json_or_none(response), "note")
        if created is None:
            raise PagerDutyOutcomeUnknown(f"PagerDuty answered HTTP {response.status_code} without a readable note")
        return created

    def _incident_url(self, incident_id: str) -> str:
        # Quoted whole, so a "/", "?", "#" or "%" in an id stays inside its path segment.
        return f"{self._base_url}/incidents/{quote(incident_id, safe='')}"

    def _list(self, url: str, key: str, deadline: float, params: dict[str, Any]) -> Page:
        """Follow classic pagination until `more` is false, time runs short or PagerDuty's 10000 limit.

        Errors on the first page are raised; after it, the page read so far is returned with `stopped` saying why.
        """
        items: list[dict[str, Any]] = []
        total: int | None = None
        offset = 0
        while True:
            limit = min(PAGE_LIMIT, MAX_OFFSET_PLUS_LIMIT - offset)
            if offset and limit <= 0:
                return Page(items, total, False, LISTING_LIMIT)
            query = {**params, "limit": limit, "offset": offset}
            if not offset:
                query["total"] = "true"
            try:
                document = json_or_none(self._get(url, deadline, params=query))
            except PagerDutyError as error:
                if not offset:
                    raise
                return Page(items, total, False, OUT_OF_TIME if isinstance(error, PagerDutyTimedOut) else error.reason)
            page = document.get(key) if isinstance(document, dict) else None
            if not isinstance(page, list):
                if not offset:
                    raise PagerDutyUnavailable("PagerDuty's answer could not be read")
                return Page(items, total, False, "PagerDuty's answer could not be read")
            if not offset:
                reported = document.get("total")
                total = reported if isinstance(reported, int) and not isinstance(reported, bool) else None
            items.extend(item for item in page if isinstance(item, dict))
            if document.get("more") is not True:
                return Page(items, total, True)
            if not page:  # more, yet nothing: the offset would not move
                return Page(items, total, False, "PagerDuty's pagination did not advance")
            offset += len(page)  # by the items received ([DD] 09)

    def _get(self, url: str, deadline: float, **kwargs: Any) -> requests.Response:
        return self._call("GET", url, deadline, write=False, **kwargs)

    def _call(
        self,
        method: str,
        url: str,
        deadline: float,
        *,
        write: bool,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send until a 2xx answer, within the tries and the deadline.

        A GET is sent again after a 408/429/5xx, a timeout or a lost connection. A write only after a 429 or a
        connection that was never made: anything else may have reached PagerDuty.
        """
        import requests

        failure: PagerDutyError = PagerDutyTimedOut()  # what is raised if no attempt can be made
        for attempt in range(1, self._retry.max_attempts + 1):
            timeout = self._retry.timeouts(deadline)
            if timeout is None:
                break
            hint: float | None = None
            try:
                response = self._http.request(
                    method,
                    url,
                    headers={**self._headers, **(headers or {})},
                    timeout=timeout,
                    allow_redirects=False,  # a redirect would carry the key elsewhere, or turn the POST into a GET
                    **kwargs,
                )
            except requests.RequestException as error:
                if write and not not_sent(error):
                    raise PagerDutyOutcomeUnknown(
                        f"PagerDuty's answer to the note was lost ({type(error).__name__}); the note may exist"
                    ) from error
                if isinstance(error, requests.Timeout):
                    failure = PagerDutyTimedOut()
                else:
                    failure = PagerDutyUnavailable("PagerDuty could not be reached")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                if not _retryable(status):
                    raise PagerDutyRefused(status, write=write)
                # A 429 is taken to mean nothing was written, so a rate-limited note is sent again (usual for rate
                # limiters; PagerDuty does not say: UNCONFIRMED). A 408 or 5xx may come after the note was stored.
                if write and status != 429:
                    raise PagerDutyOutcomeUnknown(
                        f"PagerDuty answered the note with HTTP {status}; the note may exist", status
                    )
                failure = PagerDutyUnavailable(_unavailable_reason(status, write), status)
                hint = _wait_hint(response)
            if not self._retry.wait_to_retry(attempt, hint, deadline):
                break
        raise failure


def _object(document: Any, key: str) -> dict[str, Any] | None:
    value = document.get(key) if isinstance(document, dict) else None
    return value if isinstance(value, dict) else None


def _missing(error: PagerDutyError, budget_seconds: float) -> str:
    if isinstance(error, PagerDutyTimedOut):
        return f"PagerDuty did not answer within the {budget_seconds:g} s budget"
    return error.reason


def _incomplete(page: Page, read: int, total: int | None, noun: str) -> str | None:
    if page.complete:
        return None
    counted = f"{read} of {total}" if total is not None else f"the first {read}"
    if page.stopped == OUT_OF_TIME:
        return f"only {counted} {noun} were read before the time budget ran out"
    return f"only {counted} {noun} were read: {page.stopped}"


@dataclass(frozen=True)
class _Listed[E]:
    """Everything a listing read (before any cap), and why it is incomplete or missing (None: complete)."""

    entries: list[E]
    total: int
    unavailable: str | None
    not_in_plan: bool = False


def _listed[E](
    read: Callable[[], Page],
    convert: Callable[[list[dict[str, Any]]], list[E]],
    noun: str,
    since: str | None,
    budget_seconds: float,
    add_on: str | None = None,
) -> _Listed[E]:
    """What one listing read; `add_on` names what it lists when PagerDuty keeps it behind an add-on."""
    try:
        page = read()
    except PagerDutyError as error:
        # Which refusal an account without PagerDuty's AIOps add-on gets is UNCONFIRMED: any of these three.
        if add_on is not None and isinstance(error, PagerDutyRefused) and error.status in (402, 403, 404):
            return _Listed(
                [], 0, f"PagerDuty did not list {add_on} (HTTP {error.status}); they need its AIOps add-on", True
            )
        return _Listed([], 0, _missing(error, budget_seconds))
    entries = convert(page.items)
    if since is not None:
        entries = record.after(entries, since)
    total = len(entries)
    if not page.complete and page.total is not None:
        # PagerDuty's count, less what the `since` filter dropped from what was read.
        total = max(page.total - (len(page.items) - len(entries)), len(entries))
    return _Listed(entries, total, _incomplete(page, len(entries), total, noun))


def _part[E](listed: _Listed[E], head: int, tail: int) -> record.Part[E]:
    return record.part(
        listed.entries, head, tail, total=listed.total, unavailable=listed.unavailable, not_in_plan=listed.not_in_plan
    )


def read_record(
    client: PagerDutyClient,
    incident_id: str,
    budget_seconds: float,
    *,
    since: str | None = None,
    created_at: str | None = None,
    resolved_at: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> record.IncidentRecord:
    """The incident's log entries, notes, alerts, related change events and past incidents, read one after the other
    within `budget_seconds`, and the figures computed from the log entries (figures.compute, with the incident's
    `created_at` and the resolve event's `resolved_at` as what they fall back on).

    Never raises for what PagerDuty does: a part that is refused, fails or runs out of time comes back with
    `unavailable` saying so, holding whatever was read. Sequential on purpose: X-Ray patches `requests` per
    thread. With `since` (ISO-8601 with an offset), only what happened strictly after it: log entries are asked
    for with PagerDuty's `since` and filtered again here (whether PagerDuty's bound is inclusive is
    UNCONFIRMED), notes and alerts are filtered by their creation time; change events, past incidents and the
    figures are not read then (what changed before the session started is in its first prompt).
    """
    deadline = clock() + budget_seconds
    if since is not None:
        record.after([], since)  # a `since` without an offset is our mistake: ValueError, before any request
    log_entries = _listed(
        lambda: client.log_entries(incident_id, deadline, since=since),
        record.timeline,
        "log entries",
        since,
        budget_seconds,
    )
    notes = _listed(
        lambda: Page(client.notes(incident_id, deadline), None, True), record.notes, "notes", since, budget_seconds
    )
    alerts = _listed(lambda: client.alerts(incident_id, deadline), record.alerts, "alerts", since, budget_seconds)
    parts = {
        "log_entries": _part(log_entries, record.LOG_HEAD, record.LOG_TAIL),
        "notes": _part(notes, record.NOTE_HEAD, record.NOTE_TAIL),
        "alerts": _part(alerts, record.ALERT_HEAD, record.ALERT_TAIL),
    }
    if since is not None:
        return record.IncidentRecord(**parts)
    changes = _listed(
        lambda: Page(client.related_change_events(incident_id, deadline), None, True),
        record.change_events,
        "change events",
        None,
        budget_seconds,
        add_on="related change events",
    )
    past = _listed(
        lambda: Page(client.past_incidents(incident_id, deadline, limit=record.PAST_INCIDENTS_LIMIT), None, True),
        record.past_incidents,
        "past incidents",
        None,
        budget_seconds,
        add_on="past incidents",
    )
    computed = figures.compute(
        log_entries.entries,
        complete=log_entries.unavailable is None,
        created_at=created_at,
        resolved_at=resolved_at,
        alert_count=alerts.total if alerts.unavailable is None else None,
    )
    return record.IncidentRecord(
        **parts,
        change_events=_part(changes, record.CHANGE_HEAD, record.CHANGE_TAIL),
        past_incidents=_part(past, record.PAST_INCIDENTS_LIMIT, 0),
        computed=computed,
    )
