"""Replays every sample payload against a fresh local stack and checks each answer against the contract.

    python -m local.demo [--burst N] [--workers N] [--devin-latency S] [--logs FILE]

Starts the local stack on free ports, sends a P1 resolve, a PagerDuty retry of it, a burst of concurrent
deliveries of another qualifying incident, every ignored kind, a forged and an unsigned delivery and a
malformed body, then prints a table (delivery → HTTP status → outcome → session). Then PagerDuty's side: the
P1 prompt carries the incident's timeline from PagerDuty's REST API (the stand-in), one note with the session's
link came back on the incident, and once the stand-in Devin session opens a pull request, two runs of the
scheduled follow-up post its link on the incident once. Then the ledger items and the prompt Devin received
for the P1 incident. Last, the lifecycle and routing act, on a second stack that starts sessions early (on
incident.acknowledged), forwards notes and reopenings to them and routes with docs/routing.example.json: an
incident acknowledged, annotated and resolved is one session and two messages, the same resolve again is a
duplicate that sends nothing, and a routed incident's create request carries its rule's playbook, repos and tags.
Exits 0 only if every answer is what the contract says, the burst started exactly one Devin session, each
PagerDuty check held and each check of the lifecycle and routing act held.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import string
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local import follow_up
from local.devin_standin import DevinStandIn
from local.devin_standin import Step as SessionStep
from local.pagerduty_standin import PagerDutyStandIn, sample_record
from local.send import send
from local.stack import LocalStack, StackError
from scripts.make_events import FORGED_SIGNING_SECRET, PAYLOADS_DIR, TEST_SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]
P1_PAYLOAD = "incident-resolved-p1.json"
NOTE_PAYLOAD = "incident-annotated.json"
# The pull request the stand-in Devin session "opens" for the P1 incident's postmortem.
PULL_REQUEST = "https://github.com/acme/checkout/pull/4128"
# How the summary note is told from the others (handler/bridge/pagerduty/notes.py).
SUMMARY_MARKER = "[pagerduty-postmortem:summary]"
DATA_OPEN, DATA_CLOSE = "<pagerduty-incident>", "</pagerduty-incident>"
FOLLOW_UP_RUNS = 3
# The lifecycle and routing act's stack: sessions start early, on acknowledgement (or on a resolve when there was
# none); notes and reopenings reach an open session as messages, and so does the resolve, always.
LIFECYCLE_PARAMETERS = {
    "EventTypes": "incident.resolved,incident.acknowledged",
    "FollowUpEventTypes": "incident.annotated,incident.reopened",
}
ROUTING_EXAMPLE = ROOT / "docs" / "routing.example.json"
# The example's rule that a P1 resolve of the Checkout API (team Payments Platform, high urgency) matches first.
ROUTED_RULE = "payments P1"
ACKNOWLEDGED_AT = "2026-03-14T09:15:02.100Z"
STILL_OPEN = "is still open"
# The tags every session carries, before a rule's own: the bridge's, the service's and the incident's.
STANDARD_TAGS = ("pagerduty-postmortem", "service:{service}", "pagerduty-incident:{incident_id}")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def outcome(self) -> str:
        if self.status == 429:
            return "in flight"
        if self.status >= 400:
            return str(self.body.get("message", "error"))
        status = str(self.body.get("status", "?"))
        if status != "ignored":
            return status
        reason = str(self.body.get("reason", ""))
        # Keeps the table within a terminal's width; the full reason is in the function's log.
        return f"ignored: {reason if len(reason) <= 44 else reason[:43] + '…'}"

    @property
    def session_id(self) -> str:
        return str(self.body.get("session_id") or "")


@dataclass(frozen=True)
class Row:
    delivery: str
    http: str
    outcome: str
    session: str
    problem: str | None  # None when the answer is what the contract says


@dataclass(frozen=True)
class Step:
    """One line of an act (PagerDuty's, or the lifecycle and routing one): something checked (✓ or ✗) or something
    done (→), with what it shows."""

    text: str
    details: tuple[str, ...] = ()
    problem: str | None = None
    checked: bool = True


def _post(
    stack: LocalStack, body: bytes, secret: str | None = TEST_SIGNING_SECRET, webhook_id: str | None = None
) -> Answer:
    status, headers, raw = send(body, stack.url, [secret] if secret else [], webhook_id=webhook_id)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = {"message": raw.decode("utf-8", "replace")}
    return Answer(status, parsed if isinstance(parsed, dict) else {"message": str(parsed)}, headers)


def _incident_id() -> str:
    # PagerDuty incident ids are 14 upper-case letters and digits; a new one per run keeps runs independent.
    alphabet = string.ascii_uppercase + string.digits
    return "Q" + "".join(secrets.choice(alphabet) for _ in range(13))


def _event_id() -> str:
    # PagerDuty event ids are 26 upper-case letters and digits (ULIDs); a new one per delivery of a new event.
    return str(uuid.uuid4()).replace("-", "").upper()[:26]


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"


def _another_incident(p1: bytes, incident_id: str) -> bytes:
    """The P1 resolve for another incident, as PagerDuty would send it (ids and links follow the id)."""
    document = json.loads(p1)
    data = document["event"]["data"]
    data["id"] = incident_id
    data["number"] = data["number"] + 1
    data["self"] = f"https://api.pagerduty.com/incidents/{incident_id}"
    data["html_url"] = f"https://acme.pagerduty.com/incidents/{incident_id}"
    document["event"]["id"] = _event_id()
    return _encode(document)


def _lifecycle_bodies(p1: bytes, incident_id: str) -> tuple[bytes, bytes, bytes]:
    """Another incident's acknowledgement, a note on it and its resolve, as PagerDuty would send them: the P1
    sample's resolve and note, moved to `incident_id`, each event with its own id."""
    resolve = _another_incident(p1, incident_id)
    acknowledged = json.loads(resolve)
    acknowledged["event"].update(id=_event_id(), event_type="incident.acknowledged", occurred_at=ACKNOWLEDGED_AT)
    acknowledged["event"]["data"]["status"] = "acknowledged"
    note = json.loads((PAYLOADS_DIR / NOTE_PAYLOAD).read_bytes())
    note["event"]["id"] = _event_id()
    note["event"]["data"]["incident"].update(
        id=incident_id,
        self=f"https://api.pagerduty.com/incidents/{incident_id}",
        html_url=f"https://acme.pagerduty.com/incidents/{incident_id}",
    )
    return _encode(acknowledged), _encode(note), resolve


def _expect(answer: Answer, status: int, outcome: str | None = None, session: str | None = None) -> str | None:
    """None when `answer` is `status` (with body status `outcome`, and `session` if given), else what is wrong."""
    if answer.status != status:
        return f"expected HTTP {status}, got {answer.status}"
    if outcome is not None and answer.body.get("status") != outcome:
        return f"expected {outcome!r}, got {answer.body.get('status')!r}"
    if outcome is None and set(answer.body) != {"message"}:
        return "expected an error answer with only a message"
    if session is not None and answer.session_id != session:
        return f"expected session {session}, got {answer.session_id or 'none'}"
    return None


def _row(delivery: str, answer: Answer, problem: str | None) -> Row:
    return Row(delivery, str(answer.status), answer.outcome, answer.session_id, problem)


def _burst(stack: LocalStack, body: bytes, size: int) -> list[Answer]:
    """`size` deliveries of one body, released at the same instant from as many threads."""
    answers: list[Answer] = []
    lock = threading.Lock()
    start = threading.Barrier(size)

    def deliver() -> None:
        start.wait()
        answer = _post(stack, body)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=deliver, daemon=True) for _ in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def _burst_rows(stack: LocalStack, p1: bytes, size: int) -> tuple[list[Row], str]:
    incident_id = _incident_id()
    body = _another_incident(p1, incident_id)
    answers = _burst(stack, body, size)
    started = [a for a in answers if a.status == 200 and a.body.get("status") == "started"]
    session = started[0].session_id if len(started) == 1 else ""
    problems = []
    if len(answers) != size:
        problems.append(f"{size - len(answers)} deliveries got no answer")
    if len(started) != 1:
        problems.append(f"{len(started)} deliveries started a session, expected exactly 1")
    for answer in answers:
        if answer in started:
            continue
        if answer.status == 429 and "retry-after" in answer.headers:
            continue
        if _expect(answer, 200, "duplicate", session) is None:
            continue
        problems.append(f"unexpected answer {answer.status} {answer.body}")
    sessions = [
        s for s in (stack.devin.sessions if stack.devin else []) if f"pagerduty-incident:{incident_id}" in s["tags"]
    ]
    if stack.devin is not None and len(sessions) != 1:
        problems.append(f"Devin has {len(sessions)} sessions for {incident_id}, expected exactly 1")

    statuses = Counter(answer.status for answer in answers)
    outcomes = Counter(answer.outcome for answer in answers)
    burst = Row(
        f"burst: {size} at once, {incident_id}",
        ", ".join(f"{code} ×{count}" for code, count in sorted(statuses.items())),
        ", ".join(
            f"{count} {outcome}" for outcome, count in sorted(outcomes.items(), key=lambda kv: kv[0] != "started")
        ),
        session,
        "; ".join(problems) or None,
    )
    # What PagerDuty does next with the 429s: retry later, and get the session that was started.
    retry = _post(stack, body)
    return [burst, _row("retry after the burst", retry, _expect(retry, 200, "duplicate", session))], incident_id


