"""scripts/demo, run as the README shows it from a fresh clone: every sample delivery gets the contract's answer,
and it says so."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.pagerduty_standin import sample_record
from tests.support.fresh_clone import fresh_clone

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SESSION = re.compile(r"devin-[0-9a-f]{32}")


@pytest.fixture(scope="module")
def demo() -> Iterator[subprocess.CompletedProcess[str]]:
    """`scripts/demo`, exactly as the README shows it, from a fresh clone-like copy of the repository."""
    ran = subprocess.run(  # noqa: S603
        ["scripts/demo"],  # noqa: S607 - the README's command, relative to the clone
        cwd=fresh_clone(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    yield ran
    # It leaves its function log where it says; a user reads it, the suite does not keep it.
    logs = re.search(r"^Function logs: (\S+)$", ran.stdout, re.M)
    if logs:
        Path(logs.group(1)).unlink(missing_ok=True)


def _table(stdout: str) -> dict[str, list[str]]:
    """{delivery: [HTTP, outcome, session]} from the printed table (columns are separated by 2+ spaces)."""
    rows = {}
    for line in stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 5 and cells[0].isdigit():
            rows[cells[1]] = cells[2:]
    return rows


def test_the_demo_exits_0_and_says_every_answer_matched(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "OK: all 12 deliveries answered as the contract says" in demo.stdout
    assert "all 6 PagerDuty checks held" in demo.stdout
    assert "all 6 lifecycle and routing checks held." in demo.stdout
    assert "✗" not in demo.stdout
    assert "Traceback" not in demo.stderr


def test_the_p1_resolve_starts_a_session_and_its_retry_is_a_duplicate(demo: subprocess.CompletedProcess[str]) -> None:
    rows = _table(demo.stdout)

    http, outcome, session = rows["P1 resolve, Q2CKYRLH85UNN4"]
    assert (http, outcome) == ("200", "started")
    assert re.fullmatch(r"devin-[0-9a-f]{32}", session)
    assert rows["same delivery again (retry)"] == ["200", "duplicate", session]


def test_the_burst_starts_exactly_one_session_and_the_retry_gets_it(demo: subprocess.CompletedProcess[str]) -> None:
    rows = _table(demo.stdout)

    [burst] = [cells for name, cells in rows.items() if name.startswith("burst: 10 at once, ")]
    http, outcome, session = burst
    assert outcome.startswith("1 started")
    assert set(re.findall(r"\b(\d{3}) ×", http)) <= {"200", "429"}
    assert sum(int(n) for n in re.findall(r"×(\d+)", http)) == 10
    assert rows["retry after the burst"] == ["200", "duplicate", session]


def test_ignored_and_refused_deliveries_get_their_documented_answers(demo: subprocess.CompletedProcess[str]) -> None:
    rows = _table(demo.stdout)

    for name in ("low-urgency resolve", "merged resolve", "P1 triggered", "note added", "ping"):
        assert rows[name][0] == "200", name
        assert rows[name][1].startswith("ignored: "), name
        assert rows[name][2] == "-", name
    assert rows["forged signature"][0] == "401"
    assert rows["no signature"][0] == "401"
    assert rows["malformed body"][0] == "400"


def test_it_prints_the_ledger_and_the_prompt_devin_received(demo: subprocess.CompletedProcess[str]) -> None:
    assert "Ledger items (DynamoDB on moto):" in demo.stdout
    assert '"incident_id": "Q2CKYRLH85UNN4"' in demo.stdout
    assert "The prompt Devin received for Q2CKYRLH85UNN4:" in demo.stdout
    assert "<pagerduty-incident>" in demo.stdout
    assert "docs/postmortems/" in demo.stdout


def test_it_shows_pagerdutys_timeline_the_note_back_and_the_pull_request_posted_once(
    demo: subprocess.CompletedProcess[str],
) -> None:
    entries = len(sample_record("Q2CKYRLH85UNN4")["log_entries"])

    assert f"✓ the prompt for Q2CKYRLH85UNN4 carries PagerDuty's timeline: {entries} entries" in demo.stdout
    note = re.search(r"✓ one note came back on Q2CKYRLH85UNN4, with the session's link:\n\s+(.*)\n", demo.stdout)
    assert note, demo.stdout
    assert re.search(r"https://app\.devin\.ai/sessions/devin-[0-9a-f]{32}$", note.group(1))
    assert len(re.findall(r"→ follow-up run \d .*: HTTP 200 ", demo.stdout)) == 3
    assert "✓ the pull request's link was posted on Q2CKYRLH85UNN4 once over 3 runs" in demo.stdout
    assert "suspended for inactivity (running/finished → suspended/inactivity)" in demo.stdout
    assert "✓ while the session worked, no summary was posted; once it was done and idle" in demo.stdout


def _lifecycle(stdout: str) -> str:
    """The lifecycle and routing act's part of the output: from its header to the function logs' line."""
    act = stdout.partition("Lifecycle and routing, on a second stack")[2]
    assert act, stdout
    return act.partition("Function logs:")[0]


def test_the_lifecycle_act_runs_on_a_second_stack_with_its_own_settings(
    demo: subprocess.CompletedProcess[str],
) -> None:
    header = _lifecycle(demo.stdout).splitlines()[0]

    assert (
        "EventTypes=incident.resolved,incident.acknowledged FollowUpEventTypes=incident.annotated,incident.reopened,"
        " routing docs/routing.example.json"
    ) in header


def test_acknowledge_annotate_resolve_is_one_session_and_the_same_resolve_again_a_duplicate(
    demo: subprocess.CompletedProcess[str],
) -> None:
    rows = _table(demo.stdout)

    [(name, (http, outcome, session))] = [(n, cells) for n, cells in rows.items() if n.startswith("acknowledged, ")]
    assert (http, outcome) == ("200", "started")
    assert SESSION.fullmatch(session)
    assert rows["note added on it"] == ["200", "messaged", session]
    assert rows["resolved"] == ["200", "messaged", session]
    assert rows["same resolve again"] == ["200", "duplicate", session]
    incident_id = name.removeprefix("acknowledged, ")
    assert re.fullmatch(r"[A-Z0-9]{14}", incident_id)
    act = _lifecycle(demo.stdout)
    early = re.search(
        r'✓ acknowledge → 200 started: the session starts early; its prompt says "is still open":\n(.*)', act
    )
    assert early, act
    # The function's own words, not the incident's data.
    assert "is still open" in early.group(1)
    assert "pagerduty-incident" not in early.group(1)
    assert "✓ annotate → 200 messaged: the note went to the same session" in act
    assert "✓ resolve → 200 messaged: the resolve went to the same session" in act
    assert "✓ the same resolve again → 200 duplicate: the same session, and no message sent" in act
    messages = re.search(
        rf"✓ one create request for {incident_id} and two messages in its session:\n\s+1\. (.*)\n\s+2\. (.*)\n", act
    )
    assert messages, act
    assert "(incident.annotated)" in messages.group(1)
    assert "(incident.resolved)" in messages.group(2)


def test_a_routed_incidents_create_request_carries_its_rules_playbook_repos_and_tags(
    demo: subprocess.CompletedProcess[str],
) -> None:
    rules = json.loads((ROOT / "docs" / "routing.example.json").read_text(encoding="utf-8"))["rules"]
    [payments] = [rule for rule in rules if rule["name"] == "payments P1"]
    rows = _table(demo.stdout)

    [(name, (http, outcome, session))] = [(n, c) for n, c in rows.items() if n.startswith("routed P1 resolve, ")]
    assert (http, outcome) == ("200", "started")
    assert SESSION.fullmatch(session)
    incident_id = name.removeprefix("routed P1 resolve, ")
    act = _lifecycle(demo.stdout)
    check = re.search(
        rf"✓ the routed incident {incident_id}: its create request carries the playbook, repos and tags of rule"
        rf' "payments P1":\n((?:\s{{6}}.*\n)+)',
        act,
    )
    assert check, act
    shown = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in check.group(1).splitlines())
    assert shown == {
        "playbook_id": payments["playbook_id"],
        "knowledge_ids": ", ".join(payments["knowledge_ids"]),
        "repos": ", ".join(payments["repos"]),
        "max_acu_limit": str(payments["max_acu_limit"]),
        "tags": ", ".join(
            ["pagerduty-postmortem", "service:Checkout API", f"pagerduty-incident:{incident_id}", *payments["tags"]]
        ),
    }


def test_it_shows_the_computed_figures_and_the_summary_note_posted_once(demo: subprocess.CompletedProcess[str]) -> None:
    evidence = re.search(
        r"✓ the prompt for Q2CKYRLH85UNN4 carries the figures the bridge computed.*:\n\s+(.*)\n", demo.stdout
    )
    assert evidence, demo.stdout
    # The sample's trigger 09:12:44Z, first acknowledgement 09:15:02Z, resolve 10:03:18Z.
    assert "seconds_to_first_ack 138, seconds_to_resolve 3034" in evidence.group(1)
    summary = demo.stdout.split("✓ the postmortem's summary came back on Q2CKYRLH85UNN4 once, readable at a glance:")
    assert len(summary) == 2, demo.stdout
    assert re.search(r"P1 · 51 min · Checkout API 5xx error rate above 5% — payments failing\n", summary[1])
    assert "[pagerduty-postmortem:summary]" in summary[1]
