"""How long scripts/check-postmortem takes on 1 MB documents (issue 22: under one second), per run.

    .venv/bin/python -m bench.rubric [--runs N] [--size CHARACTERS]

It writes four documents of 1,000,000 characters or more, each the kind a big postmortem is made of (the good sample
repeated, one long timeline, prose, a long list of action items), and a one-line document for what starting the
command costs on its own (bash, python3, compiling the rubric). It runs the command on each N times (default 5) in
both readings, as a user or a postmortems repository's CI runs it (a fresh python3, the file on disk), and prints one
Markdown table: the median and the slowest wall time, and the median CPU time (user + system) of the command and its
python3. On a machine shared with other work the wall time includes waiting for a core, so the load average is
printed too. docs/postmortem-rubric.md quotes it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ROOT / "scripts" / "check-postmortem"
SIZE = 1_000_000
size = SIZE  # of the documents written; --size changes it


def _repeat(text: str) -> str:
    return text * (size // len(text) + 1)


def _sample() -> str:
    return _repeat((ROOT / "tests" / "samples" / "postmortem-good.md").read_text(encoding="utf-8"))


def _timeline() -> str:
    line = "- 2026-03-01T{h:02d}:{m:02d}:00Z deploy `api@4f2c9e1` rolled out, see https://ci.example.com/run/{n}\n"
    lines = (line.format(h=n // 60 % 24, m=n % 60, n=n) for n in range(size // len(line.format(h=0, m=0, n=0)) + 1))
    return "# Outage\n\n## Timeline (UTC)\n\n" + "".join(lines)


def _prose() -> str:
    return _repeat(
        "The checkout service answered 503 to 23% of requests for 63 minutes after a configuration change, and the"
        " on-call engineer acknowledged the page 4 minutes after it fired.\n\n"
    )


def _actions() -> str:
    return "# Outage\n\n## Action items\n\n" + _repeat(
        "- Reject pool sizes below 20 in the configuration schema (owner: payments; tracked in #4412)\n"
    )


DOCUMENTS: dict[str, Callable[[], str]] = {
    "one line (the command's own start)": lambda: "# Outage\n",
    "good sample repeated": _sample,
    "one long timeline": _timeline,
    "prose": _prose,
    "action items": _actions,
}


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _run(path: Path, strict: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    cpu, started = _cpu(), time.perf_counter()
    subprocess.run(  # noqa: S603 - our own script on a file we wrote
        [str(COMMAND), str(path), "--min-score", "0", *(["--strict"] if strict else [])],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return time.perf_counter() - started, _cpu() - cpu


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rubric", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each document in each reading (default 5)")
    parser.add_argument("--size", type=int, default=SIZE, help=f"characters of each document (default {SIZE:,})")
    args = parser.parse_args(argv)
    global size  # noqa: PLW0603 - the documents' makers read it
    size = args.size
    rows = [
        "| document | characters | reading | median wall | slowest wall | median CPU |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for name, make in DOCUMENTS.items():
            text = make()
            path = Path(folder) / "postmortem.md"
            path.write_text(text, encoding="utf-8")
            for strict in (False, True):
                wall, cpu = zip(*(_run(path, strict) for _ in range(args.runs)), strict=True)
                rows.append(
                    f"| {name} | {len(text):,} | {'strict' if strict else 'default'}"
                    f" | {statistics.median(wall):.2f} s | {max(wall):.2f} s | {statistics.median(cpu):.2f} s |"
                )
    print("\n".join(rows))
    load = ", ".join(f"{figure:.1f}" for figure in os.getloadavg())
    print(f"\nload average before the last run ended (1, 5, 15 minutes): {load} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
