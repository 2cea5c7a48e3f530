"""Replays a storm of PagerDuty deliveries through the local stack and checks that exactly-once held.

    python -m local.storm [--deliveries 1000] [--incidents 300] [--failure-rate 0.1] [--concurrency 16]
                          [--seed N] [--workers 4] [--logs FILE]

Everything sent is planned from --seed before the stack starts:
- `incidents` incidents, each with a severity (P1, P2 or P3 with either urgency, or no priority with high or
  low urgency); most resolve, some of those were merged into another incident, a few reopen and resolve again;
- `deliveries` deliveries over them: every incident's resolve (its trigger if it never resolves), more of its
  lifecycle (triggered, acknowledged, annotated), a few pings, and PagerDuty's at-least-once duplicates (the
  same delivery again: same bytes, same X-Webhook-Id), in shuffled order.

The stand-in Devin fails --failure-rate of its create calls with a seeded transient fault (429 with and without
Retry-After, 500/502/503, resets before creating, and answers lost after the session was created, see
local/devin_standin.py). `concurrency` senders deliver the storm as PagerDuty does, scaled down from hours to
seconds: wait 5 s for an answer, retry 5xx, 429 and timeouts (honouring Retry-After, capped at a second),
drop any other 4xx. Counts and time are bounded (attempts per delivery, a time limit for the whole run).

Then it checks, against the contract stated here and not by asking the handler which incidents qualify, that
every qualifying incident has exactly one Devin session and one `started` ledger item naming it, no other
incident has either, no genuine delivery got a 4xx other than 429, and every delivery ended with the
contract's 2xx. Exits 0 only if every invariant holds, 1 if one does not, 2 if the stack cannot start.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import heapq
import http.client
import itertools
import json
import os
import random
import string
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from local.send import USER_AGENT, signature_header
from local.stack import LocalStack, StackError
from scripts.make_events import PAYLOADS_DIR, TEST_SIGNING_SECRET

# The contract (docs/configuration.md, "Configuration", with template.yaml's defaults). The storm decides from these
# which incidents deserve a session; it only checks that the stack runs with the same settings.
EVENT_TYPES = frozenset({"incident.resolved"})
PRIORITIES = frozenset({"p1", "p2"})  # labels compared without case
URGENCIES = frozenset({"high"})  # used only when the incident has no priority
TAG_PREFIX = "pagerduty-incident:"

# PagerDuty's delivery, scaled down. It waits 5 s for an answer (kept: a slower answer is a timeout, as in
# production) and retries for up to 48 hours (here: Retry-After honoured up to a second, else a short backoff).
ANSWER_TIMEOUT_SECONDS = 5.0
RETRY_AFTER_CAP_SECONDS = 1.0
BACKOFF_BASE_SECONDS = 0.2
# Bounds. A retry comes at most every second, so 40 attempts outlast the longest hold the stand-in can cause
# (an 11 s hang keeps a claim for about 10 s); the time limit stops the run if the stack wedges.
MAX_ATTEMPTS = 40
# The bridge waits this long after a lost Devin answer before it creates a session no lookup could find
# (60 s in production, where PagerDuty retries for 48 hours); scaled down with the retries above.
SETTLE_SECONDS = 3
# How long the stand-in takes to answer each call. Creating a real session takes longer; this is enough for
# deliveries of one incident to overlap the call that holds its claim, and short enough for a quick run.
DEVIN_LATENCY_SECONDS = 0.2
TIME_LIMIT_SECONDS = 300.0

# The storm's shape: shares of the planned deliveries and incidents.
DUPLICATE_SHARE = 0.15  # deliveries that are an earlier delivery again
CLOSE_DUPLICATE_SHARE = 0.5  # of those: sent within a few deliveries of the original, the rest anywhere
PING_SHARE = 0.02
RESOLVE_SHARE = 0.85  # incidents that resolve within the storm
MERGED_SHARE = 0.1  # of the resolved ones: resolved by merging into another incident
REOPEN_SHARE = 0.1  # of the resolved ones: reopened and resolved again (a second, distinct resolve delivery)
# (priority label or None, share); an incident's urgency is high or low with equal odds.
SEVERITIES: tuple[tuple[str | None, float], ...] = (("P1", 0.15), ("P2", 0.2), ("P3", 0.2), (None, 0.45))

_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as PagerDuty's event ids
_EPOCH = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class StormConfig:
    deliveries: int = 1000
    incidents: int = 300
    failure_rate: float = 0.1
    concurrency: int = 16
    seed: int = 1
    workers: int = 4
    devin_latency: float = DEVIN_LATENCY_SECONDS
    time_limit: float = TIME_LIMIT_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    retry_after_cap: float = RETRY_AFTER_CAP_SECONDS

    def check(self) -> None:
        """Raise ValueError for a configuration the storm cannot plan or run."""
        if self.incidents < 1:
            raise ValueError("incidents must be at least 1")
        if self.deliveries < self.incidents:
            raise ValueError("deliveries must be at least incidents: every incident gets a delivery")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure rate must be between 0 and 1")
        if self.concurrency < 1 or self.workers < 1 or self.max_attempts < 1:
            raise ValueError("concurrency, workers and max attempts must be at least 1")
        if self.time_limit <= 0 or self.retry_after_cap < 0 or self.devin_latency < 0:
            raise ValueError("the time limit must be positive, the Retry-After cap and Devin's latency not negative")


@dataclass(frozen=True)
class Incident:
    id: str
    number: int
    priority: str | None
    urgency: str
    resolves: bool
    merged: bool
    reopens: bool

    def severe_enough(self) -> bool:
        if self.priority is not None:
            return self.priority.casefold() in PRIORITIES
        return self.urgency.casefold() in URGENCIES


@dataclass(frozen=True)
class Delivery:
    """One delivery as PagerDuty makes it; a duplicate has the same webhook id and body as its original."""

    webhook_id: str
    event_type: str
    incident_id: str | None
    body: bytes
    duplicate: bool = False


@dataclass(frozen=True)
class Plan:
    incidents: dict[str, Incident]
    deliveries: list[Delivery]  # in the order they are sent

    def qualifying(self) -> set[str]:
        """Incidents the contract says get a session: a delivered event of a configured type, severe, not merged."""
        delivered = {(d.incident_id, d.event_type) for d in self.deliveries if d.incident_id is not None}
        return {
            incident.id
            for incident in self.incidents.values()
            if any((incident.id, kind) in delivered for kind in EVENT_TYPES)
            and incident.severe_enough()
            and not incident.merged
        }


# --- planning


def _templates() -> dict[str, dict[str, Any]]:
    return {
        name: json.loads((PAYLOADS_DIR / f"{name}.json").read_text(encoding="utf-8"))
        for name in ("incident-resolved-p1", "incident-annotated", "pagey-ping")
    }


def _event_id(rng: random.Random) -> str:
    return "01JP" + "".join(rng.choice(_ULID_ALPHABET) for _ in range(22))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _incident_body(
    template: dict[str, Any], incident: Incident, event_type: str, occurred: datetime, rng: random.Random
) -> dict[str, Any]:
    body = copy.deepcopy(template)
    event = body["event"]
    event.update(id=_event_id(rng), event_type=event_type, occurred_at=_iso(occurred))
    data = event["data"]
    data.update(
        id=incident.id,
        number=incident.number,
        self=f"https://api.pagerduty.com/incidents/{incident.id}",
        html_url=f"https://acme.pagerduty.com/incidents/{incident.id}",
        status=event_type.removeprefix("incident."),
        incident_key=uuid.UUID(int=rng.getrandbits(128)).hex,
        created_at=_iso(_EPOCH + timedelta(minutes=incident.number % 600)).replace(".000Z", "Z"),
        title=f"Storm incident #{incident.number}: checkout API 5xx above 5%",
        urgency=incident.urgency,
        conference_bridge=None,
        resolve_reason=None,
    )
    if incident.priority is None:
        data["priority"] = None
    else:
        data["priority"] = {**data["priority"], "id": f"PRI{incident.priority}", "summary": incident.priority}
    if event_type == "incident.resolved" and incident.merged:
        # How PagerDuty says an incident was resolved by merging it into another one.
        data["resolve_reason"] = {
            "type": "merge_resolve_reason",
            "incident": {"id": "QMERGETARGET01", "type": "incident_reference", "summary": "the surviving incident"},
        }
    return body


def _note_body(template: dict[str, Any], incident: Incident, occurred: datetime, rng: random.Random) -> dict[str, Any]:
    body = copy.deepcopy(template)
    event = body["event"]
    event.update(id=_event_id(rng), occurred_at=_iso(occurred))
    event["data"]["incident"].update(
        id=incident.id,
        self=f"https://api.pagerduty.com/incidents/{incident.id}",
        html_url=f"https://acme.pagerduty.com/incidents/{incident.id}",
    )
    event["data"]["id"] = "PNT" + "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
    return body


def _encode(body: dict[str, Any]) -> bytes:
    # Compact, as PagerDuty sends it; the signature covers these exact bytes, duplicates included.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def plan_storm(config: StormConfig) -> Plan:
    """The storm for `config`: the same seed always gives the same incidents, bodies, ids and order."""
    config.check()
    rng = random.Random(config.seed)  # noqa: S311  # nosec B311
    templates = _templates()
    labels = [label for label, _ in SEVERITIES]
    shares = [share for _, share in SEVERITIES]

    incidents: dict[str, Incident] = {}
    while len(incidents) < config.incidents:
        incident_id = "Q" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(13))
        resolves = rng.random() < RESOLVE_SHARE
        incidents[incident_id] = Incident(
            id=incident_id,
            number=2000 + len(incidents),
            priority=rng.choices(labels, shares)[0],
            urgency=rng.choice(("high", "low")),
            resolves=resolves,
            merged=resolves and rng.random() < MERGED_SHARE,
            reopens=resolves and rng.random() < REOPEN_SHARE,
        )

    def delivery(incident: Incident | None, event_type: str, step: int) -> Delivery:
        occurred = _EPOCH + timedelta(minutes=(incident.number % 600) if incident else 0, seconds=step * 97)
        if incident is None:
            body = copy.deepcopy(templates["pagey-ping"])
            body["event"].update(id=_event_id(rng), occurred_at=_iso(occurred))
        elif event_type == "incident.annotated":
            body = _note_body(templates["incident-annotated"], incident, occurred, rng)
        else:
            body = _incident_body(templates["incident-resolved-p1"], incident, event_type, occurred, rng)
        webhook_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return Delivery(webhook_id, event_type, incident.id if incident else None, _encode(body))

    # Every incident gets its first resolve (or, if it never resolves, its trigger): the deliveries that decide.
    required = [delivery(i, "incident.resolved" if i.resolves else "incident.triggered", 3) for i in incidents.values()]
    # The rest of each lifecycle, from which the remaining distinct deliveries are drawn.
    optional: list[tuple[Incident, str, int]] = []
    for incident in incidents.values():
        if incident.resolves:
            optional.append((incident, "incident.triggered", 0))
        optional.append((incident, "incident.acknowledged", 1))
        optional.extend((incident, "incident.annotated", 2 + n) for n in range(rng.randint(0, 2)))
        if incident.reopens:
            optional.append((incident, "incident.resolved", 5))
    duplicates = min(round(config.deliveries * DUPLICATE_SHARE), config.deliveries - len(required))
    distinct = config.deliveries - duplicates
    pings = min(round(config.deliveries * PING_SHARE), distinct - len(required))
    extra = distinct - len(required) - pings
    chosen = rng.sample(optional, min(extra, len(optional)))
    # More deliveries than lifecycles hold: more notes on random incidents.
    pool = list(incidents.values())
    chosen += [(rng.choice(pool), "incident.annotated", 9) for _ in range(extra - len(chosen))]
    originals = required + [delivery(i, kind, step) for i, kind, step in chosen]
    originals += [delivery(None, "pagey.ping", 0) for _ in range(pings)]
    # At least once: some deliveries arrive again, a few more than twice.
    copies = [
        Delivery(d.webhook_id, d.event_type, d.incident_id, d.body, duplicate=True)
        for d in rng.choices(originals, k=duplicates)
    ]
    order = list(originals)
    rng.shuffle(order)
    for copy_ in copies:
        if rng.random() < CLOSE_DUPLICATE_SHARE:
            # Right behind the original, as when PagerDuty gave up waiting and sent it again: the two race.
            at = next(n for n, d in enumerate(order) if d.webhook_id == copy_.webhook_id) + rng.randint(1, 8)
        else:
            at = rng.randint(0, len(order))
        order.insert(min(at, len(order)), copy_)
    return Plan(incidents, order)


# --- delivering, as PagerDuty does


@dataclass
class Flight:
    """One delivery's attempts, until it is answered 2xx, dropped, or given up on."""

    delivery: Delivery
    attempts: list[str] = field(default_factory=list)  # "200", "429", "503", "timeout", "no connection"
    answer: dict[str, Any] | None = None  # the final 2xx answer
    end: str = "pending"  # "answered", "dropped", "gave up"
    problems: list[str] = field(default_factory=list)


