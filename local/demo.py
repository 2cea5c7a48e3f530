"""Replays every sample payload against a fresh local stack and checks each answer against the contract.

    python -m local.demo [--burst N] [--workers N] [--devin-latency S] [--logs FILE]

Starts the local stack on free ports, sends a P1 resolve, a PagerDuty retry of it, a burst of concurrent
deliveries of another qualifying incident, every ignored kind, a forged and an unsigned delivery and a
malformed body, then prints a table (delivery → HTTP status → outcome → session). Then PagerDuty's side: the
P1 prompt carries the incident's timeline from PagerDuty's REST API (the stand-in), one note with the session's
link came back on the incident, and once the stand-in Devin session opens a pull request, two runs of the
scheduled follow-up post its link on the incident once. Last, the ledger items and the prompt Devin received
for the P1 incident. Exits 0 only if every answer is what the contract says, the burst started exactly one
Devin session and each PagerDuty check held.
"""

from __future__ import annotations

import argparse
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
from local.pagerduty_standin import PagerDutyStandIn, sample_record
from local.send import send
from local.stack import LocalStack, StackError
from scripts.make_events import FORGED_SIGNING_SECRET, PAYLOADS_DIR, TEST_SIGNING_SECRET

P1_PAYLOAD = "incident-resolved-p1.json"
# The pull request the stand-in Devin session "opens" for the P1 incident's postmortem.
PULL_REQUEST = "https://github.com/acme/checkout/pull/4128"
DATA_OPEN, DATA_CLOSE = "<pagerduty-incident>", "</pagerduty-incident>"
FOLLOW_UP_RUNS = 2


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
    """One line of the PagerDuty act: something checked (✓ or ✗) or something done (→), with what it shows."""

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


def _another_incident(p1: bytes, incident_id: str) -> bytes:
    """The P1 resolve for another incident, as PagerDuty would send it (ids and links follow the id)."""
    document = json.loads(p1)
    data = document["event"]["data"]
    data["id"] = incident_id
    data["number"] = data["number"] + 1
    data["self"] = f"https://api.pagerduty.com/incidents/{incident_id}"
    data["html_url"] = f"https://acme.pagerduty.com/incidents/{incident_id}"
    document["event"]["id"] = str(uuid.uuid4()).replace("-", "").upper()[:26]
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"


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
        devin.open_pull_request(session_id, PULL_REQUEST)
    except KeyError:
        return [Step("the stand-in Devin session opens a pull request", problem=f"Devin has no session {session_id}")]
    steps.append(Step(f"Devin's session {session_id} opens a pull request: {PULL_REQUEST}", checked=False))
    for run in range(1, FOLLOW_UP_RUNS + 1):
        try:
            status, answer = follow_up.run(stack.follow_up_url, timeout=60)
        except OSError as error:
            status, answer = 0, str(error).encode()
        where = f"POST {stack.follow_up_url}" if run == 1 else "again"
        problem = None if status == 200 else f"expected HTTP 200, got {status or 'no answer'}"
        text = f"follow-up run {run} ({where}): HTTP {status} {answer.decode('utf-8', 'replace')}"
        steps.append(Step(text, problem=problem, checked=problem is not None))
    posted = [note["content"] for note in pagerduty.notes_posted(incident_id) if PULL_REQUEST in note["content"]]
    text = f"the pull request's link was posted on {incident_id} once over {FOLLOW_UP_RUNS} runs"
    if len(posted) != 1:
        steps.append(Step(text, problem=f"it was posted {len(posted)} times, expected exactly once"))
    else:
        steps.append(Step(text + ":", tuple(posted[0].splitlines())))
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
        _session_note_step(pagerduty, incident_id, session_url),
        *_follow_up_steps(stack, devin, pagerduty, incident_id, session_id),
    ]


def render_steps(stack: LocalStack, steps: list[Step]) -> str:
    where = stack.pagerduty.base_url if stack.pagerduty is not None else "?"
    lines = [f"PagerDuty's side (its REST API is the stand-in on {where}):"]
    for step in steps:
        mark = "→" if not step.checked else ("✓" if step.problem is None else "✗")
        lines.append(f"  {mark} {step.text}")
        lines.extend(f"      {detail}" for detail in step.details)
        if step.problem is not None:
            lines.append(f"      ✗ {step.problem}")
    return "\n".join(lines)


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
    with open(log_path, "w", encoding="utf-8") as log:
        stack = LocalStack(port=0, workers=args.workers, devin_latency=args.devin_latency, function_log=log)
        try:
            stack.start()
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            print(
                f"Local stack up in {time.monotonic() - started:.1f} s: webhook {stack.url}, moto {stack.aws_endpoint}"
            )
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
    problems = [row for row in rows if row.problem is not None]
    checks = [step for step in steps if step.checked]
    failed = [step for step in checks if step.problem is not None]
    print()
    print(f"Function logs: {log_path}")
    if problems:
        print(f"FAILED: {len(problems)} of {len(rows)} deliveries were not answered as the contract says")
    if failed:
        print(f"FAILED: {len(failed)} of {len(checks)} PagerDuty checks did not hold")
    if problems or failed:
        return 1
    print(
        f"OK: all {len(rows)} deliveries answered as the contract says; the burst started exactly one session;"
        f" all {len(checks)} PagerDuty checks held."
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
