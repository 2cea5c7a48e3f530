"""A small Devin v3 API client: create a session, find one by tag, read one, message one; retry what is safe to
retry, within a deadline."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import quote, urlsplit

from ..http import USER_AGENT, RetryPolicy, json_or_none, not_sent, retry_after_seconds
from .prompt import SessionRequest
from .session import Session, SessionState

if TYPE_CHECKING:
    # Imported where it is used: most deliveries never call Devin, and importing requests costs every cold
    # start about 20 ms. The caller's Session has loaded it by then, so those imports are dictionary lookups.
    import requests


class DevinError(Exception):
    """Base of what the Devin API can do to a call. Messages never hold the API key."""


class DevinUnavailable(DevinError):
    """Nothing was created or sent: the API answered 429 or 503 (a read: any of RETRYABLE), or could not be reached,
    until time or tries ran out."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DevinUnreadable(DevinUnavailable):
    """Devin answered 2xx with something that is not what was asked for (not JSON, nested too deep, no session):
    unlike an outage, asking again is likely to get the same answer."""


class DevinRejected(DevinError):
    """Nothing was created or sent: a 4xx other than 429 (credentials, permissions, the request) that an operator must
    fix. (A 404 from get_session or send_message is SessionNotFound instead.)"""

    def __init__(self, status: int) -> None:
        super().__init__(f"Devin API rejected the request with HTTP {status}")
        self.status = status


class DevinOutcomeUnknown(DevinError):
    """The create request (or message) was sent but its answer was lost, unreadable, or a 5xx that may come after
    Devin acted: a session (or the message) may exist."""


class SessionNotFound(DevinError):
    """Devin answered 404 for this session (get_session, send_message): it no longer exists, or never did.

    Nothing was sent to it. create_session and find_session report a 404 as DevinRejected(404) instead.
    """

    def __init__(self, session_id: str) -> None:
        # repr, and cut short: the id comes from Devin or from our ledger, and must not break a log line.
        super().__init__(f"Devin has no session {session_id[:100]!r}")
        self.session_id = session_id


MAX_PULL_REQUESTS = 20
MAX_URL_LENGTH = 2048

# "" would name the session list, and the HTTP client removes "." and ".." from a path: no request can name such a
# session, and one that tried would reach another resource (a POST to the list creates a session).
_UNNAMEABLE_IDS = frozenset({"", ".", ".."})


# Statuses worth another try. The docs publish no rate limits and do not say whether 429 carries Retry-After
# (UNCONFIRMED), so both are handled.
RETRYABLE = frozenset({429, 500, 502, 503, 504})
# Of those, what says that nothing was done, so that even a create or a message may be sent again at once: a rate
# limit, and a service that is unavailable. A 500, 502 or 504 (or any other 5xx) may come after Devin acted: a
# gateway that timed out while Devin created the session is the classic case (Devin v3 has no idempotency key).
NOTHING_DONE = frozenset({429, 503})
# How many pages of a session's messages are read at most (200 a page) when looking for one.
MESSAGE_PAGES = 5


def _session(document: Any) -> Session | None:
    if not isinstance(document, dict):
        return None
    session_id = document.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        return None
    url = document.get("url")
    return Session(session_id=session_id, url=url if isinstance(url, str) else None)


def _web_url(url: Any) -> TypeGuard[str]:
    """An absolute http(s) URL of printable ASCII without spaces, short enough to pass on."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return False
    if not (url.isascii() and url.isprintable()) or " " in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _pull_request_urls(pull_requests: Any) -> tuple[str, ...]:
    urls: dict[str, None] = {}  # keeps the order, drops duplicates
    for pull_request in pull_requests if isinstance(pull_requests, list) else ():
        if len(urls) == MAX_PULL_REQUESTS:
            break
        url = pull_request.get("pr_url") if isinstance(pull_request, dict) else None
        if _web_url(url):
            urls[url] = None
    return tuple(urls)


def _session_state(document: Any) -> SessionState | None:
    if not isinstance(document, dict):
        return None
    session_id = document.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        return None
    status = document.get("status")
    detail = document.get("status_detail")
    acus = document.get("acus_consumed")
    # bool is an int to Python, and Python's JSON reader accepts NaN and Infinity. (An int is always finite, and
    # math.isfinite would overflow on a huge one.)
    usable = (isinstance(acus, float) and math.isfinite(acus)) or (isinstance(acus, int) and not isinstance(acus, bool))
    return SessionState(
        session_id=session_id,
        status=status if isinstance(status, str) else "",
        status_detail=detail if isinstance(detail, str) else None,
        pull_request_urls=_pull_request_urls(document.get("pull_requests")),
        acus_consumed=acus if usable else None,
        structured_output=document.get("structured_output"),
        updated_at=_epoch_seconds(document.get("updated_at")),
    )


# Epoch values above this are milliseconds: in seconds it would be the year 5138.
_MILLISECONDS_FROM = 10**11


def _epoch_seconds(value: Any) -> float | None:
    """An epoch in seconds from Devin's integer timestamp, whichever unit it is in (UNCONFIRMED: seconds or ms)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 10**15:
        return None  # (a bound, not math.isfinite: that overflows on a huge int)
    return value / 1000 if value >= _MILLISECONDS_FROM else float(value)


