"""Before/after: the same measurements for two versions of the function, interleaved so that a busy machine
slows both alike.

    git archive <commit> handler | tar -x -C /tmp/before
    python -m bench.compare /tmp/before/handler [handler] [--rounds 5] [--iterations 1000]

Each round runs, for one version then the other: init (import handler/app.py as scripts/build ships it), the
first started and the first ignored delivery in a fresh interpreter, and every path warm. Prints the median
over the rounds of each figure, per version, as a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.deliveries import PATHS
from bench.lambda_env import HANDLER
from bench.run import Workers, _ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="the older function folder")
    parser.add_argument("after", type=Path, nargs="?", default=HANDLER, help="the newer one (default handler/)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=1000, help="warm invocations per path per round")
    options = parser.parse_args(argv)

    figures: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as folder:
        workers = {name: Workers(Path(folder) / name, getattr(options, name).resolve()) for name in ("before", "after")}
        for round_ in range(options.rounds):
            print(f"round {round_ + 1} of {options.rounds}", file=sys.stderr)
            for name, worker in workers.items():
                add = figures[name].setdefault
                add("init: import app", []).append(worker.run("init", "app")[0]["seconds"])
                add("init: import app, plain sam build", []).append(worker.run("init", "app-source")[0]["seconds"])
                for path in ("started", "ignored"):
                    first = worker.run("first", path, "20")[0]
                    add(f"first request: {path}", []).append(first["first"])
                    add(f"init + first request: {path}", []).append(first["init"] + first["first"])
                warm = worker.run("warm", str(options.iterations), "sampled")[0]
                for path in PATHS:
                    add(f"warm p50: {path}", []).append(warm[path]["p50"])

    print(f"| figure (median of {options.rounds} interleaved rounds) | before | after | after / before |")
    print("|---|---|---|---|")
    for key in figures["before"]:
        before, after = (statistics.median(figures[name][key]) for name in ("before", "after"))
        print(f"| {key} | {_ms(before)} | {_ms(after)} | {after / before:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
