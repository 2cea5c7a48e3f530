"""The atheris harnesses (fuzz/fuzz_webhook.py, fuzz/fuzz_result.py) run clean for a bounded time: CI fuzzes on
every run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "fuzz" / "fuzz_webhook.py"
SECONDS = 15


@pytest.mark.slow
def _failure(log: str) -> str:
    """The failing input's traceback, where the harness printed one; else the end of the run's log."""
    uncaught = log.find("=== Uncaught Python exception")
    return log[uncaught : uncaught + 4000] if uncaught >= 0 else log[-4000:]


def test_the_verifier_and_the_parser_survive_a_bounded_fuzzing_run(tmp_path: Path) -> None:
    # GIVEN a corpus seeded with the sample PagerDuty bodies (libFuzzer adds what it finds to it)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for sample in (ROOT / "events" / "payloads").glob("*.json"):
        shutil.copy(sample, corpus)

    # WHEN the harness fuzzes for a bounded time
    result = subprocess.run(  # noqa: S603 - our own harness, run with the test interpreter
        [
            sys.executable,
            str(HARNESS),
            f"-max_total_time={SECONDS}",
            "-timeout=10",
            "-rss_limit_mb=1024",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SECONDS + 60,
        check=False,
    )

    # THEN no input raised anything but a planned BridgeError, nor disagreed with the signature oracle
    crashes = "".join(f"\n{path.name}: {path.read_bytes()!r}" for path in tmp_path.glob("crash-*"))
    assert result.returncode == 0, f"{_failure(result.stderr)}{crashes}"
    runs = [line for line in result.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split(":")[-1]) > 1000, result.stderr[-2000:]


@pytest.mark.slow
def test_what_a_session_gives_back_survives_a_bounded_fuzzing_run_through_the_follow_up(tmp_path: Path) -> None:
    # GIVEN an empty corpus, inputs of up to 2 KB from the start
    corpus = tmp_path / "corpus"
    corpus.mkdir()

    # WHEN the harness fuzzes the follow-up with hostile session answers for a bounded time
    result = subprocess.run(  # noqa: S603 - our own harness, run with the test interpreter
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_result.py"),
            f"-max_total_time={SECONDS}",
            "-timeout=20",
            "-max_len=2048",
            "-len_control=0",
            "-rss_limit_mb=1024",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SECONDS + 90,
        check=False,
    )

    # THEN no posted note or stored item carried a foreign marker, a secret or a foreign link, and every session
    # behind a hostile one was followed
    crashes = "".join(f"\n{path.name}: {path.read_bytes()!r}" for path in tmp_path.glob("crash-*"))
    assert result.returncode == 0, f"{_failure(result.stderr)}{crashes}"
    runs = [line for line in result.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split(":")[-1]) > 100, result.stderr[-2000:]
