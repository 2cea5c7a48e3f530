"""The scheduled follow-up on the local stack, with sessions that Devin's stand-in runs through their real
transitions on its real clock: how long a session that is done waits for its summary note, and how many open
sessions one run reads within its time.

The schedule is shortened (a run every `period` seconds instead of rate(10 minutes)) so that the wait can be seen
in seconds; what it says of the default schedule is worked out in the row, not measured.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench import deliveries

SUMMARY = "[pagerduty-postmortem:summary]"
# The follow-up's Timeout in template.yaml less the reserve handler/follow_up.py keeps back for its last writes.
RUN_SECONDS = 120.0 - 5.0
DEFAULT_PERIOD = 600.0  # FollowUpSchedule's default, rate(10 minutes)


@dataclass(frozen=True)
class Latency:
    period: float
    sessions: int
    waits: list[float]  # seconds from a session being done to its summary note on the incident, sorted
    runs: list[float]  # each follow-up run's own duration
    missing: int  # sessions whose note never came


@dataclass(frozen=True)
class Capacity:
    sessions: int
    devin_latency: float
    run_seconds: float
    followed: int

    @property
    def per_session(self) -> float:
        return self.run_seconds / self.followed if self.followed else 0.0

    @property
    def per_run(self) -> int:
        return int(RUN_SECONDS / self.per_session) if self.per_session else 0


def _stack(**kwargs: Any) -> Any:
    from local.stack import LocalStack

    stack = LocalStack(host="127.0.0.1", port=0, workers=2, function_log=subprocess.DEVNULL, **kwargs)
    stack.start()
    return stack


def _run(stack: Any) -> dict[str, Any]:
    from local import follow_up

    status, answer = follow_up.run(stack.follow_up_url, timeout=RUN_SECONDS + 10)
    if status != 200:
        raise RuntimeError(f"the follow-up answered HTTP {status}: {answer[:200]!r}")
    return json.loads(answer)


def _start(stack: Any, count: int) -> list[str]:
    """`count` new incidents resolved now, each started (its session created) through the webhook."""
    from local.pagerduty_standin import sample_record
    from local.send import send

    incidents = []
    for _ in range(count):
        incident_id = deliveries.new_incident_id()
        stack.pagerduty.add_incident(incident_id, **sample_record(incident_id))
        body = deliveries.for_incident(incident_id)["body"].encode()
        status, _, answer = send(body, stack.url, webhook_secret=stack.webhook_secret)
        if status != 200 or json.loads(answer).get("status") != "started":
            raise RuntimeError(f"{incident_id} was not started: HTTP {status} {answer[:200]!r}")
        incidents.append(incident_id)
    return incidents


def measure_latency(period: float = 2.0, sessions: int = 20, work: float = 1.0, idle: float = 1.5) -> Latency:
    """Sessions that work `work` s, finish with a result, and are suspended after `idle` s more; a follow-up run
    every `period` s. A watcher notes, every 20 ms, when each session became done and when its summary arrived."""
    from local.devin_standin import Lifecycle

    stack = _stack()
    try:
        devin, pagerduty = stack.devin, stack.pagerduty
        devin.lifecycle = Lifecycle(work_seconds=work, idle_seconds=idle)
        incidents = _start(stack, sessions)
        by_session = {item["session_id"]: item["incident_id"] for item in stack.ledger_items()}
        done_at: dict[str, float] = {}
        noted_at: dict[str, float] = {}
        runs: list[float] = []
        stop = threading.Event()

        def schedule() -> None:
            while not stop.wait(period):
                began = time.monotonic()
                _run(stack)
                runs.append(time.monotonic() - began)

        def watch() -> None:
            while not stop.wait(0.02):
                devin.settle()
                now = time.monotonic()
                for session in list(devin.sessions):
                    incident = by_session.get(session["session_id"])
                    if incident and session.get("status_detail") in ("finished", "inactivity"):
                        done_at.setdefault(incident, now)
                for incident in incidents:
                    if incident not in noted_at and any(
                        SUMMARY in n["content"] for n in pagerduty.notes_posted(incident)
                    ):
                        noted_at[incident] = now

        threads = [threading.Thread(target=schedule, daemon=True), threading.Thread(target=watch, daemon=True)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + work + idle + 6 * period + 30
        while len(noted_at) < len(incidents) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(timeout=RUN_SECONDS)
    finally:
        stack.stop()
    waits = sorted(noted_at[i] - done_at[i] for i in incidents if i in noted_at and i in done_at)
    return Latency(period, sessions, waits, runs, sum(i not in noted_at for i in incidents))


def measure_capacity(sessions: int = 100, devin_latency: float = 0.3) -> Capacity:
    """One follow-up run over `sessions` open sessions that are still working, Devin answering each read after
    `devin_latency` s: the run's wall time per session read (GET, the ledger write)."""
    stack = _stack()
    try:
        _start(stack, sessions)
        stack.devin.latency = devin_latency
        began = time.monotonic()
        report = _run(stack)
        elapsed = time.monotonic() - began
    finally:
        stack.stop()
    return Capacity(sessions, devin_latency, elapsed, int(report["followed"]))


def rows(quick: bool) -> list[tuple[str, str, str, str]]:
    """(what, figure, goal, how) for bench.run's table."""
    latency = measure_latency(sessions=3 if quick else 20)
    capacity = measure_capacity(sessions=10 if quick else 100, devin_latency=0.3)
    run_max = max(latency.runs, default=0.0)
    worst = latency.waits[-1] if latency.waits else float("inf")
    bound = latency.period + run_max
    found = (
        f"p50 {statistics.median(latency.waits):.2f} s, max {worst:.2f} s over {len(latency.waits)} sessions"
        + (f"; {latency.missing} never got it" if latency.missing else "")
        if latency.waits
        else "no summary arrived"
    )
    stated = capacity.per_run
    return [
        (
            f"done → summary note, a run every {latency.period:g} s",
            found,
            f"≤ one period + one run ({bound:.2f} s) {'met' if worst <= bound and not latency.missing else 'MISSED'}",
            f"{latency.sessions} incidents started on the local stack; the Devin stand-in runs each session (works "
            "1 s, finishes with a result, suspended after 1.5 s idle) on its real clock; 'done' = first seen "
            "finished or idle by a 20 ms watcher, the note = first seen on the PagerDuty stand-in",
        ),
        (
            f"one run over {capacity.sessions} open sessions, Devin {capacity.devin_latency * 1000:.0f} ms a read",
            f"{capacity.run_seconds:.1f} s, {capacity.per_session * 1000:.0f} ms a session: about {stated} sessions"
            f" in a run's {RUN_SECONDS:.0f} s",
            f"every session done within one period ({DEFAULT_PERIOD / 60:.0f} min) + one run, for up to {stated} open"
            " sessions",
            "one follow-up run on the local stack over sessions still working (a GET and a ledger write each); the "
            "stand-in answers every Devin call after the latency. A run stops starting reads 10 s before its end "
            "and leaves the rest to the next run",
        ),
    ]