class _Scheduler:
    """Hands flights to the senders: a retry that is due goes first, then the next fresh delivery, in order."""

    def __init__(self, flights: list[Flight], deadline: float) -> None:
        self._fresh = deque(flights)
        self._retries: list[tuple[float, int, Flight]] = []
        self._sequence = itertools.count()
        self._open = len(flights)
        self._deadline = deadline
        self._stopped = False
        self._cond = threading.Condition()

    def take(self) -> Flight | None:
        """The next flight to attempt, or None when every flight has ended, time is up, or stop() was called."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._open == 0 or self._stopped or now >= self._deadline:
                    self._stopped = True
                    self._cond.notify_all()
                    return None
                if self._retries and self._retries[0][0] <= now:
                    return heapq.heappop(self._retries)[2]
                if self._fresh:
                    return self._fresh.popleft()
                wake = self._retries[0][0] if self._retries else self._deadline
                self._cond.wait(min(wake, self._deadline) - now)

    def retry(self, flight: Flight, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._retries, (time.monotonic() + delay, next(self._sequence), flight))
            self._cond.notify()

    def finish(self) -> None:
        with self._cond:
            self._open -= 1
            if self._open == 0:
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


class _NoAnswer(Exception):
    """The attempt got no HTTP answer: "timeout" (PagerDuty's 5 s ran out) or "no connection"."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class _Sender:
    """One of PagerDuty's delivery workers: a keep-alive connection to the webhook, reopened after a failure.

    Signed and labelled as local.send signs them. Not local.send.send() itself: that builds a urllib opener,
    and with it an SSL context, per request (about 30 ms of CPU), which would make the sender the bottleneck.
    """

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._host, self._port, self._path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(self, delivery: Delivery) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Webhook-Id": delivery.webhook_id,
            "X-PagerDuty-Signature": signature_header(delivery.body, [TEST_SIGNING_SECRET]),
        }
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            self._conn.request("POST", self._path, delivery.body, headers)
            response = self._conn.getresponse()
            raw = response.read()
        except TimeoutError:
            self.close()  # the answer may still come on this connection: never read it as the next one's
            raise _NoAnswer("timeout") from None
        except (OSError, http.client.HTTPException):
            self.close()
            raise _NoAnswer("no connection") from None
        if response.will_close:
            self.close()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, raw

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def _attempt(flight: Flight, sender: _Sender, config: StormConfig, jitter: float) -> float | None:
    """Send the delivery once; None when it has ended, else the seconds to wait before PagerDuty retries it."""
    try:
        status, headers, raw = sender.post(flight.delivery)
    except _NoAnswer as error:
        flight.attempts.append(error.kind)
        status, headers, raw = 0, {}, b""
    else:
        flight.attempts.append(str(status))
    if 200 <= status < 300:
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        flight.answer = answer if isinstance(answer, dict) else {"unreadable": raw[:200].decode("utf-8", "replace")}
        flight.end = "answered"
        return None
    if 400 <= status < 500 and status != 429:
        flight.end = "dropped"  # PagerDuty does not retry these (and disables a subscription that keeps doing it)
        return None
    if status == 429 and "retry-after" not in headers:
        flight.problems.append("429 without Retry-After")
    if len(flight.attempts) >= config.max_attempts:
        flight.end = "gave up"
        return None
    retry_after = _retry_after(headers)
    if retry_after is not None:
        return min(retry_after, config.retry_after_cap)
    # Exponential with jitter, like a fleet of delivery workers whose timers drift apart.
    backoff = min(config.retry_after_cap, BACKOFF_BASE_SECONDS * 2 ** (len(flight.attempts) - 1))
    return backoff * (0.5 + jitter / 2)


