"""Acts on a delivery that reached the ledger: starts the incident's session or forwards the event to it, with the
clients and deadlines of this invocation.

app.py imports this module on the first delivery that gets this far, not at init: most deliveries are ignored or
refused, and a container that only ever sees those never loads the Devin, PagerDuty and ledger code.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from .credentials import Credentials
from .dependencies import Dependencies
from .devin.client import DevinClient
from .devin.composer import Composer
from .devin.routing import Rule
from .pagerduty.client import PagerDutyClient
from .parameters import SessionSetup
from .postmortem import NOTE_SECONDS, Forwarding, NoteWriter, Outcome, forward_event, start_postmortem
from .webhook.policy import Delivery

# Kept back from the Devin call for the ledger writes after it.
LEDGER_RESERVE_SECONDS = 2.0
# A claim outlives its invocation by this much, so that it never expires while its holder still runs.
LEASE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Invocation:
    """What this invocation brings to the delivery."""

    deps: Dependencies
    credentials: Credentials
    setup: SessionSetup | None
    remaining_seconds: float  # what Lambda leaves this invocation
    pagerduty_time_left: Callable[[], float]  # what this delivery's PagerDuty calls may still take in all
    on_unavailable: Callable[[str, str], None]  # a part of PagerDuty's record could not be read: (part, why)


def _pagerduty(invocation: Invocation) -> PagerDutyClient | None:
    """PagerDuty's REST API, when its key is configured; without one the function never calls PagerDuty."""
    credentials = invocation.credentials
    if not credentials.pagerduty_api_key:
        return None
    return PagerDutyClient(
        invocation.deps.settings.pagerduty_api_base_url,
        credentials.pagerduty_api_key,
        invocation.deps.pagerduty_http,
        from_email=credentials.pagerduty_from_email,
    )


def handle(delivery: Delivery, rule: Rule | None, invocation: Invocation) -> Outcome:
    """Start the incident's session (when the delivery may) or forward its event to the session."""
    deps, credentials, settings = invocation.deps, invocation.credentials, invocation.deps.settings
    remaining = invocation.remaining_seconds
    pagerduty = _pagerduty(invocation)
    notes = None
    if pagerduty is not None and credentials.writes_pagerduty:
        notes = NoteWriter(
            pagerduty,
            lease_seconds=2 * NOTE_SECONDS + LEASE_MARGIN_SECONDS,
            time_left=invocation.pagerduty_time_left,
        )
    composer = Composer(
        settings.playbook_id,
        pagerduty,
        settings.pagerduty_read_seconds,
        prompt_template=invocation.setup.prompt_template if invocation.setup is not None else None,
        postmortem_repo=settings.postmortem_repo,
        lookback_minutes=settings.timeline_lookback_minutes,
        on_unavailable=invocation.on_unavailable,
    )
    forwarding = None
    if delivery.forwardable:
        forwarding = Forwarding(
            always=delivery.forward,
            compose=functools.partial(composer.message, delivery),
            lease_seconds=remaining + LEASE_MARGIN_SECONDS,
            follow=pagerduty is not None,
        )
    devin = DevinClient(
        settings.devin_api_base_url, credentials.devin_api_key or "", credentials.devin_org_id or "", deps.devin_http
    )
    deadline = time.monotonic() + remaining - LEDGER_RESERVE_SECONDS - (2 * NOTE_SECONDS if notes is not None else 0)
    if delivery.start is None and delivery.incident is not None:
        return start_postmortem(
            delivery.incident,
            delivery.event,
            functools.partial(composer.session_request, delivery.incident, delivery.event, rule),
            ledger=deps.ledger,
            devin=devin,
            deadline=deadline,
            lease_seconds=remaining + LEASE_MARGIN_SECONDS,
            settle_seconds=settings.settle_seconds,
            notes=notes,
            follow=pagerduty is not None,
            forwarding=forwarding,
        )
    if forwarding is None:  # select() gives a start only to incident data; app.py answers what can do neither
        raise RuntimeError("a delivery that can neither start nor be forwarded reached the ledger")
    return forward_event(
        delivery.event,
        delivery.incident_id,
        forwarding,
        ledger=deps.ledger,
        devin=devin,
        deadline=deadline,
        notes=notes,
        not_started=delivery.start,
    )
