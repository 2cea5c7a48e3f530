"""Every way Devin, DynamoDB and SSM can fail one delivery, and what that means for the incident.

Each case asserts what PagerDuty hears, what the ledger holds afterwards (the claim released, flagged unknown,
or still held under its lease), and that the delivery after it ends with exactly one Devin session. PagerDuty
retries every 5xx and 429 for up to 48 hours, so "the next delivery" is that retry.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest
from bridge.devin.client import DevinClient
from bridge.postmortem import SETTLE_SECONDS

from local.devin_standin import DevinStandIn, Fault
from scripts.make_events import TEST_SIGNING_SECRET
from tests.conftest import (
    DEVIN_KEY,
    DEVIN_ORG,
    FakeContext,
    backdate,
    delete_parameter,
    ledger_item,
    put_parameter,
)
from tests.support.aws_faults import (
    APPLIED_THEN_LOST,
    CLAIM,
    CONNECTION,
    KILLED,
    MARK_UNKNOWN,
    READ_SECRETS,
    RECORD,
    RELEASE,
    InvocationKilled,
)
from tests.support.events import api_event, incident, payload

INCIDENT = "Q2CKYRLH85UNN4"
# Ledger states after a delivery, as claim_state() names them.
RELEASED = "released"  # no item: the next delivery starts afresh
UNKNOWN = "unknown"  # released, flagged: the next delivery looks the session up by tag before creating
STARTED = "started"  # the session is recorded
HELD = "held"  # still claimed: deliveries get 429 until the lease runs out


def deliver(invoke, *, remaining_ms: int = 25_000):
    """One delivery of the P1 resolve (a retry is the same delivery again)."""
    return invoke(api_event(incident(INCIDENT)), FakeContext(remaining_ms=remaining_ms))


def claim_state(incident_id: str = INCIDENT) -> str:
    item = ledger_item(incident_id)
    if item is None:
        return RELEASED
    return HELD if "claim_token" in item else item["status"]


def lease_runs_out(incident_id: str = INCIDENT) -> None:
    """Stands for the time passing until a dead holder's lease has expired, and Devin has long settled."""
    backdate(incident_id, "claim_expires_at", SETTLE_SECONDS + 1)


def devin_has_settled(incident_id: str = INCIDENT) -> None:
    """Stands for the time passing until a session lost on the way could no longer still appear."""
    backdate(incident_id, "outcome_lost_at", SETTLE_SECONDS + 1)