class DevinClient:
    """Calls within `deadline` (a `clock()` value): it never starts an attempt it cannot finish in time."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        org_id: str,
        http: requests.Session,
        *,
        max_attempts: int = 4,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 4.0,
        min_attempt_time: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._sessions_url = f"{base_url}/v3/organizations/{org_id}/sessions"
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json", "User-Agent": USER_AGENT}
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
        return f"DevinClient({self._sessions_url!r})"

    def create_session(self, request: SessionRequest, deadline: float) -> Session:
        response = self._call("POST", self._sessions_url, deadline, json=request.body(), idempotent=False)
        session = _session(json_or_none(response))
        if session is None:
            raise DevinOutcomeUnknown(f"Devin answered HTTP {response.status_code} without a readable session id")
        return session

    def find_session(self, tag: str, deadline: float) -> Session | None:
        """The oldest session carrying `tag`, or None."""
        response = self._call("GET", self._sessions_url, deadline, params={"tags": tag, "first": 100}, idempotent=True)
        document = json_or_none(response)
        items = document.get("items") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise DevinUnavailable("Devin's session list was unreadable")
        # Filter again here: if the API ignored the filter, a wrong match would hide a missing session.
        tagged = [item for item in items if isinstance(item, dict) and tag in (item.get("tags") or [])]
        tagged.sort(key=lambda item: item.get("created_at") if isinstance(item.get("created_at"), int) else 0)
        sessions = [session for session in map(_session, tagged) if session is not None]
        return sessions[0] if sessions else None

    def get_session(self, session_id: str, deadline: float) -> SessionState:
        """The session as Devin reports it now; SessionNotFound when Devin has no such session."""
        response = self._call("GET", self._session_url(session_id), deadline, idempotent=True, session_id=session_id)
        state = _session_state(json_or_none(response))
        if state is None:
            raise DevinUnreadable(f"Devin answered HTTP {response.status_code} without a readable session")
        return state

    def send_message(self, session_id: str, message: str, deadline: float) -> SessionState | None:
        """Send `message` to the session. A suspended session is resumed by it ([DOC]).

        Not idempotent (Devin documents no idempotency key): as for a create, a request that may have reached Devin
        is never sent again, and a lost or unreadable answer after sending is DevinOutcomeUnknown. Returns the
        session from the answer, or None when a 2xx answer is not a readable session: the message was accepted
        all the same. (That the answer is a SessionResponse comes from third-party clients, [3P].)
        """
        url = self._session_url(session_id, "messages")
        response = self._call("POST", url, deadline, json={"message": message}, idempotent=False, session_id=session_id)
        return _session_state(json_or_none(response))

    def messages(self, session_id: str, deadline: float) -> list[str]:
        """The messages the session received, oldest first ([DOC] GET …/sessions/{devin_id}/messages, cursor
        paginated; at most MESSAGE_PAGES pages). SessionNotFound when Devin has no such session."""
        url = self._session_url(session_id, "messages")
        found: list[str] = []
        params: dict[str, Any] = {"first": 200}
        for _ in range(MESSAGE_PAGES):
            response = self._call("GET", url, deadline, params=params, idempotent=True, session_id=session_id)
            document = json_or_none(response)
            items = document.get("items") if isinstance(document, dict) else None
            if not isinstance(items, list):
                raise DevinUnavailable("Devin's message list was unreadable")
            found.extend(
                item["message"] for item in items if isinstance(item, dict) and isinstance(item.get("message"), str)
            )
            cursor = document.get("end_cursor")
            if document.get("has_next_page") is not True or not isinstance(cursor, str) or not cursor:
                break
            params = {"first": 200, "after": cursor}
        return found

    def _session_url(self, session_id: str, *rest: str) -> str:
        if session_id in _UNNAMEABLE_IDS:
            raise SessionNotFound(session_id)
        # Quoted whole, so a "/", "?", "#" or "%" in an id from Devin or our ledger stays inside its path segment.
        return "/".join((self._sessions_url, quote(session_id, safe=""), *rest))

    def _call(
        self,
        method: str,
        url: str,
        deadline: float,
        *,
        idempotent: bool,
        session_id: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send until a 2xx answer, within the tries and the deadline.

        A request that may have reached Devin is sent again only when `idempotent`, or after an answer that says
        nothing was done (NOTHING_DONE: 429, 503). Any other 5xx of a create or a message, like a lost answer, is
        DevinOutcomeUnknown: the session (or the message) may exist. (What Devin's gateways answer when Devin
        acted is UNCONFIRMED; that a 503 comes only before it acted is an assumption, as for 429.) With
        `session_id` the call is about that one session, and a 404 means it is gone: SessionNotFound. That Devin
        answers an unknown or deleted session with 404 is UNCONFIRMED: the per-session endpoints declare only 200
        and 422, and 404 is in the overview's list of standard codes.
        """
        import requests

        retry_after: float | None = None
        for attempt in range(1, self._retry.max_attempts + 1):
            timeout = self._retry.timeouts(deadline)
            if timeout is None:
                break
            try:
                response = self._http.request(method, url, headers=self._headers, timeout=timeout, **kwargs)
            except requests.RequestException as error:
                if not (idempotent or not_sent(error)):
                    raise DevinOutcomeUnknown(f"no answer from Devin after sending: {type(error).__name__}") from error
                retry_after = None
            else:
                if response.status_code < 300:
                    return response
                if response.status_code == 404 and session_id is not None:
                    raise SessionNotFound(session_id)
                if response.status_code >= 500 and not idempotent and response.status_code not in NOTHING_DONE:
                    raise DevinOutcomeUnknown(f"Devin answered HTTP {response.status_code} after the request was sent")
                if response.status_code not in RETRYABLE:
                    raise DevinRejected(response.status_code)
                retry_after = retry_after_seconds(response)
            if not self._retry.wait_to_retry(attempt, retry_after, deadline):
                break
        raise DevinUnavailable(
            "Devin API unavailable", retry_after=int(retry_after + 0.999) if retry_after is not None else None
        )