def run(stack: LocalStack, burst: int = 10) -> tuple[list[Row], str]:
    """Replay every delivery against `stack`; returns the table's rows and the P1 incident id."""
    p1 = (PAYLOADS_DIR / P1_PAYLOAD).read_bytes()
    p1_id = json.loads(p1)["event"]["data"]["id"]
    rows: list[Row] = []

    def deliver(label: str, body: bytes, check: Callable[[Answer], str | None], **kwargs: Any) -> Answer:
        answer = _post(stack, body, **kwargs)
        rows.append(_row(label, answer, check(answer)))
        return answer

    retry_id = str(uuid.uuid4())
    first = deliver(f"P1 resolve, {p1_id}", p1, lambda a: _expect(a, 200, "started"), webhook_id=retry_id)
    # A PagerDuty retry is the same delivery again: same bytes, same X-Webhook-Id.
    deliver(
        "same delivery again (retry)",
        p1,
        lambda a: _expect(a, 200, "duplicate", first.session_id),
        webhook_id=retry_id,
    )
    burst_rows, _ = _burst_rows(stack, p1, burst)
    rows.extend(burst_rows)
    for name, label in (
        ("incident-resolved-low-urgency.json", "low-urgency resolve"),
        ("incident-resolved-merged.json", "merged resolve"),
        ("incident-triggered-p1.json", "P1 triggered"),
        ("incident-annotated.json", "note added"),
        ("pagey-ping.json", "ping"),
    ):
        deliver(label, (PAYLOADS_DIR / name).read_bytes(), lambda a: _expect(a, 200, "ignored"))
    deliver("forged signature", p1, lambda a: _expect(a, 401), secret=FORGED_SIGNING_SECRET)
    deliver("no signature", p1, lambda a: _expect(a, 401), secret=None)
    deliver("malformed body", b'{"event": ', lambda a: _expect(a, 400))
    return rows, p1_id


