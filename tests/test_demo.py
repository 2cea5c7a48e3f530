"""local.demo, run as a user runs it: every sample delivery gets the contract's answer, and it says so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from local.pagerduty_standin import sample_record

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    logs = tmp_path_factory.mktemp("demo") / "function.log"
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "local.demo", "--logs", str(logs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )


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
    assert "all 3 PagerDuty checks held" in demo.stdout
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
    assert len(re.findall(r"→ follow-up run \d .*: HTTP 200 ", demo.stdout)) == 2
    assert "✓ the pull request's link was posted on Q2CKYRLH85UNN4 once over 2 runs" in demo.stdout