def exactly_one_session_recorded(devin: DevinStandIn, answer) -> None:
    assert (answer.status, answer.body["status"]) in ((200, "started"), (200, "duplicate")), answer
    assert len(devin.sessions) == 1
    assert answer.body["session_id"] == devin.sessions[0]["session_id"]
    assert ledger_item(INCIDENT)["session_id"] == devin.sessions[0]["session_id"]
    assert claim_state() == STARTED


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff waits pinned at 10% of their maximum (at most 0.2 s): each case is deterministic and quick.

    The schedule itself (full jitter, doubling, the cap) is tests/test_devin_client.py's business.
    """
    monkeypatch.setitem(DevinClient.__init__.__kwdefaults__, "jitter", lambda: 0.1)


# --- Devin ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevinCase:
    faults: tuple[Fault, ...]
    answer: int  # what PagerDuty hears on the first delivery
    retry_after: str | None  # its Retry-After header
    ledger: str  # the claim afterwards
    sessions: int  # Devin sessions after the first delivery
    then: str  # the next delivery's status
    remaining_ms: int = 25_000


def every_attempt(fault: Fault) -> tuple[Fault, ...]:
    return (fault,) * 4  # the client's max_attempts


DEVIN_CASES = {
    # Rate limited: Devin's Retry-After is honoured inside the invocation, or passed on to PagerDuty.
    "429-retry-after-then-created": DevinCase((Fault.status(429, retry_after=0),), 200, None, STARTED, 1, "duplicate"),
    "429-retry-after-http-date-then-created": DevinCase(
        (Fault.status(429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),), 200, None, STARTED, 1, "duplicate"
    ),
    "429-retry-after-every-attempt": DevinCase(
        every_attempt(Fault.status(429, retry_after=0)), 503, "30", RELEASED, 0, "started"
    ),
    "429-retry-after-beyond-the-invocation": DevinCase(
        (Fault.status(429, retry_after=120),), 503, "120", RELEASED, 0, "started"
    ),
    "429-no-retry-after-then-created": DevinCase((Fault.status(429),), 200, None, STARTED, 1, "duplicate"),
    "429-no-retry-after-every-attempt": DevinCase(every_attempt(Fault.status(429)), 503, "30", RELEASED, 0, "started"),
    # Unavailable: retried with backoff; nothing was created, so giving up releases the claim.
    "503-then-created": DevinCase((Fault.status(503),), 200, None, STARTED, 1, "duplicate"),
    "503-every-attempt": DevinCase(every_attempt(Fault.status(503)), 503, "30", RELEASED, 0, "started"),
    # Any other server error may come after Devin created the session (a gateway timing out while it worked): never
    # created again at once; flagged, and looked up by tag next time, like a lost answer.
    "500-nothing-created": DevinCase((Fault.status(500),), 503, "5", UNKNOWN, 0, "started"),
    "502-html-page-nothing-created": DevinCase(
        (Fault.status(502, b"<html><body>Bad Gateway</body></html>"),), 503, "5", UNKNOWN, 0, "started"
    ),
    **{
        f"{code}-after-creating": DevinCase((Fault.status(code, create=True),), 503, "5", UNKNOWN, 1, "started")
        for code in (500, 502, 504)
    },
    # Refusals an operator must fix: no retry inside the invocation, 502 so that PagerDuty keeps retrying.
    **{
        f"{code}-refused": DevinCase((Fault.status(code),), 502, None, RELEASED, 0, "started")
        for code in (401, 403, 422)
    },
    # The request may have reached Devin but no usable answer came back: flagged, looked up by tag next time.
    "reset-before-creating": DevinCase((Fault.reset(),), 503, "5", UNKNOWN, 0, "started"),
    "reset-mid-answer-after-creating": DevinCase((Fault.create_then_reset(),), 503, "5", UNKNOWN, 1, "started"),
    "answer-slower-than-the-invocation": DevinCase(
        # 3.2 s left: 1.2 s for Devin once the ledger's 2 s reserve is kept back; Devin answers after 2 s.
        (Fault.create_then_hang(2),),
        503,
        "5",
        UNKNOWN,
        1,
        "started",
        remaining_ms=3200,
    ),
    "201-body-not-json": DevinCase((Fault.bad_body_created(),), 503, "5", UNKNOWN, 1, "started"),
    "201-without-session-id": DevinCase((Fault.missing_id_created(),), 503, "5", UNKNOWN, 1, "started"),
    # JSON nested beyond Python's recursion limit used to escape as an unplanned 500 that released the claim,
    # so the retry started a second session.
    "201-body-nested-too-deep": DevinCase(
        (Fault.status(201, b"[" * 100_000 + b"]" * 100_000, create=True, content_type="application/json"),),
        503,
        "5",
        UNKNOWN,
        1,
        "started",
    ),
}


@pytest.mark.parametrize("case", DEVIN_CASES.values(), ids=DEVIN_CASES.keys())
def test_a_devin_fault_ends_with_exactly_one_session(invoke, devin, quick_backoff, case: DevinCase) -> None:
    # GIVEN Devin misbehaves on the first delivery's create call(s)
    devin.enqueue(*case.faults)

    # WHEN PagerDuty delivers the resolve
    first = deliver(invoke, remaining_ms=case.remaining_ms)

    # THEN it hears a retryable answer (or 200), and the ledger is left so that its retry does the right thing
    assert (first.status, first.headers.get("Retry-After")) == (case.answer, case.retry_after), first.body
    assert claim_state() == case.ledger
    assert len(devin.sessions) == case.sessions
    # AND PagerDuty's retry ends with exactly one session, recorded
    retry = deliver(invoke)
    if case.ledger == UNKNOWN and case.sessions == 0:
        # Nothing was created, but for all the bridge knows Devin is still creating it: the retry that finds
        # nothing waits for Devin to settle (503) rather than risk a second session, and the one after starts it.
        assert (retry.status, ledger_item(INCIDENT)["status"]) == (503, "unknown"), retry.body
        devin_has_settled()
        retry = deliver(invoke)
    assert retry.body["status"] == case.then
    exactly_one_session_recorded(devin, retry)


def test_an_unknown_outcome_is_resolved_by_tag_without_a_second_create(invoke, devin) -> None:
    # GIVEN Devin created the session but the answer never arrived
    devin.enqueue(Fault.create_then_reset())
    assert deliver(invoke).status == 503

    # WHEN PagerDuty retries
    retry = deliver(invoke)

    # THEN the retry listed sessions by the incident's tag and created nothing
    assert [r.method for r in devin.requests] == ["POST", "GET"]
    assert devin.requests[1].query["tags"] == [f"pagerduty-incident:{INCIDENT}"]
    exactly_one_session_recorded(devin, retry)


def test_an_unplanned_error_after_the_create_flags_the_incident_so_the_retry_finds_the_session(
    invoke, devin, monkeypatch
) -> None:
    # GIVEN a bug that blows up once Devin has created the session (the create call itself went through)
    real_create = DevinClient.create_session
    crashes = [RuntimeError("a bug reading Devin's answer")]

    def create_then_crash(self, request, deadline):
        session = real_create(self, request, deadline)
        if crashes:
            raise crashes.pop()
        return session

    monkeypatch.setattr(DevinClient, "create_session", create_then_crash)

    first = deliver(invoke)

    # THEN the answer is the planned "internal error", and the incident is flagged rather than released
    assert (first.status, first.body) == (500, {"message": "internal error"})
    assert claim_state() == UNKNOWN
    # AND the retry finds the session by tag instead of creating a second one
    retry = deliver(invoke)
    assert len(devin.create_requests()) == 1
    exactly_one_session_recorded(devin, retry)


def test_connection_refused_releases_the_claim_and_the_retry_starts_the_session(
    invoke, quick_backoff, monkeypatch
) -> None:
    # GIVEN Devin's address answers nothing (a port with no listener)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DEVIN_API_BASE_URL", f"http://127.0.0.1:{port}")

    first = deliver(invoke)

    # THEN nothing can have been created: the claim is released and PagerDuty is told to retry
    assert (first.status, first.headers.get("Retry-After")) == (503, "30")
    assert claim_state() == RELEASED
    # WHEN Devin is reachable again, the retry starts the one session
    with DevinStandIn(port=port, api_key=DEVIN_KEY, org_id=DEVIN_ORG) as devin:
        exactly_one_session_recorded(devin, deliver(invoke))


# --- DynamoDB -------------------------------------------------------------------------------------------

LEDGER_ERRORS = ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError", CONNECTION]


@pytest.mark.parametrize("error", LEDGER_ERRORS)
def test_a_failed_claim_is_a_503_and_starts_no_session(invoke, devin, aws_faults, error: str) -> None:
    aws_faults.fail(CLAIM, error, times=1)

    first = deliver(invoke)

    assert (first.status, first.headers.get("Retry-After")) == (503, "30")
    assert devin.requests == []  # no claim, no session
    assert claim_state() == RELEASED
    exactly_one_session_recorded(devin, deliver(invoke))


def test_a_claim_applied_but_unanswered_holds_the_incident_until_its_lease_runs_out(invoke, devin, aws_faults) -> None:
    # GIVEN DynamoDB took the claim but its answer timed out
    aws_faults.fail(CLAIM, APPLIED_THEN_LOST, times=1)

    first = deliver(invoke)

    # THEN no session was started, and the orphaned claim makes retries wait (429) rather than race
    assert (first.status, first.headers.get("Retry-After")) == (503, "30")
    assert devin.requests == []
    assert claim_state() == HELD
    during_lease = deliver(invoke)
    assert during_lease.status == 429
    assert int(during_lease.headers["Retry-After"]) >= 1
    # AND once the lease has run out the retry looks for a session, finds none, and starts one
    lease_runs_out()
    exactly_one_session_recorded(devin, deliver(invoke))


@pytest.mark.parametrize("error", LEDGER_ERRORS)
def test_a_failed_final_write_is_a_503_and_the_retry_finds_the_session_by_tag(
    invoke, devin, aws_faults, error: str
) -> None:
    # GIVEN the session is created but DynamoDB fails the write that records it
    aws_faults.fail(RECORD, error, times=1)

    first = deliver(invoke)

    assert (first.status, first.headers.get("Retry-After")) == (503, "30")
    assert claim_state() == UNKNOWN
    retry = deliver(invoke)
    assert len(devin.create_requests()) == 1
    exactly_one_session_recorded(devin, retry)


def test_when_the_final_write_and_its_clean_up_fail_the_lease_keeps_a_second_session_away(
    invoke, devin, aws_faults
) -> None:
    aws_faults.fail(RECORD, "InternalServerError", times=1)
    aws_faults.fail(MARK_UNKNOWN, "ProvisionedThroughputExceededException", times=1)

    first = deliver(invoke)

    assert first.status == 503
    assert claim_state() == HELD
    assert deliver(invoke).status == 429
    lease_runs_out()
    retry = deliver(invoke)
    assert len(devin.create_requests()) == 1
    exactly_one_session_recorded(devin, retry)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the kill also skipped the metrics
def test_an_invocation_killed_between_creating_and_recording_never_leads_to_a_second_session(
    invoke, devin, aws_faults
) -> None:
    # GIVEN the process dies at the final write: no answer, no clean-up, the claim left behind
    aws_faults.fail(RECORD, KILLED, times=1)
    with pytest.raises(InvocationKilled):
        deliver(invoke)
    assert len(devin.sessions) == 1
    assert claim_state() == HELD

    # WHEN PagerDuty retries (its request timed out) THEN it is told to wait while the lease lasts
    assert deliver(invoke).status == 429
    # AND after the lease the retry finds the session by its tag instead of creating another
    lease_runs_out()
    retry = deliver(invoke)
    assert len(devin.create_requests()) == 1
    exactly_one_session_recorded(devin, retry)


def test_a_failed_release_after_devin_failed_leaves_a_lease_and_the_retry_after_it_starts_the_session(
    invoke, devin, aws_faults
) -> None:
    devin.enqueue(*every_attempt(Fault.status(503, retry_after=0)))
    aws_faults.fail(RELEASE, "InternalServerError", times=1)

    first = deliver(invoke)

    assert (first.status, first.headers.get("Retry-After")) == (503, "30")  # Devin's failure, not the clean-up's
    assert claim_state() == HELD
    assert deliver(invoke).status == 429
    lease_runs_out()
    exactly_one_session_recorded(devin, deliver(invoke))


def test_a_failed_unknown_flag_after_a_lost_answer_leaves_a_lease_and_the_retry_finds_the_session(
    invoke, devin, aws_faults
) -> None:
    devin.enqueue(Fault.create_then_reset())
    aws_faults.fail(MARK_UNKNOWN, "ThrottlingException", times=1)

    first = deliver(invoke)

    assert (first.status, first.headers.get("Retry-After")) == (503, "5")
    assert claim_state() == HELD
    lease_runs_out()
    retry = deliver(invoke)
    assert len(devin.create_requests()) == 1
    exactly_one_session_recorded(devin, retry)


# --- SSM ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["ThrottlingException", "InternalServerError", CONNECTION])
def test_ssm_unavailable_on_a_cold_start_is_a_503_and_starts_nothing(
    invoke, devin, aws_faults, aws_calls, error: str
) -> None:
    aws_faults.fail(READ_SECRETS, error, times=1)

    first = deliver(invoke)

    assert (first.status, first.headers.get("Retry-After")) == (503, "30")
    assert devin.requests == []
    assert not [call for call in aws_calls if call.startswith("dynamodb.")]
    exactly_one_session_recorded(devin, deliver(invoke))


def test_ssm_unavailable_on_a_warm_container_is_answered_from_the_cached_secrets(invoke, devin, aws_faults) -> None:
    assert invoke(api_event(payload("pagey-ping.json"))).status == 200  # the secrets are read and cached
    aws_faults.fail(READ_SECRETS, "ThrottlingException")

    exactly_one_session_recorded(devin, deliver(invoke))


PARAMETERS = {"devin-api-key": DEVIN_KEY, "devin-org-id": DEVIN_ORG, "pagerduty-signing-secret": TEST_SIGNING_SECRET}


@pytest.mark.parametrize("name", PARAMETERS)
def test_a_missing_parameter_is_a_500_until_it_is_added_then_the_retry_starts_the_session(
    invoke, devin, name: str
) -> None:
    delete_parameter(name)

    first = deliver(invoke)

    assert first.status == 500
    assert "not configured" in first.body["message"]
    assert (devin.requests, claim_state()) == ([], RELEASED)
    # WHEN the operator adds it THEN the very next retry works: an incomplete configuration is never cached
    put_parameter(name, PARAMETERS[name], secure=name != "devin-org-id")
    exactly_one_session_recorded(devin, deliver(invoke))


def test_no_parameter_readable_is_a_503_not_a_configuration_error(invoke, devin) -> None:
    for name in ("devin-api-key", "devin-org-id", "pagerduty-signing-secret"):
        delete_parameter(name)

    answer = deliver(invoke)

    # SSM reports an internal error or a KMS failure as "every name failed": worth PagerDuty's retries
    assert (answer.status, answer.headers.get("Retry-After")) == (503, "30")
    assert (devin.requests, claim_state()) == ([], RELEASED)