def render_table(rows: list[Row]) -> str:
    header = ("#", "delivery", "HTTP", "outcome", "session")
    cells = [(str(i), r.delivery, r.http, r.outcome, r.session or "-") for i, r in enumerate(rows, 1)]
    widths = [max(len(row[c]) for row in [header, *cells]) for c in range(len(header))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for row, cell in zip(rows, cells, strict=True):
        line = "  ".join(value.ljust(width) for value, width in zip(cell, widths, strict=True)).rstrip()
        lines.append(line if row.problem is None else f"{line}\n    ✗ {row.problem}")
    return "\n".join(lines)


def _create_body(stack: LocalStack, incident_id: str) -> dict[str, Any] | None:
    """The create-session request Devin received for the incident, if the stand-in got one."""
    tag = f"pagerduty-incident:{incident_id}"
    for request in stack.devin.create_requests() if stack.devin is not None else []:
        body = request.json()
        if tag in (body.get("tags") or []):
            return body
    return None


def _prompt_for(stack: LocalStack, incident_id: str) -> str:
    if stack.devin is None:
        return "(the real Devin API received it; the stand-in was not used)"
    body = _create_body(stack, incident_id)
    if body is None:
        return f"(no create-session request carried pagerduty-incident:{incident_id})"
    meta = {key: value for key, value in body.items() if key != "prompt"}
    return f"{json.dumps(meta, ensure_ascii=False)}\n\n{body['prompt']}"


def _data_block(prompt: str) -> dict[str, Any] | None:
    """The JSON between the prompt's data delimiters, or None when there is none that parses."""
    _, opened, rest = prompt.partition(DATA_OPEN + "\n")
    block, closed, _ = rest.partition("\n" + DATA_CLOSE)
    if not (opened and closed):
        return None
    try:
        data = json.loads(block)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _timeline_step(stack: LocalStack, incident_id: str) -> Step:
    expected = len(sample_record(incident_id)["log_entries"])
    body = _create_body(stack, incident_id)
    data = _data_block(str(body.get("prompt", ""))) if body is not None else None
    timeline = data.get("timeline") if data is not None else None
    text = f"the prompt for {incident_id} carries PagerDuty's timeline"
    if not isinstance(timeline, list):
        return Step(text, problem="the prompt's data block has no timeline")
    details = tuple(
        f"{entry.get('at', '?')}  {entry.get('kind', '?'):<11}  {entry.get('what', '')}"
        for entry in timeline
        if isinstance(entry, dict)
    )
    problem = None if len(timeline) == expected else f"{len(timeline)} entries, expected the incident's {expected}"
    return Step(f"{text}: {len(timeline)} entries, one per log entry of the incident", details, problem)


def _evidence_step(stack: LocalStack, incident_id: str) -> Step:
    """The figures the bridge computed, and the changes and history PagerDuty relates to the incident."""
    record = sample_record(incident_id)
    body = _create_body(stack, incident_id)
    data = (_data_block(str(body.get("prompt", ""))) if body is not None else None) or {}
    computed, changes, recurrence = data.get("computed") or {}, data.get("changes") or [], data.get("recurrence") or []
    text = f"the prompt for {incident_id} carries the figures the bridge computed, the changes and the history"
    problems = []
    if not computed.get("seconds_to_first_ack") or not computed.get("seconds_to_resolve"):
        problems.append("no computed response times")
    if len(changes) != len(record["change_events"]) or len(recurrence) != len(record["past_incidents"]):
        problems.append(f"{len(changes)} changes and {len(recurrence)} past incidents, expected the incident's")
    details = (
        "computed: " + ", ".join(f"{name} {value}" for name, value in computed.items()),
        *(f"change {c.get('id')}  {c.get('at')}  {c.get('summary')}" for c in changes if isinstance(c, dict)),
        *(f"past incident {p.get('id')}  {p.get('title')}" for p in recurrence if isinstance(p, dict)),
    )
    return Step(text + ":", details, "; ".join(problems) or None)


def _session_note_step(pagerduty: PagerDutyStandIn, incident_id: str, session_url: str) -> Step:
    notes = [note["content"] for note in pagerduty.notes_posted(incident_id)]
    text = f"one note came back on {incident_id}, with the session's link"
    if len(notes) != 1:
        return Step(text, problem=f"{len(notes)} notes were posted on the incident, expected exactly 1")
    problem = None if session_url and session_url in notes[0] else f"the note does not carry {session_url or 'a link'}"
    return Step(text + ":", tuple(notes[0].splitlines()), problem)


def _follow_up_steps(
    stack: LocalStack, devin: DevinStandIn, pagerduty: PagerDutyStandIn, incident_id: str, session_id: str
) -> list[Step]:
    steps = []
    try:
        # As Devin runs a session: it works, then, between two follow-up runs, finishes (its pull request opened,
        # the structured result filled in from its prompt's data) and is suspended for inactivity.
        devin.plan(session_id, [SessionStep(0, "running", "working")])
    except KeyError:
        return [
            Step("the stand-in Devin session works on the postmortem", problem=f"Devin has no session {session_id}")
        ]
    steps.append(Step(f"Devin's session {session_id} works on the postmortem (running/working)", checked=False))
    summaries_before = 0
    for run in range(1, FOLLOW_UP_RUNS + 1):
        try:
            status, answer = follow_up.run(stack.follow_up_url, timeout=60)
        except OSError as error:
            status, answer = 0, str(error).encode()
        where = f"POST {stack.follow_up_url}" if run == 1 else "again"
        problem = None if status == 200 else f"expected HTTP 200, got {status or 'no answer'}"
        text = f"follow-up run {run} ({where}): HTTP {status} {answer.decode('utf-8', 'replace')}"
        steps.append(Step(text, problem=problem, checked=problem is not None))
        if run == 1:
            summaries_before = sum(SUMMARY_MARKER in n["content"] for n in pagerduty.notes_posted(incident_id))
            devin.plan(
                session_id,
                [
                    SessionStep(0, "running", "finished", result=True, pull_request=PULL_REQUEST),
                    SessionStep(0, "suspended", "inactivity"),
                ],
            )
            steps.append(
                Step(
                    f"between two runs the session opens a pull request ({PULL_REQUEST}), fills in the structured"
                    " result from its prompt's data, finishes, and is suspended for inactivity"
                    " (running/finished → suspended/inactivity)",
                    checked=False,
                )
            )
    text = "while the session worked, no summary was posted; once it was done and idle, the next run posted it"
    steps.append(Step(text, problem=f"{summaries_before} summaries after run 1" if summaries_before else None))
    notes = [note["content"] for note in pagerduty.notes_posted(incident_id)]
    posted = [note for note in notes if PULL_REQUEST in note and SUMMARY_MARKER not in note]
    text = f"the pull request's link was posted on {incident_id} once over {FOLLOW_UP_RUNS} runs"
    if len(posted) != 1:
        steps.append(Step(text, problem=f"it was posted {len(posted)} times, expected exactly once"))
    else:
        steps.append(Step(text + ":", tuple(posted[0].splitlines())))
    summaries = [note for note in notes if SUMMARY_MARKER in note]
    text = f"the postmortem's summary came back on {incident_id} once, readable at a glance"
    at_a_glance = ("P1 · ", "\nImpact: ", "\nEnded by: ", "\nRoot cause (", "\nDraft: ")
    if len(summaries) != 1:
        steps.append(Step(text, problem=f"it was posted {len(summaries)} times, expected exactly once"))
    elif missing := [part.strip() for part in at_a_glance if part not in "\n" + summaries[0]]:
        steps.append(Step(text, problem=f"the summary lacks {', '.join(missing)}"))
    else:
        steps.append(Step(text + ":", tuple(summaries[0].splitlines())))
    return steps


def pagerduty_act(stack: LocalStack, incident_id: str) -> list[Step]:
    """What the PagerDuty feature did for the P1 incident: its record in the prompt, the note back on the incident,
    and the pull request's link posted once by the scheduled follow-up."""
    devin, pagerduty = stack.devin, stack.pagerduty
    if pagerduty is None or devin is None:
        return []
    [item] = [item for item in stack.ledger_items() if item.get("incident_id") == incident_id] or [{}]
    session_id, session_url = str(item.get("session_id") or ""), str(item.get("session_url") or "")
    # The stand-in's latency was there for the burst to overlap; the follow-up need not wait for it.
    devin.latency = 0.0
    return [
        _timeline_step(stack, incident_id),
        _evidence_step(stack, incident_id),
        _session_note_step(pagerduty, incident_id, session_url),
        *_follow_up_steps(stack, devin, pagerduty, incident_id, session_id),
    ]


def _step_lines(steps: list[Step]) -> list[str]:
    lines = []
    for step in steps:
        mark = "→" if not step.checked else ("✓" if step.problem is None else "✗")
        lines.append(f"  {mark} {step.text}")
        lines.extend(f"      {detail}" for detail in step.details)
        if step.problem is not None:
            lines.append(f"      ✗ {step.problem}")
    return lines


def render_steps(stack: LocalStack, steps: list[Step]) -> str:
    where = stack.pagerduty.base_url if stack.pagerduty is not None else "?"
    return "\n".join([f"PagerDuty's side (its REST API is the stand-in on {where}):", *_step_lines(steps)])


def _answer_step(action: str, answer: Answer, problem: str | None, what: str) -> Step:
    """A check of one delivery's answer: `action` → what was answered, then what it means."""
    return Step(f"{action} → {answer.status} {answer.outcome}: {what}", problem=problem)


def _early_start_step(stack: LocalStack, incident_id: str, answer: Answer) -> Step:
    text = f'acknowledge → {answer.status} {answer.outcome}: the session starts early; its prompt says "{STILL_OPEN}"'
    problem = _expect(answer, 200, "started")
    body = _create_body(stack, incident_id)
    if body is None:
        return Step(text, problem=problem or f"no create-session request carried pagerduty-incident:{incident_id}")
    # What the function says, not what PagerDuty's data says: the data block (as _data_block finds it) is left out.
    before, _, rest = str(body.get("prompt", "")).partition(DATA_OPEN + "\n")
    words = " ".join((before + rest.partition("\n" + DATA_CLOSE)[2]).split())
    at = words.find(STILL_OPEN)
    if at < 0:
        return Step(text, problem=problem or f"the prompt does not say {STILL_OPEN!r}")
    # The sentence that says it, shown whole.
    start, end = words.rfind(". ", 0, at), words.find(". ", at)
    sentence = words[start + 2 if start >= 0 else 0 : end + 1 if end >= 0 else len(words)]
    return Step(text + ":", (sentence,), problem)


def _one_session_step(stack: LocalStack, incident_id: str, session_id: str) -> Step:
    devin = stack.devin
    tag = f"pagerduty-incident:{incident_id}"
    creates = [r for r in devin.create_requests() if tag in (r.json().get("tags") or [])] if devin else []
    messages = devin.messages(session_id) if devin is not None and session_id else []
    text = f"one create request for {incident_id} and two messages in its session"
    problems = []
    if len(creates) != 1:
        problems.append(f"{len(creates)} create requests carried {tag}, expected exactly 1")
    if len(messages) != 2:
        problems.append(f"{len(messages)} messages reached the session, expected exactly 2")
    details = tuple(f"{n}. {(message.splitlines() or [''])[0]}" for n, message in enumerate(messages, 1))
    return Step(text + (":" if details else ""), details, "; ".join(problems) or None)


def _routing_rule(name: str) -> dict[str, Any] | None:
    rules = json.loads(ROUTING_EXAMPLE.read_text(encoding="utf-8")).get("rules", [])
    return next((rule for rule in rules if rule.get("name") == name), None)


def _routed_step(stack: LocalStack, incident_id: str, service: str, answer: Answer) -> Step:
    text = f"the routed incident {incident_id}: its create request carries the playbook, repos and tags of rule"
    text += f' "{ROUTED_RULE}"'
    rule = _routing_rule(ROUTED_RULE)
    if rule is None:
        return Step(text, problem=f"{ROUTING_EXAMPLE.relative_to(ROOT)} has no rule {ROUTED_RULE!r}")
    body = _create_body(stack, incident_id)
    if body is None:
        started = _expect(answer, 200, "started")
        return Step(text, problem=started or f"no create-session request carried pagerduty-incident:{incident_id}")
    standard = [tag.format(service=service, incident_id=incident_id) for tag in STANDARD_TAGS]
    expected = {
        "playbook_id": rule.get("playbook_id"),
        "knowledge_ids": rule.get("knowledge_ids"),
        "repos": rule.get("repos"),
        "max_acu_limit": rule.get("max_acu_limit"),
        "tags": [*standard, *rule.get("tags", [])],
    }
    details, problems = [], []
    for field, want in expected.items():
        got = body.get(field)
        details.append(f"{field:<14} {', '.join(map(str, got)) if isinstance(got, list) else got}")
        if got != want:
            problems.append(f"{field} is {json.dumps(got)}, expected {json.dumps(want)}")
    return Step(text + ":", tuple(details), "; ".join(problems) or None)


class _Background:
    """A stack that starts on a thread of its own while something else runs; wait() for it, stop() it in any case."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.up_seconds = 0.0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._boot, name="lifecycle stack", daemon=True)

    def _boot(self) -> None:
        started = time.monotonic()
        try:
            self.stack.start()
        except BaseException as error:  # raised by wait(); start() already stopped what it had started
            self._error = error
        self.up_seconds = time.monotonic() - started

    def start(self) -> None:
        self._thread.start()

    def wait(self) -> None:
        """Until the stack is up; raises what its start raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        # A start still running is waited for: stopping half of it could leave a process behind.
        if self._thread.ident is not None:
            self._thread.join()
        self.stack.stop()


def lifecycle_act(stack: LocalStack) -> tuple[list[Row], list[Step]]:
    """An incident acknowledged (the session starts early), annotated and resolved (two messages to it), the same
    resolve again (a duplicate that sends nothing), and a P1 resolve of another incident routed by its rule.
    `stack` runs with LIFECYCLE_PARAMETERS and the routing example; returns the table's rows and the checks."""
    p1 = (PAYLOADS_DIR / P1_PAYLOAD).read_bytes()
    incident_id, routed_id = _incident_id(), _incident_id()
    acknowledged, note, resolve = _lifecycle_bodies(p1, incident_id)
    rows: list[Row] = []

    def deliver(label: str, body: bytes, status: int, outcome: str, session: str | None = None) -> Answer:
        answer = _post(stack, body)
        rows.append(_row(label, answer, _expect(answer, status, outcome, session)))
        return answer

    started = deliver(f"acknowledged, {incident_id}", acknowledged, 200, "started")
    session = started.session_id or None
    noted = deliver("note added on it", note, 200, "messaged", session)
    resolved = deliver("resolved", resolve, 200, "messaged", session)
    sent = len(stack.devin.message_requests()) if stack.devin is not None else 0
    again = deliver("same resolve again", resolve, 200, "duplicate", session)
    sent_again = len(stack.devin.message_requests()) if stack.devin is not None else 0
    routed = deliver(f"routed P1 resolve, {routed_id}", _another_incident(p1, routed_id), 200, "started")

    duplicate_problem = _expect(again, 200, "duplicate", session)
    if duplicate_problem is None and sent_again != sent:
        duplicate_problem = f"{sent_again - sent} more message requests reached Devin, expected none"
    service = json.loads(p1)["event"]["data"]["service"]["summary"]
    steps = [
        _early_start_step(stack, incident_id, started),
        _answer_step("annotate", noted, _expect(noted, 200, "messaged", session), "the note went to the same session"),
        _answer_step(
            "resolve", resolved, _expect(resolved, 200, "messaged", session), "the resolve went to the same session"
        ),
        _answer_step("the same resolve again", again, duplicate_problem, "the same session, and no message sent"),
        _one_session_step(stack, incident_id, started.session_id),
        _routed_step(stack, routed_id, service, routed),
    ]
    return rows, steps


def render_lifecycle(act_stack: _Background, rows: list[Row], steps: list[Step]) -> str:
    stack = act_stack.stack
    settings = " ".join(f"{name}={value}" for name, value in stack.parameters.items() if name != "MaxEventAgeHours")
    header = (
        f"Lifecycle and routing, on a second stack (up in {act_stack.up_seconds:.1f} s, alongside the first):"
        f" {settings}, routing {ROUTING_EXAMPLE.relative_to(ROOT)}"
    )
    return "\n".join([header, "", render_table(rows), "", *_step_lines(steps)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=10, help="concurrent deliveries in the burst (default 10)")
    parser.add_argument("--workers", type=int, default=4, help="warm Lambda containers (default 4)")
    parser.add_argument(
        "--devin-latency",
        type=float,
        default=0.3,
        help="seconds the stand-in takes to answer (default 0.3), so that the burst overlaps the first call",
    )
    parser.add_argument("--logs", type=Path, help="file for the function's logs (default: a new temporary file)")
    args = parser.parse_args(argv)
    if args.burst < 2 or args.workers < 1:
        parser.error("--burst must be at least 2 and --workers at least 1")

    log_path = args.logs or Path(tempfile.mkstemp(prefix="pagerduty-bridge-demo-", suffix=".log")[1])
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log, contextlib.ExitStack() as cleanup:
        stack = LocalStack(port=0, workers=args.workers, devin_latency=args.devin_latency, function_log=log)
        try:
            stack.start()
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        # The lifecycle and routing act needs other settings than the contract's defaults: a stack of its own. It
        # starts while the first one's deliveries run (once the first is up, so that its start-up time is as before);
        # its deliveries come one at a time, so one warm container will do.
        act_stack = _Background(
            LocalStack(port=0, workers=1, function_log=log, parameters=LIFECYCLE_PARAMETERS, routing=ROUTING_EXAMPLE)
        )
        cleanup.callback(act_stack.stop)
        try:
            print(
                f"Local stack up in {time.monotonic() - started:.1f} s: webhook {stack.url}, moto {stack.aws_endpoint}"
            )
            act_stack.start()
            rows, p1_id = run(stack, args.burst)
            print()
            print(render_table(rows))
            steps = pagerduty_act(stack, p1_id)
            if steps:
                print()
                print(render_steps(stack, steps))
            print()
            print("Ledger items (DynamoDB on moto):")
            print(json.dumps(stack.ledger_items(), indent=2, ensure_ascii=False))
            print()
            print(f"The prompt Devin received for {p1_id}:")
            print(_prompt_for(stack, p1_id))
        finally:
            stack.stop()
        try:
            act_stack.wait()
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        act_rows, act_steps = lifecycle_act(act_stack.stack)
        print()
        print(render_lifecycle(act_stack, act_rows, act_steps))
    problems = [row for row in rows if row.problem is not None]
    checks = [step for step in steps if step.checked]
    failed = [step for step in checks if step.problem is not None]
    # The act's rows show what went wrong with an answer; its checks (which include the answers) are what count.
    act_failed = [step for step in act_steps if step.problem is not None]
    print()
    print(f"Function logs: {log_path}")
    if problems:
        print(f"FAILED: {len(problems)} of {len(rows)} deliveries were not answered as the contract says")
    if failed:
        print(f"FAILED: {len(failed)} of {len(checks)} PagerDuty checks did not hold")
    if act_failed:
        print(f"FAILED: {len(act_failed)} of {len(act_steps)} lifecycle and routing checks did not hold")
    if problems or failed or act_failed:
        return 1
    print(
        f"OK: all {len(rows)} deliveries answered as the contract says; the burst started exactly one session;"
        f" all {len(checks)} PagerDuty checks held; all {len(act_steps)} lifecycle and routing checks held."
    )
    print(f"({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:
        # The reader went away (`| head`); the stack is already stopped, so leave quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
