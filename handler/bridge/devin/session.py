"""A Devin session as values: what the client returns, and what each documented status × status_detail means for
the follow-up (keep following, done, waiting for a person, stopped for billing or quota, failed).

Pure: no I/O. The statuses and details are the ones ../shared/reference/devin-api.md §2 lists from Devin's v3
OpenAPI; anything else is UNCONFIRMED, and is followed as work in progress until it becomes one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Session:
    session_id: str
    url: str | None


@dataclass(frozen=True)
class SessionState:
    """What a SessionResponse says about a session now."""

    session_id: str
    # As Devin gives it ("" if absent). Documented: new, claimed, running, exit, error, suspended, resuming. A finished
    # task can stay "running" with status_detail "finished" ([3P]: the detail is more reliable from the list call).
    status: str
    status_detail: str | None
    # pull_requests[].pr_url in order, without duplicates, only http(s) URLs; at most MAX_PULL_REQUESTS of them, each
    # at most MAX_URL_LENGTH characters (a longer one is dropped, not cut: a cut URL would link somewhere else).
    pull_request_urls: tuple[str, ...]
    acus_consumed: float | int | None
    # What the session filled in for the structured_output_schema given at creation, as Devin gives it: None while
    # there is none (Devin keeps it null when no schema was given). Checked by result.validation_error before use.
    structured_output: Any = None
    # updated_at in epoch seconds, None when absent. Devin documents an integer epoch without saying whether in
    # seconds or milliseconds (UNCONFIRMED): the client reads either.
    updated_at: float | None = None

    @property
    def phase(self) -> str:
        return phase(self.status, self.status_detail)


# What the follow-up does with a session (phase()).
WORKING = "working"  # keep following: it is being created, resumed, or works
DONE = "done"  # its work is over for now: read its result, post the summary once (after the resolve reached it)
WAITING = "waiting"  # it waits for a person: one note per waiting spell, and keep following
STOPPED = "stopped"  # suspended for billing, quota or a usage limit: one note, an alarm, and keep following
FAILED = "failed"  # it ended in an error: one note, and stop following

# status_detail while running (devin-api.md §2).
WAITING_DETAILS = frozenset({"waiting_for_user", "waiting_for_approval"})
# status_detail of a suspended session that stopped for money or limits, each in the words of the note that says so.
STOPPED_DETAILS = {
    "usage_limit_exceeded": "the session reached its usage limit (its maximum ACUs)",
    "out_of_credits": "the organization is out of Devin credits",
    "out_of_quota": "the organization is out of quota",
    "no_quota_allocation": "the organization has no quota allocated",
    "payment_declined": "the organization's payment was declined",
    "org_usage_limit_exceeded": "the organization reached its usage limit",
    "total_session_limit_exceeded": "the organization reached its limit of sessions",
}
FAILED_WORDS = "Devin's session ended with an error"

# Every documented status with every detail documented for it, and what the follow-up makes of each pair; a status
# Devin documents without a detail is listed with None. docs/configuration.md shows this table, and a test drives
# every line of it through the follow-up.
TABLE: dict[tuple[str, str | None], str] = {
    ("new", None): WORKING,
    ("claimed", None): WORKING,
    ("resuming", None): WORKING,
    ("running", None): WORKING,
    ("running", "working"): WORKING,
    ("running", "waiting_for_user"): WAITING,
    ("running", "waiting_for_approval"): WAITING,
    ("running", "finished"): DONE,
    ("exit", None): DONE,
    ("error", None): FAILED,
    ("suspended", None): DONE,
    ("suspended", "inactivity"): DONE,
    ("suspended", "user_request"): DONE,
    **{("suspended", detail): STOPPED for detail in STOPPED_DETAILS},
    ("suspended", "error"): FAILED,
}


def phase(status: str, detail: str | None) -> str:
    """What the follow-up does with a session in `status` × `detail` (TABLE, and for what it does not list: the
    status decides; an undocumented status is followed as work in progress)."""
    if (status, detail) in TABLE:
        return TABLE[(status, detail)]
    if status == "running":
        return WORKING  # an undocumented detail of a running session
    if status == "suspended":
        return DONE  # "any detail that is not billing, quota or error" (those are in TABLE)
    return TABLE.get((status, None), WORKING)


def stopped_words(state: SessionState) -> str:
    """Why a STOPPED or FAILED session stopped, in words of our own, for the note that says so."""
    return STOPPED_DETAILS.get(state.status_detail or "", FAILED_WORDS) if state.phase == STOPPED else FAILED_WORDS
