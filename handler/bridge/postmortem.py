"""Starts exactly one Devin postmortem session per incident: claim in the ledger, call Devin, record the answer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from .devin import DevinClient, DevinOutcomeUnknown, DevinRejected, DevinUnavailable, Session
from .errors import BridgeError, IncidentInFlight, Unavailable
from .ledger import Claim, Held, Ledger, LedgerUnavailable, Recorded
from .pagerduty import Incident, WebhookEvent
from .prompt import SessionRequest, incident_tag

logger = Logger(child=True)

# Devin may still be creating a session when its answer is lost (our call timed out first), so a lookup made
# soon after can miss a session that is about to appear. For this long after an outcome was lost, a lookup
# that finds nothing answers 503 rather than creating: PagerDuty's retry looks again. (DEVIN_SETTLE_SECONDS)
SETTLE_SECONDS = 60


@dataclass(frozen=True)
class Outcome:
    status: str  # "started" or "duplicate"
    incident_id: str
    session: Session


class _StillSettling(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after} s")
        self.retry_after = retry_after


class DevinFailed(BridgeError):
    """Devin refused the request (credentials, permissions, the request itself): an operator must act."""

    status_code = 502


def start_postmortem(
    incident: Incident,
    event: WebhookEvent,
    request: SessionRequest,
    *,
    ledger: Ledger,
    devin: DevinClient,
    deadline: float,
    lease_seconds: float,
    settle_seconds: float = SETTLE_SECONDS,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    claim = ledger.claim(incident, event, lease_seconds)
    if isinstance(claim, Recorded):
        return Outcome("duplicate", incident.id, claim.session)
    if isinstance(claim, Held):
        raise IncidentInFlight("another delivery for this incident is in progress", retry_after=claim.retry_after)

    try:
        session = devin.find_session(incident_tag(incident.id), deadline) if claim.reconcile else None
        if session is not None:
            logger.info("found the session of an earlier attempt", extra={"session_id": session.session_id})
        elif claim.lost_at is not None and (wait := claim.lost_at + settle_seconds - clock()) > 0:
            raise _StillSettling(math.ceil(wait))
        else:
            session = devin.create_session(request, deadline)
    except _StillSettling as settling:
        _settle(ledger.mark_unknown, claim)
        raise Unavailable(
            "an earlier attempt's session may still appear; the next delivery will look again",
            retry_after=settling.retry_after,
        ) from None
    except DevinOutcomeUnknown as error:
        _settle(ledger.mark_unknown, claim)
        raise Unavailable(
            "Devin's answer was lost; the next delivery will look the session up", retry_after=5
        ) from error
    except DevinUnavailable as error:
        _settle(ledger.release, claim)
        raise Unavailable("Devin API unavailable", retry_after=error.retry_after or 30) from error
    except DevinRejected as error:
        _settle(ledger.release, claim)
        raise DevinFailed(str(error)) from error
    except BaseException:
        # Something unplanned, maybe after the create was sent: a session may exist, so the retry looks first.
        _settle(ledger.mark_unknown, claim)
        raise

    try:
        ledger.record(claim, session)
    except LedgerUnavailable:
        # The session exists but is not recorded. Flag it so that the retry looks it up instead of creating a
        # second one; if even that write fails, the claim's lease runs out and the retry after it looks it up.
        _settle(ledger.mark_unknown, claim)
        raise
    return Outcome("started", incident.id, session)


def _settle(step: Callable[[Claim], None], claim: Claim) -> None:
    """Run a clean-up write whose failure must not hide the error being answered."""
    try:
        step(claim)
    except LedgerUnavailable:
        logger.exception("ledger clean-up failed; the claim's lease will expire instead")
