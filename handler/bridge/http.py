"""What both HTTP clients share: who they say they are, reading an answer's JSON, telling a request that cannot have
been sent, Retry-After, and when to try again within a deadline."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from urllib3.exceptions import NewConnectionError

if TYPE_CHECKING:
    # Imported where it is used: most deliveries never call an API, and importing requests costs every cold start
    # about 20 ms. The caller's Session has loaded it by then, so those imports are dictionary lookups.
    import requests

# The bridge's version: the one place it is written. Raise it when a release changes what the bridge sends.
VERSION = "0.1.0"
# Sent by both clients (and scripts/doctor's PagerDuty check), so that PagerDuty's and Devin's logs, and an operator
# reading them, can tell the bridge's calls from anything else made with the same key.
USER_AGENT = f"pagerduty-postmortem-bridge/{VERSION}"


def json_or_none(response: requests.Response) -> Any:
    """The answer's JSON, or None when it cannot be read."""
    try:
        return response.json()
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read: unreadable either way
        return None


def not_sent(error: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (refused, DNS, connect timeout): safe to send again,
    even a request that is not idempotent."""
    import requests

    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # requests wraps urllib3's MaxRetryError
    return isinstance(error, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def retry_after_seconds(response: requests.Response, clock: Callable[[], float] = time.time) -> float | None:
    """The answer's Retry-After in seconds (from a number of seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - clock(), 0.0)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How a client spends its tries within a deadline (a `clock()` value): it never starts an attempt with less
    than `min_attempt_time` left, nor a wait it could not follow with an attempt, and caps each request's connect
    and read timeouts by the time left."""

    max_attempts: int
    connect_timeout: float
    read_timeout: float
    backoff_base: float
    backoff_cap: float
    min_attempt_time: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    jitter: Callable[[], float]

    def timeouts(self, deadline: float) -> tuple[float, float] | None:
        """The (connect, read) timeouts for an attempt starting now, or None when too little time is left for one."""
        remaining = deadline - self.clock()
        if remaining < self.min_attempt_time:
            return None
        return min(self.connect_timeout, remaining), min(self.read_timeout, remaining)

    def wait_to_retry(self, attempt: int, hint: float | None, deadline: float) -> bool:
        """After failed attempt number `attempt` (from 1), sleep until the next one: `hint` seconds when the server
        asked for them, else a backoff. False, without sleeping, when the tries or the time would run out first."""
        if attempt == self.max_attempts:
            return False
        wait = hint if hint is not None else self.backoff(attempt)
        if self.clock() + wait + self.min_attempt_time > deadline:
            return False
        self.sleep(wait)
        return True

    def backoff(self, attempt: int) -> float:
        # Full jitter: spreads the retries of concurrent deliveries sharing one rate limit.
        return self.jitter() * min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