def deliver(plan: Plan, url: str, config: StormConfig) -> list[Flight]:
    """Deliver every planned delivery to `url` with `config.concurrency` senders, retrying as PagerDuty does."""
    flights = [Flight(d) for d in plan.deliveries]
    scheduler = _Scheduler(flights, time.monotonic() + config.time_limit)
    jitter = random.Random(config.seed + 1)  # noqa: S311  # nosec B311
    jitter_lock = threading.Lock()
    crashed: list[BaseException] = []

    def work() -> None:
        sender = _Sender(url, ANSWER_TIMEOUT_SECONDS)
        try:
            while (flight := scheduler.take()) is not None:
                with jitter_lock:
                    draw = jitter.random()
                delay = _attempt(flight, sender, config, draw)
                if delay is None:
                    scheduler.finish()
                else:
                    scheduler.retry(flight, delay)
        except BaseException as error:  # reported by deliver(), after the other senders have stopped
            crashed.append(error)
            scheduler.stop()
        finally:
            sender.close()

    threads = [threading.Thread(target=work, name=f"storm-sender-{n}", daemon=True) for n in range(config.concurrency)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            # Bounded: the scheduler ends at the time limit, and an attempt after it lasts at most one timeout.
            thread.join(config.time_limit + ANSWER_TIMEOUT_SECONDS + 5)
    finally:
        scheduler.stop()
    if crashed:
        raise crashed[0]
    for flight in flights:
        if flight.end == "pending":
            flight.end = "gave up"  # the time limit came first
    return flights


# --- checking


@dataclass(frozen=True)
class Invariant:
    name: str
    value: int
    expected: int

    @property
    def holds(self) -> bool:
        return self.value == self.expected


@dataclass(frozen=True)
class StormReport:
    config: StormConfig
    deliveries: int
    duplicates: int
    by_event_type: dict[str, int]
    attempts: int
    answers: dict[str, int]  # by HTTP status, plus "timeout" and "no connection"
    retries: int
    drops: int
    gave_up: int
    outcomes: dict[str, int]  # final 2xx answers by body status: started, duplicate, ignored
    incidents: int
    qualifying: int
    exactly_one: int  # qualifying incidents with one session and one started ledger item naming it
    more_than_one_session: int
    non_qualifying_touched: int  # non-qualifying (or unknown) incidents with a session or a ledger item
    genuine_4xx: int  # answers 400-499 other than 429: PagerDuty would drop the delivery
    contract_breaks: int  # final answers (or 429s) that are not what the contract says
    devin_creates: int
    devin_lookups: int
    injected: dict[str, int]
    wall_seconds: float
    examples: list[str]  # a few of the problems behind the invariants that failed, for a person

    @property
    def invariants(self) -> list[Invariant]:
        return [
            Invariant(
                "qualifying incidents with exactly one session and one started ledger item",
                self.exactly_one,
                self.qualifying,
            ),
            Invariant("incidents with more than one Devin session", self.more_than_one_session, 0),
            Invariant("non-qualifying incidents with a session or a ledger item", self.non_qualifying_touched, 0),
            Invariant("4xx answers (other than 429) to genuine deliveries", self.genuine_4xx, 0),
            Invariant("deliveries never answered 2xx (dropped or given up)", self.drops + self.gave_up, 0),
            Invariant("answers that break the contract", self.contract_breaks, 0),
        ]

    @property
    def ok(self) -> bool:
        return all(invariant.holds for invariant in self.invariants)

    def render(self) -> str:
        c = self.config

        def counts(values: dict[str, int]) -> str:
            return ", ".join(f"{key} ×{value}" for key, value in sorted(values.items())) or "none"

        rows = [
            (
                "deliveries sent",
                f"{self.deliveries} ({self.deliveries - self.duplicates} distinct + {self.duplicates} duplicates)",
            ),
            ("  by event type", counts(self.by_event_type)),
            ("HTTP attempts", str(self.attempts)),
            ("answers by status", counts(self.answers)),
            ("retries", str(self.retries)),
            ("drops (4xx other than 429)", str(self.drops)),
            ("given up (attempts or time exhausted)", str(self.gave_up)),
            ("final 2xx answers", counts(self.outcomes)),
            ("incidents", str(self.incidents)),
            ("qualifying incidents", str(self.qualifying)),
            ("Devin create calls", str(self.devin_creates)),
            ("Devin lookups by tag (unknown outcomes)", str(self.devin_lookups)),
            ("faults injected into creates", counts(self.injected)),
            ("wall time", f"{self.wall_seconds:.1f} s"),
        ]
        width = max(len(label) for label, _ in rows)
        lines = [
            f"Storm: {c.deliveries} deliveries over {c.incidents} incidents, seed {c.seed}, "
            f"{c.failure_rate:.0%} of Devin creates failing, Devin latency {c.devin_latency:g} s, "
            f"{c.concurrency} senders, {c.workers} workers",
            *(f"  {label.ljust(width)}  {value}" for label, value in rows),
            "Invariants:",
        ]
        for invariant in self.invariants:
            mark = "ok  " if invariant.holds else "FAIL"
            lines.append(f"  {mark} {invariant.name}: {invariant.value} (must be {invariant.expected})")
        lines.extend(f"  - {example}" for example in self.examples)
        lines.append("OK: every invariant holds" if self.ok else "FAILED: an invariant does not hold")
        return "\n".join(lines)


def _incident_of(session: dict[str, Any]) -> str | None:
    tags = [t for t in session.get("tags") or [] if isinstance(t, str) and t.startswith(TAG_PREFIX)]
    return tags[0].removeprefix(TAG_PREFIX) if len(tags) == 1 else None


def check(
    plan: Plan,
    flights: list[Flight],
    sessions: list[dict[str, Any]],
    ledger: list[dict[str, Any]],
    *,
    config: StormConfig,
    devin_creates: int = 0,
    devin_lookups: int = 0,
    injected: dict[str, int] | None = None,
    wall_seconds: float = 0.0,
) -> StormReport:
    """Judge what the stack did with the storm, from the contract, Devin's sessions and the ledger's items."""
    qualifying = plan.qualifying()
    problems: list[str] = []

    by_incident: dict[str | None, list[str]] = {}
    for session in sessions:
        by_incident.setdefault(_incident_of(session), []).append(str(session.get("session_id")))
    items = {str(item.get("incident_id")): item for item in ledger}

    exactly_one = 0
    for incident_id in sorted(qualifying):
        found = by_incident.get(incident_id, [])
        item = items.get(incident_id)
        if len(found) == 1 and item and item.get("status") == "started" and item.get("session_id") == found[0]:
            exactly_one += 1
        else:
            status = item.get("status") if item else "no item"
            problems.append(f"{incident_id}: {len(found)} session(s), ledger {status}")
    more = sum(1 for incident_id, found in by_incident.items() if incident_id is not None and len(found) > 1)
    touched = {i for i in by_incident if i not in qualifying} | {i for i in items if i not in qualifying}
    problems.extend(f"{i}: not qualifying, yet has a session or a ledger item" for i in sorted(map(str, touched)))

    contract_breaks = 0
    for flight in flights:
        delivery, answer = flight.delivery, flight.answer
        issues = list(flight.problems)
        if answer is not None:
            if delivery.incident_id in qualifying and delivery.event_type in EVENT_TYPES:
                session = by_incident.get(delivery.incident_id, [None])[0]
                if answer.get("status") not in ("started", "duplicate") or answer.get("session_id") != session:
                    issues.append(f"answered {answer} for a qualifying incident whose session is {session}")
            elif answer.get("status") != "ignored":
                issues.append(f"answered {answer} for a delivery the contract ignores")
        if issues:
            contract_breaks += 1
            problems.append(f"{delivery.event_type} {delivery.incident_id}: {'; '.join(issues)}")

    answers = Counter(a for flight in flights for a in flight.attempts)
    genuine_4xx = sum(
        n for status, n in answers.items() if status.isdigit() and 400 <= int(status) < 500 and status != "429"
    )
    problems.extend(
        f"{f.delivery.event_type} {f.delivery.incident_id}: {f.end} after {', '.join(f.attempts)}"
        for f in flights
        if f.end in ("dropped", "gave up")
    )
    attempted = sum(1 for flight in flights if flight.attempts)
    return StormReport(
        config=config,
        deliveries=attempted,  # every planned one, unless the time limit came first (those count as given up)
        duplicates=sum(1 for flight in flights if flight.delivery.duplicate and flight.attempts),
        by_event_type=dict(Counter(flight.delivery.event_type for flight in flights)),
        attempts=sum(answers.values()),
        answers=dict(answers),
        retries=sum(answers.values()) - attempted,
        drops=sum(1 for flight in flights if flight.end == "dropped"),
        gave_up=sum(1 for flight in flights if flight.end == "gave up"),
        outcomes=dict(Counter(str(f.answer.get("status")) for f in flights if f.answer is not None)),
        incidents=len(plan.incidents),
        qualifying=len(qualifying),
        exactly_one=exactly_one,
        more_than_one_session=more,
        non_qualifying_touched=len(touched),
        genuine_4xx=genuine_4xx,
        contract_breaks=contract_breaks,
        devin_creates=devin_creates,
        devin_lookups=devin_lookups,
        injected=dict(injected or {}),
        wall_seconds=wall_seconds,
        examples=problems[:10],
    )


def _check_settings(stack: LocalStack) -> None:
    """The storm's idea of the contract must be the stack's configuration, or its verdict would mean nothing."""
    env = stack.function_env

    def setting(name: str) -> frozenset[str]:
        return frozenset(v.strip().casefold() for v in env.get(name, "").split(",") if v.strip())

    expected = {"EVENT_TYPES": EVENT_TYPES, "PRIORITIES": PRIORITIES, "URGENCIES": URGENCIES}
    for name, values in expected.items():
        if setting(name) != values:
            raise StackError(f"the stack runs with {name}={env.get(name)!r}; the storm checks against {sorted(values)}")


def run_storm(config: StormConfig = StormConfig(), *, function_log: IO[Any] | int | None = None) -> StormReport:
    """Start a local stack, deliver the storm, check it, stop the stack; the report says whether it held."""
    plan = plan_storm(config)
    started = time.monotonic()
    with LocalStack(
        port=0,
        workers=config.workers,
        devin_latency=config.devin_latency,
        devin_failure_rate=config.failure_rate,
        devin_failure_seed=config.seed,
        function_log=function_log,
        env={"DEVIN_SETTLE_SECONDS": str(SETTLE_SECONDS)},
    ) as stack:
        _check_settings(stack)
        flights = deliver(plan, stack.url, config)
        ledger = stack.ledger_items()
        devin = stack.devin
        if devin is None:  # LocalStack's default is the stand-in; this only narrows the type
            raise StackError("the storm needs the stand-in Devin")
        sessions = [dict(s) for s in devin.sessions]
        creates = len(devin.create_requests())
        lookups = sum(1 for r in list(devin.requests) if r.method == "GET" and r.query.get("tags"))
        injected = dict(devin.injected)
    return check(
        plan,
        flights,
        sessions,
        ledger,
        config=config,
        devin_creates=creates,
        devin_lookups=lookups,
        injected=injected,
        wall_seconds=time.monotonic() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.storm", description=__doc__.splitlines()[0])
    defaults = StormConfig()
    parser.add_argument("--deliveries", type=int, default=defaults.deliveries, help="deliveries to send (1000)")
    parser.add_argument("--incidents", type=int, default=defaults.incidents, help="incidents they are about (300)")
    parser.add_argument(
        "--failure-rate", type=float, default=defaults.failure_rate, help="share of Devin creates that fail (0.1)"
    )
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="concurrent senders (16)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="plans the storm and the faults (1)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="warm Lambda containers (4)")
    parser.add_argument(
        "--devin-latency",
        type=float,
        default=defaults.devin_latency,
        help=f"seconds the stand-in Devin takes per call ({defaults.devin_latency:g})",
    )
    parser.add_argument(
        "--time-limit", type=float, default=defaults.time_limit, help="seconds before it stops retrying (300)"
    )
    parser.add_argument("--logs", type=Path, help="file for the function's logs (default: a new temporary file)")
    args = parser.parse_args(argv)
    config = StormConfig(
        deliveries=args.deliveries,
        incidents=args.incidents,
        failure_rate=args.failure_rate,
        concurrency=args.concurrency,
        seed=args.seed,
        workers=args.workers,
        devin_latency=args.devin_latency,
        time_limit=args.time_limit,
    )
    try:
        config.check()
    except ValueError as error:
        parser.error(str(error))

    log_path = args.logs or Path(tempfile.mkstemp(prefix="pagerduty-bridge-storm-", suffix=".log")[1])
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            report = run_storm(config, function_log=log)
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(report.render())
    print(f"Function logs: {log_path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:
        # The reader went away (`| head`); the stack is already stopped.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
