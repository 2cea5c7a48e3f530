"""The atheris harnesses (fuzz/fuzz_webhook.py, fuzz/fuzz_result.py) run clean for a bounded time: CI fuzzes on
every run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 15


def fuzz(harness: str, folder: Path, *options: str, timeout: float) -> int:
    """Run fuzz/HARNESS for SECONDS on folder/corpus, with libFuzzer's `options`; fails the test, with the failing
    input's traceback and the crash files, unless it ran clean. Returns how many inputs it ran."""
    result = subprocess.run(  # noqa: S603 - our own harness, run with the test interpreter
        [
            sys.executable,
            str(ROOT / "fuzz" / harness),
            f"-max_total_time={SECONDS}",
            *options,
            "-rss_limit_mb=1024",
            "-print_final_stats=1",
            f"-artifact_prefix={folder}/",
            str(folder / "corpus"),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=SECONDS + timeout,
        check=False,
    )
    log = result.stderr
    crashes = "".join(f"\n{path.name}: {path.read_bytes()!r}" for path in folder.glob("crash-*"))
    uncaught = log.find("=== Uncaught Python exception")
    failure = log[uncaught : uncaught + 4000] if uncaught >= 0 else log[-4000:]
    assert result.returncode == 0, f"{failure}{crashes}"
    runs = [line for line in log.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert runs, log[-2000:]
    return int(runs[0].split(":")[-1])


@pytest.mark.slow
def test_the_verifier_and_the_parser_survive_a_bounded_fuzzing_run(tmp_path: Path) -> None:
    # GIVEN a corpus seeded with the sample PagerDuty bodies (libFuzzer adds what it finds to it)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for sample in (ROOT / "events" / "payloads").glob("*.json"):
        shutil.copy(sample, corpus)

    # WHEN the harness fuzzes for a bounded time
    # THEN no input raised anything but a planned BridgeError, nor disagreed with the signature oracle
    assert fuzz("fuzz_webhook.py", tmp_path, "-timeout=10", timeout=60) > 1000


@pytest.mark.slow
def test_what_a_session_gives_back_survives_a_bounded_fuzzing_run_through_the_follow_up(tmp_path: Path) -> None:
    # GIVEN an empty corpus, inputs of up to 2 KB from the start
    (tmp_path / "corpus").mkdir()

    # WHEN the harness fuzzes the follow-up with hostile session answers for a bounded time
    # THEN no posted note or stored item carried a foreign marker, a secret or a foreign link, and every session
    # behind a hostile one was followed
    runs = fuzz("fuzz_result.py", tmp_path, "-timeout=20", "-max_len=2048", "-len_control=0", timeout=90)
    assert runs > 100
