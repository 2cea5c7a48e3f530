"""The function's settings, read from its environment once per cold start."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigurationError

ANY = "*"


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    """A setting, with its default when unset or blank (SAM passes empty parameters as "")."""
    return env.get(name, "").strip() or default


def _csv(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _http_url(name: str, value: str) -> str:
    """An http(s) URL without its trailing slash; http is allowed so that tests can use a stand-in on 127.0.0.1."""
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise ConfigurationError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


def _repository(value: str) -> str | None:
    """An owner/name repository, or None when unset."""
    if not value:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value):
        raise ConfigurationError("POSTMORTEM_REPO must be a repository as owner/name, such as acme/postmortems")
    return value


def _labels(value: str) -> frozenset[str] | None:
    """A comma-separated allow list, casefolded; None means "any" (the list holds `*`)."""
    labels = _csv(value)
    return None if ANY in labels else frozenset(label.casefold() for label in labels)


@dataclass(frozen=True)
class Settings:
    table_name: str
    ssm_prefix: str
    devin_api_base_url: str
    event_types: frozenset[str]
    priorities: frozenset[str] | None
    urgencies: frozenset[str] | None
    playbook_id: str | None
    ledger_retention_days: int
    secrets_max_age: int
    settle_seconds: int
    pagerduty_api_base_url: str = "https://api.pagerduty.com"
    # The hard budget for every PagerDuty read of one delivery together.
    pagerduty_read_seconds: float = 3.0
    # Event types forwarded as a message to the incident's existing session.
    follow_up_event_types: frozenset[str] = frozenset()
    # How long the scheduled follow-up keeps reading a session.
    follow_up_days: float = 7
    # An event older than this is a stale or replayed delivery (0: no check). PagerDuty retries for 48 hours.
    max_event_age_hours: float = 72.0
    # The follow-up asks a session that is done without its structured result for it, once (opt-in: it costs ACUs).
    ask_for_missing_result: bool = False
    # Self-hosted code hosts whose pull requests may be linked on the incident, beside the public ones.
    pull_request_hosts: frozenset[str] = frozenset()
    # The repository postmortems go to when no routing rule names one (owner/name); None: Devin finds the team's.
    postmortem_repo: str | None = None
    # How far before the incident was created the evidence window and the timeline start.
    timeline_lookback_minutes: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        table_name = _get(env, "TABLE_NAME", "")
        if not table_name:
            raise ConfigurationError("TABLE_NAME is not set")
        prefix = "/" + _get(env, "SSM_PARAMETER_PREFIX", "/pagerduty-postmortem").strip("/")
        try:
            retention_days = int(_get(env, "LEDGER_RETENTION_DAYS", "90"))
            # Powertools' own variable; its default of 5 s would mean an SSM call every few requests.
            max_age = int(_get(env, "POWERTOOLS_PARAMETERS_MAX_AGE", "300"))
            # Not in the template: 60 s suits Devin; the local storm scales it down with PagerDuty's retries.
            settle_seconds = int(_get(env, "DEVIN_SETTLE_SECONDS", "60"))
            follow_up_days = float(_get(env, "FOLLOW_UP_DAYS", "7"))
            read_seconds = float(_get(env, "PAGERDUTY_READ_SECONDS", "3"))
            max_event_age_hours = float(_get(env, "MAX_EVENT_AGE_HOURS", "72"))
            lookback = int(_get(env, "TIMELINE_LOOKBACK_MINUTES", "30"))
        except ValueError as error:
            raise ConfigurationError(
                "LEDGER_RETENTION_DAYS, POWERTOOLS_PARAMETERS_MAX_AGE and TIMELINE_LOOKBACK_MINUTES must be integers, "
                "FOLLOW_UP_DAYS, "
                "PAGERDUTY_READ_SECONDS and MAX_EVENT_AGE_HOURS numbers"
            ) from error
        if not 0 <= read_seconds <= 4:
            # PagerDuty waits 5 s for an answer; a budget beyond 4 s cannot serve the delivery it is for.
            raise ConfigurationError("PAGERDUTY_READ_SECONDS must be between 0 and 4")
        return cls(
            table_name=table_name,
            ssm_prefix=prefix,
            devin_api_base_url=_get(env, "DEVIN_API_BASE_URL", "https://api.devin.ai").rstrip("/"),
            event_types=_csv(_get(env, "EVENT_TYPES", "incident.resolved")),
            priorities=_labels(_get(env, "PRIORITIES", "P1,P2")),
            urgencies=_labels(_get(env, "URGENCIES", "high")),
            playbook_id=_get(env, "DEVIN_PLAYBOOK_ID", "") or None,
            ledger_retention_days=max(retention_days, 1),
            secrets_max_age=max(max_age, 0),
            settle_seconds=max(settle_seconds, 0),
            pagerduty_api_base_url=_http_url(
                "PAGERDUTY_API_BASE_URL", _get(env, "PAGERDUTY_API_BASE_URL", "https://api.pagerduty.com")
            ),
            pagerduty_read_seconds=read_seconds,
            follow_up_event_types=_csv(_get(env, "FOLLOW_UP_EVENT_TYPES", "")),
            follow_up_days=max(follow_up_days, 1.0),
            max_event_age_hours=max(max_event_age_hours, 0.0),
            ask_for_missing_result=_get(env, "ASK_FOR_MISSING_RESULT", "false").lower() == "true",
            pull_request_hosts=_csv(_get(env, "PULL_REQUEST_HOSTS", "")),
            postmortem_repo=_repository(_get(env, "POSTMORTEM_REPO", "")),
            timeline_lookback_minutes=min(max(lookback, 0), 1440),
        )
