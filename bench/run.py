"""What one PagerDuty webhook costs: init, first request, warm self-time, calls, package size, throughput.

    python -m bench.run            # the full run (minutes): `scripts/bench` in docs/performance.md
    python -m bench.run --quick    # a few hundred iterations, no build, no load test (seconds); the test suite runs it
    python -m bench.run --only pagerduty    # PagerDuty's record and note on the started path (issue 8) alone

Prints one Markdown table; each row says how its figure was measured. Timings come from fresh interpreters
set up like a Lambda sandbox (bench.lambda_env): the template's environment (Tracing at its default, Active, except
in the init rows "tracing off"), only what Lambda has on sys.path, the function's package as scripts/build ships it
(and, for one init row, as plain `sam build` does). AWS, Devin and PagerDuty are answered in-process at the transport
boundary (bench.standins), and their own time is taken off; only the slow-PagerDuty rows use a real stand-in on
127.0.0.1, whose sockets time out.
docs/performance.md explains the figures; bench.compare sets two versions of the function side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import follow_up, package, prompt, throughput
from bench.deliveries import PATHS
from bench.lambda_env import HANDLER, ROOT, lambda_environ, lambda_path

SECTIONS = ("init", "first", "warm", "pagerduty", "package", "throughput", "follow-up", "prompt")
# The targets of issue 5.
INIT_RATIO_TARGET = 1.5
# With X-Ray tracing off (the template's Tracing=PassThrough), the X-Ray SDK is not loaded and init must stay within
# this many times `import boto3` alone.
INIT_UNTRACED_RATIO_TARGET = 1.3
UNTRACED = {"Tracing": "PassThrough"}
WARM_P50_TARGET = 0.001
PACKAGE_ZIPPED_TARGET = 2 * 1024 * 1024
# The target of issue 8: what reading PagerDuty's record and posting the session note add to a warm started
# delivery, with PagerDuty answering at once.
ENRICHMENT_TARGET = 0.050
# The slow-PagerDuty rows: every PagerDuty answer takes this long; the reads may overrun their budget by this much.
SLOW_LATENCY = 10.0
SLOW_MARGIN = 0.25
# PagerDuty waits this long for the webhook's answer, then retries the delivery.
PAGERDUTY_WAIT = 5.0
# The warm paths above run without a PagerDuty key (the default deployment): no PagerDuty call at all.
PAGERDUTY_ON = "started, PagerDuty on (key + from-email)"
CALL_BUDGET = {
    "started": "SSM 0, DynamoDB ≤ 2, Devin create 1, PagerDuty 0",
    "duplicate": "SSM 0, DynamoDB ≤ 1, Devin 0, PagerDuty 0",
    "ignored": "SSM 0, DynamoDB 0, Devin 0, PagerDuty 0",
    "unauthorised": "SSM 0, DynamoDB 0, Devin 0, PagerDuty 0",
    "malformed": "SSM 0, DynamoDB 0, Devin 0, PagerDuty 0",
    PAGERDUTY_ON: (
        "SSM 0, DynamoDB ≤ 3, Devin create 1, PagerDuty GET log_entries, alerts, notes, related_change_events, "
        "past_incidents 1 each, POST note 1"
    ),
}
CALL_LIMITS = {
    "started": {"ssm": 0, "dynamodb": 2, "devin.POST sessions": 1, "devin": 1, "pagerduty": 0},
    "duplicate": {"ssm": 0, "dynamodb": 1, "devin": 0, "pagerduty": 0},
    "ignored": {"ssm": 0, "dynamodb": 0, "devin": 0, "pagerduty": 0},
    "unauthorised": {"ssm": 0, "dynamodb": 0, "devin": 0, "pagerduty": 0},
    "malformed": {"ssm": 0, "dynamodb": 0, "devin": 0, "pagerduty": 0},
    PAGERDUTY_ON: {
        "ssm": 0,
        "dynamodb": 3,
        "devin.POST sessions": 1,
        "devin": 1,
        "pagerduty.GET log_entries": 1,
        "pagerduty.GET alerts": 1,
        "pagerduty.GET notes": 1,
        "pagerduty.GET related_change_events": 1,
        "pagerduty.GET past_incidents": 1,
        "pagerduty.POST notes": 1,
        "pagerduty": 6,
    },
}


@dataclass(frozen=True)
class Settings:
    quick: bool
    init_runs: int
    first_runs: int
    warm_iterations: int
    warm_rounds: int
    profile_path: str | None
    build: bool
    throughput_seconds: float
    pagerduty_iterations: int
    pagerduty_rounds: int
    pagerduty_profile: bool
    slow_budgets: tuple[float, ...]  # PAGERDUTY_READ_SECONDS of the slow-PagerDuty rows that run
    slow_runs: int
    sections: frozenset[str]
    handler: Path
    environ: dict[str, str]


@dataclass
class Row:
    section: str
    what: str
    figure: str
    target: str
    how: str


def _ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def _signed_ms(seconds: float) -> str:
    return ("+" if seconds >= 0 else "-") + _ms(abs(seconds))


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MB"


class Workers:
    """Starts bench.worker in fresh Lambda-like interpreters and reads their answers.

    Each interpreter gets the function's environment as the template deploys it with its parameters' defaults,
    or with `parameters` (run(..., parameters=UNTRACED): tracing off)."""

    def __init__(self, scratch: Path, handler: Path = HANDLER, environ: dict[str, str] | None = None) -> None:
        self.scratch = scratch
        self._extra = {**(environ or {}), "BENCH_LAMBDA_PATH": json.dumps(lambda_path(scratch, handler))}
        self.environ = lambda_environ(self._extra)
        self._environs: dict[tuple[tuple[str, str], ...], dict[str, str]] = {(): self.environ}
        self._count = 0

    def environ_for(self, parameters: dict[str, str] | None) -> dict[str, str]:
        key = tuple(sorted((parameters or {}).items()))
        if key not in self._environs:
            self._environs[key] = lambda_environ(self._extra, parameters=dict(key))
        return self._environs[key]

    def run(self, *args: str, parameters: dict[str, str] | None = None) -> tuple[dict[str, Any], float]:
        return self.finish(self.start(*args, parameters=parameters))

    def start(
        self, *args: str, parameters: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[str], Path, float, tuple[str, ...]]:
        """Start one measurement without waiting for it (finish() reads its answer)."""
        self._count += 1
        out = self.scratch / f"result-{self._count}.json"
        command = [sys.executable, "-S", "-B", "-m", "bench.worker", args[0], str(out), *args[1:]]
        started = time.perf_counter()
        # stdout is the function's log stream (Logger, Metrics): thrown away, as CloudWatch would take it.
        process = subprocess.Popen(  # noqa: S603 - a fixed argv of our own
            command,
            cwd=ROOT,
            env=self.environ_for(parameters),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        return process, out, started, args

    def finish(
        self, started: tuple[subprocess.Popen[str], Path, float, tuple[str, ...]]
    ) -> tuple[dict[str, Any], float]:
        process, out, began, args = started
        _, stderr = process.communicate()
        elapsed = time.perf_counter() - began
        if process.returncode != 0:
            raise RuntimeError(f"bench.worker {' '.join(args)} failed:\n{stderr[-3000:]}")
        return json.loads(out.read_text(encoding="utf-8")), elapsed


@dataclass(frozen=True)
class InitTarget:
    worker: str  # bench.worker's init target, or "steps"
    parameters: dict[str, str] | None  # template parameters (None: the defaults, tracing Active)
    traced: bool  # whether the X-Ray SDK is loaded (checked: on for the traced targets, off for the others)


INIT_TARGETS = {
    "app": InitTarget("app", None, True),
    "app, tracing off": InitTarget("app", UNTRACED, False),
    "boto3": InitTarget("boto3", None, False),
    "floor": InitTarget("floor", None, True),
    "floor, tracing off": InitTarget("floor-untraced", UNTRACED, False),
    "app-source": InitTarget("app-source", None, True),
}
# The pieces of the import (bench.worker STEPS), with and without the Tracer: full runs only.
STEP_TARGETS = {
    "steps": InitTarget("steps", None, True),
    "steps, tracing off": InitTarget("steps", UNTRACED, False),
}


def measure_init(workers: Workers, runs: int, steps: bool = True) -> tuple[list[Row], dict[str, Any]]:
    """Every target once a round, in a fresh interpreter each, for `runs` rounds; figures are medians over rounds.

    Returns the rows and, with `steps`, the import cut into pieces (render_steps prints it)."""
    targets = {**INIT_TARGETS, **(STEP_TARGETS if steps else {})}
    cpu: dict[str, list[float]] = {name: [] for name in targets}
    wall: dict[str, list[float]] = {name: [] for name in targets}
    process: dict[str, list[float]] = {name: [] for name in targets}
    pieces: dict[str, list[list[float]]] = {name: [] for name in STEP_TARGETS}
    names: dict[str, list[str]] = {}
    for _ in range(runs):
        for name, target in targets.items():  # alternately, so that drift on a shared machine hits every target alike
            if target.worker == "steps":
                result, elapsed = workers.run(
                    "steps", "tracer" if target.traced else "no-tracer", parameters=target.parameters
                )
                names[name] = [step["step"] for step in result["steps"]]
                pieces[name].append([step["seconds"] for step in result["steps"]])
                result = {
                    "seconds": sum(step["seconds"] for step in result["steps"]),
                    "cpu": sum(step["cpu"] for step in result["steps"]),
                    "xray": result["xray"],
                }
            else:
                result, elapsed = workers.run("init", target.worker, parameters=target.parameters)
            if target.traced != result["xray"]:
                raise RuntimeError(
                    f"init target {name!r}: tracing should be {'on' if target.traced else 'off'}, yet the X-Ray SDK "
                    f"was {'not ' if target.traced else ''}imported (the init section sets Tracing itself: run it "
                    "without --env TRACING or POWERTOOLS_TRACE_DISABLED)"
                )
            cpu[name].append(result["cpu"])
            wall[name].append(result["seconds"])
            process[name].append(elapsed)
    med = {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in targets}
    boto3_cpu, boto3_wall = med["boto3"]

    def figure(name: str) -> str:
        own_wall = med[name][1]
        ratio = "" if name == "boto3" else f" ({own_wall / boto3_wall:.2f}×)"
        return f"{_ms(own_wall)}{ratio}"

    def paired(one: str, other: str) -> float:
        """Median over the rounds of one target's time minus the other's, taken in the same round."""
        return statistics.median(a - b for a, b in zip(wall[one], wall[other], strict=True))

    def ratio_row(app: str, setting: str, target: float, issue: str) -> Row:
        ratio = med[app][1] / boto3_wall
        cpu_ratio = med[app][0] / boto3_cpu
        process_ratio = statistics.median(process[app]) / statistics.median(process["boto3"])
        return Row(
            "Init",
            f"ratio app / boto3, tracing {setting}",
            # Three decimals: the verdict compares the exact ratio, and 1.50× printed next to MISSED would puzzle.
            f"{ratio:.3f}× (CPU time {cpu_ratio:.2f}×, whole process {process_ratio:.2f}×)",
            f"≤ {target}× ({issue}) {'met' if ratio <= target else 'MISSED'}",
            "the medians of the app's row and boto3's; CPU time = process_time of the import; whole process = "
            "interpreter start to exit",
        )

    how = f"`import` in a fresh interpreter, median of {runs}, the {len(targets)} targets alternately"
    lambda_like = "Lambda's sys.path and environment (template variables; LAMBDA_TASK_ROOT)"
    rows = [
        Row(
            "Init",
            "import handler/app.py, tracing on",
            figure("app"),
            "",
            f"{how}; {lambda_like}, Tracing at its default, Active: the Tracer is made and patches botocore; the "
            "package as scripts/build ships it",
        ),
        Row(
            "Init",
            "import handler/app.py, tracing off",
            figure("app, tracing off"),
            "",
            f"{how}; the same package and environment with the template's Tracing=PassThrough (TRACING=PassThrough):"
            " no Tracer, the X-Ray SDK not imported (checked)",
        ),
        Row("Init", "import boto3 only", figure("boto3"), "", how + "; the runtime's boto3 alone"),
        ratio_row("app", "on", INIT_RATIO_TARGET, "issue 5"),
        ratio_row("app, tracing off", "off", INIT_UNTRACED_RATIO_TARGET, "tracing off"),
        Row(
            "Init",
            "floor, tracing on: boto3 + required Powertools",
            figure("floor") + f"; handler/app.py adds {_ms(paired('app', 'floor'))} to it",
            "",
            how + "; Logger, Metrics, Tracer (botocore patched), SSMProvider: the Powertools the function uses, "
            "traced; 'adds' = median of the per-round differences",
        ),
        Row(
            "Init",
            "floor, tracing off: boto3 + required Powertools without the Tracer",
            figure("floor, tracing off")
            + f"; handler/app.py adds {_ms(paired('app, tracing off', 'floor, tracing off'))} to it",
            "",
            how + "; Logger, Metrics, SSMProvider (no Tracer, the X-Ray SDK not imported): the Powertools the "
            "function uses, untraced; 'adds' = median of the per-round differences",
        ),
        Row(
            "Init",
            "import handler/app.py, plain `sam build`",
            figure("app-source"),
            "",
            how + "; tracing on; the package without bytecode, so the bundled code is compiled at import, as Lambda "
            "does",
        ),
    ]
    if not steps:
        return rows, {}
    breakdown: dict[str, Any] = {"runs": runs, "boto3": boto3_wall, "settings": {}}
    for name in STEP_TARGETS:
        app = "app" if name == "steps" else "app, tracing off"
        by_step = list(zip(*pieces[name], strict=True))
        breakdown["settings"][name] = {
            "pieces": {step: statistics.median(times) for step, times in zip(names[name], by_step, strict=True)},
            "total": med[name][1],
            "app": med[app][1],
            # boto3 imported with the function's sys.path (its bundled urllib3 and certifi shadow the runtime's)
            # against boto3 alone, in the same rounds.
            "boto3_in_package": paired_steps(pieces[name], wall["boto3"]),
        }
    return rows, breakdown


def paired_steps(pieces: list[list[float]], boto3: list[float]) -> float:
    """Median over rounds of the first piece (boto3 with the function's sys.path) minus boto3 alone."""
    return statistics.median(round_[0] - alone for round_, alone in zip(pieces, boto3, strict=True))


def render_steps(breakdown: dict[str, Any]) -> str:
    on, off = breakdown["settings"]["steps"], breakdown["settings"]["steps, tracing off"]
    boto3 = breakdown["boto3"]
    lines = [
        f"Init, piece by piece: what importing handler/app.py does, cut into pieces imported one after the other in "
        f"one fresh Lambda-like interpreter with the function's sys.path (bench/worker.py STEPS); each figure is what "
        f"the piece adds to those before it, median of {breakdown['runs']}, in the same rounds as the table's Init "
        "rows; a module two pieces share is charged to the first. 'of boto3' = the figure / boto3 alone.",
        "",
        "| piece | tracing on | tracing off | of boto3 (off) |",
        "|---|---|---|---|",
    ]
    for step, seconds in on["pieces"].items():
        untraced = off["pieces"].get(step)
        shown = _ms(untraced) if untraced is not None else "not imported"
        share = f"{untraced / boto3:.3f}×" if untraced is not None else ""
        lines.append(f"| {step} | {_ms(seconds)} | {shown} | {share} |")
    lines += [
        f"| sum of the pieces | {_ms(on['total'])} | {_ms(off['total'])} | {off['total'] / boto3:.2f}× |",
        f"| import handler/app.py in one go (the table) | {_ms(on['app'])} | {_ms(off['app'])} | "
        f"{off['app'] / boto3:.2f}× |",
        f"| boto3 with the function's sys.path minus boto3 alone (bundled urllib3, certifi) | "
        f"{_signed_ms(on['boto3_in_package'])} | {_signed_ms(off['boto3_in_package'])} | |",
    ]
    return "\n".join(lines)


def measure_first(workers: Workers, runs: int, warm: int) -> list[Row]:
    rows = []
    peaks: list[int] = []
    for path in ("started", "ignored"):
        firsts, warms, inits, calls = [], [], [], {}
        for _ in range(runs):
            result, _ = workers.run("first", path, str(warm))
            firsts.append(result["first"])
            warms.append(result["warm"]["p50"])
            inits.append(result["init"])
            calls = result["first_calls"]
            if path == "started":
                peaks.append(result["max_rss_bytes"])
        first, warm_p50, init = statistics.median(firsts), statistics.median(warms), statistics.median(inits)
        rows.append(
            Row(
                "First request",
                f"{path}: first invocation after init",
                f"{_ms(first)}, {first / warm_p50:.0f}× the warm p50 of {_ms(warm_p50)}; init + first "
                f"{_ms(init + first)}",
                "",
                f"median of {runs} fresh interpreters; calls made: {_calls_text(calls)}; warm = the next {warm} "
                "of the same path in the same interpreter; stand-ins' own time subtracted",
            )
        )
    rows.append(
        Row(
            "Memory",
            "peak RSS of a container",
            _mb(int(statistics.median(peaks))),
            "",
            f"ru_maxrss after init and {warm + 1} started incidents (what Lambda reports as Max Memory Used), "
            f"median of {runs}; the template gives the function 256 MB",
        )
    )
    return rows


def _calls_text(calls: dict[str, float]) -> str:
    if not calls:
        return "none"
    return ", ".join(f"{name} {count:g}" for name, count in sorted(calls.items()))


def _calls_ok(path: str, calls: dict[str, float]) -> bool:
    limits = CALL_LIMITS[path]
    by_service: dict[str, float] = {}
    for name, count in calls.items():
        service = name.split(".", 1)[0]
        by_service[service] = by_service.get(service, 0) + count
    for name, limit in limits.items():
        have = calls.get(name, 0) if " " in name else by_service.get(name, 0)
        if " " in name and have != limit:
            return False
        if " " not in name and have > limit:
            return False
    return path != "started" or calls.get("devin.POST sessions", 0) == 1


def measure_warm(
    workers: Workers, iterations: int, rounds: int, profile: str | None
) -> tuple[list[Row], dict[str, Any]]:
    """`rounds` fresh interpreters run `iterations` of every path each; a figure is the median over them."""
    results = []
    for round_ in range(rounds):
        last = round_ == rounds - 1
        args = ["warm", str(iterations), "sampled"] + ([profile] if profile and last else [])
        results.append(workers.run(*args)[0])
    rows, call_rows = [], []
    for path in PATHS:
        p50 = statistics.median(result[path]["p50"] for result in results)
        p99 = statistics.median(result[path]["p99"] for result in results)
        calls = _merge_calls([result[path]["calls"] for result in results])
        met = "met" if p50 < WARM_P50_TARGET else "MISSED"
        over = f"median over {rounds} warm interpreters of " if rounds > 1 else "one warm interpreter, "
        rows.append(
            Row(
                "Warm self-time",
                path,
                f"p50 {_ms(p50)}, p99 {_ms(p99)}",
                f"p50 < 1 ms {met}",
                f"{over}{iterations} invocations of lambda_handler each; X-Ray sampled; stand-ins' own time subtracted",
            )
        )
        ok = _calls_ok(path, calls)
        call_rows.append(
            Row(
                "Calls per request",
                path,
                _calls_text(calls),
                f"{CALL_BUDGET[path]} {'met' if ok else 'MISSED'}",
                f"counted by the stand-ins over the same {rounds * iterations} warm invocations "
                "(asserted in tests/test_calls_per_request.py)",
            )
        )
    return rows + call_rows, results[-1].get("profile") or {}


def _merge_calls(per_round: list[dict[str, float]]) -> dict[str, float]:
    """Calls per request over several rounds of equal size (any difference between rounds shows as a fraction)."""
    names = {name for calls in per_round for name in calls}
    return {name: sum(calls.get(name, 0) for calls in per_round) / len(per_round) for name in names}


def measure_pagerduty(workers: Workers, chosen: Settings) -> tuple[list[Row], dict[str, Any]]:
    """The warm started path with PagerDuty off and on, in alternate fresh interpreters (so that drift hits both
    alike), then started deliveries against a PagerDuty that answers after SLOW_LATENCY."""
    iterations, rounds = chosen.pagerduty_iterations, chosen.pagerduty_rounds
    slow_args = [
        (budget, ("slow", f"{budget:g}", f"{SLOW_LATENCY:g}", str(chosen.slow_runs))) for budget in chosen.slow_budgets
    ]
    # --quick: the slow deliveries, which mostly wait for sockets to time out, run alongside the off/on pair.
    background = {budget: workers.start(*args) for budget, args in slow_args} if chosen.quick else {}
    off, on = [], []
    try:
        for round_ in range(rounds):
            off.append(workers.run("enrich", str(iterations), "off")[0])
            profile = chosen.pagerduty_profile and round_ == rounds - 1
            on.append(workers.run("enrich", str(iterations), "on", *(["profile"] if profile else []))[0])
    except BaseException:
        for process, *_ in background.values():
            process.kill()
            process.wait()
        raise
    over = f"median over {rounds} pairs of warm interpreters, " if rounds > 1 else "one pair of warm interpreters, "
    how = (
        f"{over}{iterations} started deliveries each, PagerDuty off and on alternately; on = the parameters hold a "
        "PagerDuty key and a From address, and PagerDuty (sample_record: its log entries, alerts, notes, change "
        "events and past incidents) answers "
        "in-process at the transport boundary, 0 ms; X-Ray sampled; stand-ins' own time subtracted"
    )

    def p(results: list[dict[str, Any]], name: str) -> float:
        return statistics.median(result[name] for result in results)

    added = statistics.median(a["p50"] - b["p50"] for a, b in zip(on, off, strict=True))
    added_p99 = statistics.median(a["p99"] - b["p99"] for a, b in zip(on, off, strict=True))
    calls = _merge_calls([result["calls"] for result in on])
    ok = _calls_ok(PAGERDUTY_ON, calls)
    rows = [
        Row(
            "Calls per request",
            PAGERDUTY_ON,
            _calls_text(calls),
            f"{CALL_BUDGET[PAGERDUTY_ON]} {'met' if ok else 'MISSED'}",
            f"counted by the stand-ins over the {rounds * iterations} warm started deliveries with PagerDuty on below "
            "(asserted in tests/test_calls_per_request.py)",
        ),
        Row(
            "PagerDuty enrichment",
            "warm started, PagerDuty off",
            f"p50 {_ms(p(off, 'p50'))}, p99 {_ms(p(off, 'p99'))}",
            "",
            how,
        ),
        Row(
            "PagerDuty enrichment",
            "warm started, PagerDuty on (key + from-email)",
            f"p50 {_ms(p(on, 'p50'))}, p99 {_ms(p(on, 'p99'))}",
            "",
            how,
        ),
        Row(
            "PagerDuty enrichment",
            "added by the reads and the note",
            f"p50 {_signed_ms(added)}, p99 {_signed_ms(added_p99)}",
            f"p50 ≤ +{ENRICHMENT_TARGET * 1000:.0f} ms {'met' if added <= ENRICHMENT_TARGET else 'MISSED'}",
            "on minus off, median of the per-pair differences of the two rows above: 5 GETs, the record and the "
            "computed figures in the prompt, 1 note POST, 1 more UpdateItem",
        ),
    ]
    measured = {float(result) for result in chosen.slow_budgets}
    for budget in (3.0, 1.0):
        what = f"slow PagerDuty (every answer {SLOW_LATENCY:g} s), PAGERDUTY_READ_SECONDS={budget:g}"
        if budget not in measured:
            rows.append(
                Row(
                    "PagerDuty enrichment",
                    what,
                    "skipped (--quick)",
                    "",
                    "run without --quick (three deliveries of about 5 s)",
                )
            )
            continue
        args = dict(slow_args)[budget]
        result = workers.finish(background[budget])[0] if budget in background else workers.run(*args)[0]
        rows.append(_slow_row(what, budget, result["deliveries"], alongside=budget in background))
    return rows, (on[-1].get("profile") or {})


def _slow_row(what: str, budget: float, deliveries: list[dict[str, Any]], *, alongside: bool) -> Row:
    figures = []
    for delivery in deliveries:
        reads = [r for r in delivery["requests"] if r["what"].startswith("GET ")]
        notes = [r for r in delivery["requests"] if r["what"].startswith("POST ")]
        span = (max(r["end"] for r in reads) - min(r["start"] for r in reads)) if reads else 0.0
        note = sum(r["end"] - r["start"] for r in notes)
        figures.append((delivery["wall"], span, note, reads, notes))
    figures.sort(key=lambda figure: figure[0])
    wall, span, note, reads, notes = figures[len(figures) // 2]  # the median delivery, by wall time

    def listed(requests: list[dict[str, Any]]) -> str:
        return ", ".join(f"{r['what']} {r['outcome']} after {r['end'] - r['start']:.2f} s" for r in requests) or "none"

    spread = f" (of {len(figures)}: {figures[0][0]:.2f}-{figures[-1][0]:.2f} s)" if len(figures) > 1 else ""
    sent = {r["what"].split(" ", 1)[1] for r in reads}
    every = ("log_entries", "notes", "alerts", "related_change_events", "past_incidents")
    unsent = [name for name in every if name not in sent]
    reads_ok = span <= budget + SLOW_MARGIN
    in_time = wall < PAGERDUTY_WAIT
    return Row(
        "PagerDuty enrichment",
        what,
        f"answered 200 started after {wall:.2f} s{spread}: reads {span:.2f} s ({listed(reads)}"
        + (f"; not sent: {', '.join(unsent)}" if unsent else "")
        + "), "
        f"session note {note:.2f} s ({listed(notes)}), Devin and the rest {(wall - span - note) * 1000:.0f} ms",
        f"reads ≤ budget + {SLOW_MARGIN:g} s {'met' if reads_ok else 'MISSED'}; "
        f"answer < PagerDuty's {PAGERDUTY_WAIT:g} s {'met' if in_time else 'MISSED'}",
        f"median of {len(figures)} warm started deliveries (the container warmed with PagerDuty answering at once); "
        "PagerDuty on (key + from-email) against local.pagerduty_standin on 127.0.0.1 with `latency`, real sockets "
        "so that the client's timeouts fire; AWS and Devin in-process at 0 ms; wall time of lambda_handler, nothing "
        "subtracted" + ("; --quick: run alongside the off/on pair above" if alongside else ""),
    )


def measure_package(build: bool, scratch: Path) -> list[Row]:
    if build:
        built = package.build_function()
        function = package.measure(built)
        sources = package.measure(built, bytecode=False)
        function_how = "scripts/build (sam build, python3.13, arm64), zipped like sam package (deflate)"
        layer = package.layer_size()
        layer_how = "pip install --target (arm64, cp313, no deps) of " + ", ".join(package.layer_requirements())
    else:
        function = package.measure(scratch / "task")
        sources = package.measure(scratch / "task", bytecode=False)
        function_how = "--quick: handler/ plus its requirements copied from the venv, as scripts/build lays them out"
        layer = package.measure(scratch / "layer")
        layer_how = "--quick: the venv's copies of Powertools, the X-Ray SDK and their dependencies"
    return [
        Row(
            "Package",
            "function (boto3 from the runtime)",
            f"{_mb(function.zipped)} zipped, {_mb(function.unzipped)} unzipped, {function.files} files "
            f"(without the bytecode scripts/build adds: {_mb(sources.zipped)} zipped)",
            f"< 2 MB zipped {'met' if function.zipped < PACKAGE_ZIPPED_TARGET else 'MISSED'}",
            function_how,
        ),
        Row(
            "Package",
            "Powertools layer (also loaded)",
            f"{_mb(layer.zipped)} zipped, {_mb(layer.unzipped)} unzipped, {layer.files} files",
            "",
            layer_how,
        ),
    ]


def measure_throughput(seconds: float) -> list[Row]:
    labels = [(latency, senders) for latency in throughput.LATENCIES for senders in throughput.SENDERS]
    if seconds <= 0:
        return [
            Row("Throughput", _load_label(latency, senders), "skipped (--quick)", "", "run without --quick")
            for latency, senders in labels
        ]
    results = throughput.measure(seconds)
    if results is None:
        return [
            Row(
                "Throughput",
                _load_label(latency, senders),
                "PENDING: local/stack.py (LocalStack) is not in the tree yet",
                "",
                "bench/throughput.py is written against LocalStack(host, port, devin, workers, devin_latency)",
            )
            for latency, senders in labels
        ]
    mix = ", ".join(f"{int(share * 100)}% {kind}" for kind, share in throughput.MIX)
    rows = []
    for result in results:
        by_kind = ", ".join(
            f"{kind} {_ms(result.percentile(0.5, kind))}" for kind, _ in throughput.MIX if result.latencies.get(kind)
        )
        rows.append(
            Row(
                "Throughput",
                _load_label(result.devin_latency, result.senders),
                f"{result.per_second:.0f} req/s, p50 {_ms(result.percentile(0.5))}, p99 {_ms(result.percentile(0.99))}"
                f" (p50 {by_kind})" + (f", {result.errors} wrong answers" if result.errors else ""),
                "",
                f"local/stack.py: {throughput.WORKERS} worker processes with the real handler, moto on loopback for "
                f"SSM and DynamoDB, the Devin stand-in over HTTP; {result.requests} requests in {result.seconds:.0f} s "
                f"after a warm-up, mix {mix}; measures the handler's path, not Lambda's scaling",
            )
        )
    return rows


def _load_label(latency: float, senders: int) -> str:
    return f"{senders} senders, Devin {latency * 1000:.0f} ms"


def render(rows: list[Row]) -> str:
    lines = ["| section | what | figure | target | how it was measured |", "|---|---|---|---|---|"]
    lines += [f"| {row.section} | {row.what} | {row.figure} | {row.target} | {row.how} |" for row in rows]
    return "\n".join(lines)


def render_profile(profile: dict[str, Any], path: str, top: int = 15) -> str:
    total = profile["total"]
    lines = [
        f"Profile of the {path} path: cProfile over {profile['n']} warm invocations, per invocation (profiling "
        f"inflates every figure: {_ms(total)} in all here). By component (standard library and C time charged "
        "to the caller):",
        "",
        "| component | own time | share |",
        "|---|---|---|",
    ]
    for entry in profile["components"]:
        lines.append(f"| {entry['component']} | {_ms(entry['time'])} | {entry['time'] / total:.0%} |")
    lines += ["", "Top functions by own time:", "", "| function | calls | own time | cumulative |", "|---|---|---|---|"]
    for entry in profile["top"][:top]:
        lines.append(
            f"| `{entry['function']}` | {entry['calls']:g} | {_ms(entry['tottime'])} | {_ms(entry['cumtime'])} |"
        )
    return "\n".join(lines)


def settings(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations, no build, no load test")
    parser.add_argument("--iterations", type=int, help="warm invocations per path")
    parser.add_argument(
        "--handler",
        type=Path,
        default=HANDLER,
        help="the function's folder to measure (default handler/; e.g. an older one from `git archive`)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable in the function's environment, e.g. POWERTOOLS_TRACE_DISABLED=true (repeatable)",
    )
    parser.add_argument("--warm-rounds", type=int, help="fresh interpreters for the warm figures")
    parser.add_argument("--init-runs", type=int, help="fresh interpreters per init target")
    parser.add_argument("--first-runs", type=int, help="fresh interpreters per first-request path")
    parser.add_argument("--throughput-seconds", type=float, help="seconds of load per configuration (0: skip)")
    parser.add_argument(
        "--pagerduty-iterations", type=int, help="warm started deliveries per interpreter, PagerDuty off and on"
    )
    parser.add_argument("--pagerduty-rounds", type=int, help="pairs of fresh interpreters, PagerDuty off and on")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all)",
    )
    options = parser.parse_args(argv)
    only = {name.strip() for name in options.only.split(",") if name.strip()}
    if unknown := only - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    quick = options.quick
    return Settings(
        quick=quick,
        # --quick: three rounds of the six init targets (the pieces of the import are measured in full runs only).
        init_runs=options.init_runs or (3 if quick else 15),
        first_runs=options.first_runs or (1 if quick else 7),
        warm_iterations=options.iterations or (300 if quick else 2000),
        warm_rounds=options.warm_rounds or (1 if quick else 3),
        profile_path="started",
        build=not quick,
        throughput_seconds=(
            options.throughput_seconds if options.throughput_seconds is not None else (0.0 if quick else 10.0)
        ),
        pagerduty_iterations=options.pagerduty_iterations or (100 if quick else 1000),
        pagerduty_rounds=options.pagerduty_rounds or (1 if quick else 5),
        pagerduty_profile=not quick,
        # --quick: only the 1 s budget, once (about 4 s); the 3 s one takes 5 s a delivery.
        slow_budgets=(1.0,) if quick else (3.0, 1.0),
        slow_runs=1 if quick else 3,
        sections=frozenset(only),
        handler=options.handler.resolve(),
        environ=dict(item.split("=", 1) for item in options.env),
    )


def main(argv: list[str] | None = None) -> int:
    chosen = settings(argv)
    print(
        f"bench: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{'--quick' if chosen.quick else 'full run'}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        scratch = Path(folder)
        workers = Workers(scratch, chosen.handler, chosen.environ)
        rows: list[Row] = []
        profile: dict[str, Any] = {}
        pagerduty_profile: dict[str, Any] = {}
        init_steps: dict[str, Any] = {}
        if "init" in chosen.sections:
            init_rows, init_steps = measure_init(workers, chosen.init_runs, steps=not chosen.quick)
            rows += init_rows
        if "first" in chosen.sections:
            rows += measure_first(workers, chosen.first_runs, warm=50 if chosen.quick else 200)
        if "warm" in chosen.sections:
            warm_rows, profile = measure_warm(workers, chosen.warm_iterations, chosen.warm_rounds, chosen.profile_path)
            rows += warm_rows
        if "pagerduty" in chosen.sections:
            pagerduty_rows, pagerduty_profile = measure_pagerduty(workers, chosen)
            rows += pagerduty_rows
        if "package" in chosen.sections:
            rows += measure_package(chosen.build, scratch)
    if "throughput" in chosen.sections:
        rows += measure_throughput(chosen.throughput_seconds)
    if "follow-up" in chosen.sections:
        rows += [Row("Follow-up", *row) for row in follow_up.rows(chosen.quick)]
    if "prompt" in chosen.sections:
        rows += [Row("Prompt", *row) for row in prompt.rows()]
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}; command: python -m bench.run {' '.join(sys.argv[1:] if argv is None else argv)}"
        "\n"
    )
    print(render(rows))
    if init_steps:
        print()
        print(render_steps(init_steps))
    if profile:
        print()
        print(render_profile(profile, chosen.profile_path or ""))
    if pagerduty_profile:
        print()
        print(render_profile(pagerduty_profile, PAGERDUTY_ON))
    return 0


if __name__ == "__main__":
    sys.exit(main())
