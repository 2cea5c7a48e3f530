"""One measurement in a fresh, Lambda-like interpreter; bench.run starts it and reads the JSON it writes.

    python -S -B -m bench.worker MODE OUT.json [ARGS...]     (cwd: the repository root)

Modes:
    init TARGET          time importing TARGET: "app" (handler/app.py as scripts/build ships it; traced or not as
                         the environment's TRACING says), "app-source" (as plain `sam build` ships it, without
                         bytecode), "boto3", "floor" (boto3 plus the Powertools parts the function uses: Logger,
                         Metrics, Tracer, parameters) or "floor-untraced" (the same without the Tracer, as the
                         function imports them with tracing off)
    steps TRACER         import what handler/app.py imports one piece at a time in one interpreter, each piece
                         timed on top of the previous ones (STEPS): boto3, then Powertools part by part, then the
                         function's modules, with ("tracer") or without ("no-tracer") the Tracer's step
    first PATH WARM      init, then the first invocation (clients created, secrets fetched) of PATH, then
                         WARM more of the same path for comparison
    warm N SAMPLING [PROFILE]
                         N warm invocations of every path, X-Ray "sampled" or "unsampled"; with PROFILE
                         (a path name), also a cProfile of that path
    enrich N PAGERDUTY [PROFILE]
                         N warm started deliveries, with PagerDuty "on" (a key and a From address in the
                         parameters: the record is read and the session note posted, answered in-process at
                         0 ms) or "off" (no key: no PagerDuty call); with PROFILE ("profile"), also a cProfile
    slow BUDGET LATENCY RUNS
                         with PagerDuty on and PAGERDUTY_READ_SECONDS=BUDGET, against a real PagerDuty stand-in
                         on 127.0.0.1 (local.pagerduty_standin), which answers every request after LATENCY
                         seconds: RUNS warm started deliveries, each one's wall time and PagerDuty requests

Until the target is imported this module must import nothing but the standard library's basics, so that
an init measurement holds only what Lambda would run.
"""

from __future__ import annotations

import json
import os
import sys
import time

# sys.path for each import target: what Lambda would put there (see bench.lambda_env).
_PATHS = json.loads(os.environ.get("BENCH_LAMBDA_PATH", "{}"))
_TASK, _SOURCE, _LAYER, _RUNTIME = (_PATHS.get(name, "") for name in ("task", "task_source", "layer", "runtime"))

_FLOOR = """
import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parameters import SSMProvider
Logger(); Metrics(namespace="PagerDutyPostmortem"); Tracer(patch_modules=("botocore",))
"""
# With tracing off the function makes no Tracer; `aws_lambda_powertools` still imports the Tracer's module, which
# loads the X-Ray SDK only when a Tracer is made.
_FLOOR_UNTRACED = """
import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.parameters import SSMProvider
Logger(); Metrics(namespace="PagerDutyPostmortem")
"""

# What importing handler/app.py does, cut into pieces imported one after the other in one interpreter with the
# function's sys.path: each piece's time is what it adds to those before it, so a module two pieces share is
# charged to the first (typing_extensions gets its own piece, before the Powertools parts that pull it in). A
# package's __init__ cannot be skipped by a program that imports one of its modules, so `_bare` lets a package's
# modules be imported before its __init__ runs (`_complete`), to tell them apart.
# (name, code, with the Tracer only)
STEPS = (
    ("boto3", "import boto3", False),
    ("typing_extensions (pulled in by Powertools' Logger and Metrics)", "import typing_extensions", False),
    (
        "Powertools Logger (aws_lambda_powertools.logging, Logger())",
        "_bare('aws_lambda_powertools')\nfrom aws_lambda_powertools.logging import Logger\nLogger()",
        False,
    ),
    (
        "Powertools Metrics (aws_lambda_powertools.metrics, Metrics())",
        "from aws_lambda_powertools.metrics import Metrics\nMetrics(namespace='PagerDutyPostmortem')",
        False,
    ),
    (
        "the rest of aws_lambda_powertools/__init__ (Tracer's module without the SDK, user agent)",
        "_complete('aws_lambda_powertools')",
        False,
    ),
    (
        "Powertools parameters (SSMProvider; the package imports every provider)",
        "from aws_lambda_powertools.utilities.parameters import SSMProvider",
        False,
    ),
    (
        "Powertools Tracer (X-Ray SDK, botocore patched)",
        "from aws_lambda_powertools import Tracer\nTracer(patch_modules=('botocore',))",
        True,
    ),
    (
        "app: Powertools' correlation_paths and utilities.typing (LambdaContext)",
        "import aws_lambda_powertools.logging.correlation_paths, aws_lambda_powertools.utilities.typing",
        False,
    ),
    ("app: bridge.errors, bridge.webhook.event (re, unicodedata)", "import bridge.errors, bridge.webhook.event", False),
    ("app: bridge.devin.routing (difflib, fnmatch, pathlib)", "import bridge.devin.routing", False),
    ("app: bridge.credentials, bridge.parameters", "import bridge.credentials, bridge.parameters", False),
    (
        "app: bridge.config, bridge.timing, bridge.dependencies (botocore.config)",
        "import bridge.config, bridge.timing, bridge.dependencies",
        False,
    ),
    (
        "app: bridge.webhook.policy, bridge.webhook.signature (hmac), bridge.tracing",
        "import bridge.webhook.policy, bridge.webhook.signature, bridge.tracing",
        False,
    ),
    ("app: app.py itself (Logger, Metrics, its request, route and exception handlers)", "import app", False),
)


def _bare(name: str) -> None:
    """Put package `name` in sys.modules without running its __init__, so that its modules import alone."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None:
        raise SystemExit(f"no package {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if "." in name:
        parent, child = name.rsplit(".", 1)
        setattr(sys.modules[parent], child, module)


def _complete(name: str) -> None:
    """Run the __init__ of a package `_bare` put in place."""
    module = sys.modules[name]
    module.__spec__.loader.exec_module(module)  # type: ignore[union-attr]


def _steps(tracer: bool) -> dict:
    import importlib.util  # noqa: F401 - before the clock: _bare needs it

    sys.path[:0] = [_TASK, _LAYER, _RUNTIME]
    namespace = {"_bare": _bare, "_complete": _complete}
    times = []
    for name, code, tracer_only in STEPS:
        if tracer_only and not tracer:
            continue
        started = time.perf_counter(), time.process_time()
        exec(code, namespace)  # noqa: S102 - fixed benchmark code above
        times.append(
            {"step": name, "seconds": time.perf_counter() - started[0], "cpu": time.process_time() - started[1]}
        )
    return {"steps": times, "xray": "aws_xray_sdk" in sys.modules}


def _time_import(target: str) -> tuple[float, float]:
    """(wall clock, CPU time) of importing `target`."""
    if target in ("app", "app-source"):
        sys.path[:0] = [_TASK if target == "app" else _SOURCE, _LAYER, _RUNTIME]
        # The Handler's module, as Lambda's runtime finds it (app.lambda_handler unless the sandbox says otherwise).
        module = os.environ.get("_HANDLER", "app.lambda_handler").rpartition(".")[0]
        started = time.perf_counter(), time.process_time()
        __import__(module)
    elif target == "boto3":
        # A function that only imports boto3 sees the runtime's copy and nothing of ours.
        sys.path[:0] = [_RUNTIME]
        started = time.perf_counter(), time.process_time()
        import boto3  # noqa: F401
    elif target in ("floor", "floor-untraced"):
        sys.path[:0] = [_LAYER, _RUNTIME]
        started = time.perf_counter(), time.process_time()
        exec(_FLOOR if target == "floor" else _FLOOR_UNTRACED, {})  # noqa: S102 - fixed benchmark code above
    else:
        raise SystemExit(f"unknown init target {target}")
    return time.perf_counter() - started[0], time.process_time() - started[1]


class Context:
    """The parts of LambdaContext that Powertools and the handler read."""

    function_name = "pagerduty-postmortem-PagerDutyPostmortemFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pagerduty-postmortem"
    log_group_name = "/aws/lambda/pagerduty-postmortem/PagerDutyPostmortemFunction"
    log_stream_name = "2026/11/27/[$LATEST]bench"

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


class Invoker:
    """Calls lambda_handler the way the Lambda runtime does, and times the handler's own share."""

    def __init__(self, sampled: bool = True, *, pagerduty: bool = False) -> None:
        import uuid

        import app

        from bench import standins

        self._uuid = uuid
        self._sampled = "1" if sampled else "0"
        self.app = app
        self.standins = standins.install(pagerduty=pagerduty)
        self.clock = self.standins.clock

    def __call__(self, event: dict, expected: tuple[int, str | None]) -> tuple[float, float]:
        """(wall clock, CPU time of this thread) of one invocation, the stand-ins' share taken off."""
        # Lambda sets a new trace header for every invocation; the X-Ray SDK reads it from here.
        trace = self._uuid.uuid4().hex
        os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{trace[:8]}-{trace[8:]};Parent={trace[:16]};Sampled={self._sampled}"
        context = Context(str(self._uuid.uuid4()))
        spent, spent_cpu = self.clock.spent, self.clock.spent_cpu
        started, started_cpu = time.perf_counter(), time.thread_time()
        result = self.app.lambda_handler(event, context)
        elapsed = time.perf_counter() - started - (self.clock.spent - spent)
        elapsed_cpu = time.thread_time() - started_cpu - (self.clock.spent_cpu - spent_cpu)
        status, body_status = expected
        if result["statusCode"] != status or (
            body_status is not None and json.loads(result["body"]).get("status") != body_status
        ):
            raise SystemExit(f"expected {expected}, got {result['statusCode']} {result.get('body')}")
        return elapsed, elapsed_cpu

    def calls(self) -> dict[str, int]:
        return self.standins.calls()


def _summary(samples: list[tuple[float, float]]) -> dict:
    """Percentiles of the wall-clock times, with those of the CPU times under "cpu"."""

    def percentiles(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "n": len(ordered),
            "p50": ordered[len(ordered) // 2],
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "mean": sum(ordered) / len(ordered),
        }

    return {**percentiles([wall for wall, _ in samples]), "cpu": percentiles([cpu for _, cpu in samples])}


def _first(path: str, warm: int) -> dict:
    # The first request's figure holds what the import left for later (lazy imports, clients, secrets).
    init, init_cpu = _time_import("app")
    from bench import deliveries

    invoke = Invoker()
    make = deliveries.makers(duplicate_of=deliveries.new_incident_id())
    expected = deliveries.EXPECTED[path]
    first, first_cpu = invoke(make[path](), expected)
    calls_first = invoke.calls()
    samples = [invoke(make[path](), expected) for _ in range(warm)]
    import resource

    # Peak resident memory of this container after init and 1 + `warm` deliveries: what Lambda reports as
    # Max Memory Used.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "init": init,
        "init_cpu": init_cpu,
        "first": first,
        "first_cpu": first_cpu,
        "first_calls": calls_first,
        "warm": _summary(samples),
        "max_rss_bytes": rss,
    }


def _warm(n: int, sampled: bool, profile: str | None) -> dict:
    sys.path[:0] = [_TASK, _LAYER, _RUNTIME]
    from bench import deliveries

    invoke = Invoker(sampled)
    duplicate_of = deliveries.new_incident_id()
    make = deliveries.makers(duplicate_of)
    # Warm up: clients, secrets, the duplicate's ledger item, lazily imported modules, caches.
    invoke(deliveries.for_incident(duplicate_of), deliveries.EXPECTED["started"])
    for path in deliveries.PATHS:
        for _ in range(20):
            invoke(make[path](), deliveries.EXPECTED[path])

    results = {}
    for path in deliveries.PATHS:
        before = invoke.calls()
        # Each delivery is made just before its invocation (outside the timing), as a new dict.
        samples = [invoke(make[path](), deliveries.EXPECTED[path]) for _ in range(n)]
        after = invoke.calls()
        calls = {name: (after.get(name, 0) - before.get(name, 0)) / n for name in after}
        results[path] = {**_summary(samples), "calls": {name: count for name, count in calls.items() if count}}

    if profile:
        results["profile"] = _profile(invoke, make[profile], deliveries.EXPECTED[profile], n)
    return results


def _enrich(n: int, pagerduty: bool, profile: bool) -> dict:
    """The warm started path alone, with or without PagerDuty's record and note (bench.run pairs the two)."""
    sys.path[:0] = [_TASK, _LAYER, _RUNTIME]
    from bench import deliveries

    invoke = Invoker(pagerduty=pagerduty)
    make = deliveries.makers(deliveries.new_incident_id())["started"]
    expected = deliveries.EXPECTED["started"]
    # Warm up: clients, secrets, requests and its X-Ray patch, the PagerDuty client's imports, caches.
    for _ in range(20):
        invoke(make(), expected)
    before = invoke.calls()
    samples = [invoke(make(), expected) for _ in range(n)]
    after = invoke.calls()
    calls = {name: (after.get(name, 0) - before.get(name, 0)) / n for name in after}
    result = {**_summary(samples), "calls": {name: count for name, count in calls.items() if count}}
    if profile:
        result["profile"] = _profile(invoke, make, expected, n)
    return result


def _slow(budget: str, latency: float, runs: int) -> dict:
    """Started deliveries while PagerDuty takes `latency` seconds to answer anything: what the read budget (and the
    note's own timeout) make of it. Real sockets, so that the timeouts the client sets are the ones that fire."""
    from bench import standins
    from local.pagerduty_standin import PagerDutyStandIn

    # Set before the handler is imported, so that its settings see them whenever it reads them.
    standin = PagerDutyStandIn(api_key=standins.PAGERDUTY_KEY, serve_samples=True).start()
    os.environ["PAGERDUTY_API_BASE_URL"] = standin.base_url
    os.environ["PAGERDUTY_READ_SECONDS"] = budget
    sys.path[:0] = [_TASK, _LAYER, _RUNTIME]
    from urllib3.connectionpool import HTTPConnectionPool

    from bench import deliveries

    invoke = Invoker(pagerduty=True)
    expected = deliveries.EXPECTED["started"]
    requests: list[dict] = []
    original = HTTPConnectionPool.urlopen

    def timed(pool, method, url, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - urlopen's own signature
        if pool.port != standin.port:
            return original(pool, method, url, *args, **kwargs)
        started = time.perf_counter()
        outcome = "answered"
        try:
            response = original(pool, method, url, *args, **kwargs)
            outcome = f"HTTP {response.status}"
            return response
        except Exception as error:
            outcome = type(error).__name__
            raise
        finally:
            endpoint = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            requests.append(
                {"what": f"{method} {endpoint}", "start": started, "end": time.perf_counter(), "outcome": outcome}
            )

    HTTPConnectionPool.urlopen = timed  # type: ignore[method-assign]
    try:
        # Warm up with PagerDuty answering at once: clients, secrets, requests, a kept-alive connection.
        for _ in range(2):
            invoke(deliveries.for_incident(deliveries.new_incident_id()), expected)
        standin.latency = latency
        deliveries_made = []
        for _ in range(runs):
            requests.clear()
            event = deliveries.for_incident(deliveries.new_incident_id())
            started = time.perf_counter()
            invoke(event, expected)
            wall = time.perf_counter() - started
            deliveries_made.append({"wall": wall, "requests": list(requests)})
    finally:
        standin.latency = 0
        standin.stop()
    return {"budget": float(budget), "latency": latency, "deliveries": deliveries_made}


# Where each profiled function's time goes: by the file it lives in; the standard library's and C builtins'
# time goes to whoever called them (see _attribute).
COMPONENTS = (
    ("/bench/", "benchmark stand-ins (subtracted from the timings)"),
    ("aws_xray_sdk/", "X-Ray SDK (Tracer's patches and subsegments)"),
    ("wrapt/", "X-Ray SDK (Tracer's patches and subsegments)"),
    ("aws_lambda_powertools/", "Powertools (Logger, Metrics, Tracer)"),
    ("jmespath/", "Powertools (Logger, Metrics, Tracer)"),
    ("botocore/", "AWS SDK (boto3/botocore: validate, serialise, sign, parse)"),
    ("boto3/", "AWS SDK (boto3/botocore: validate, serialise, sign, parse)"),
    ("dateutil/", "AWS SDK (boto3/botocore: validate, serialise, sign, parse)"),
    ("local/pagerduty_standin.py", "benchmark stand-ins (subtracted from the timings)"),
    ("requests/", "requests + urllib3 (the Devin and PagerDuty calls)"),
    ("urllib3/", "requests + urllib3 (the Devin and PagerDuty calls)"),
    ("idna/", "requests + urllib3 (the Devin and PagerDuty calls)"),
    ("/task/app.py", "the function's own code (app.py, bridge/)"),
    ("/task/bridge/", "the function's own code (app.py, bridge/)"),
)


def _component(filename: str) -> str | None:
    for marker, name in COMPONENTS:
        if marker in filename:
            return name
    return None


def _attribute(stats: dict) -> dict[str, float]:
    """Own time per component; time in the standard library or C builtins is charged to their callers."""
    owned: dict[str, float] = {}

    def charge(function: tuple, amount: float, depth: int) -> None:
        component = _component(function[0])
        callers = stats[function][4] if function in stats else {}
        if component is None and depth < 12 and callers:
            # A function's time per caller: its own time (first step), then the callee's inclusive time.
            weights = {caller: value[2] if depth == 0 else value[3] for caller, value in callers.items()}
            total = sum(weights.values())
            if total > 0:
                for caller, weight in weights.items():
                    charge(caller, amount * weight / total, depth + 1)
                return
        name = component or "Python (not attributable)"
        owned[name] = owned.get(name, 0.0) + amount

    for function, (_, _, tottime, _, _) in stats.items():
        charge(function, tottime, 0)
    return owned


def _profile(invoke: Invoker, make, expected: tuple[int, str | None], n: int) -> dict:  # noqa: ANN001
    import cProfile
    import pstats

    events = [make() for _ in range(n)]
    profiler = cProfile.Profile()
    profiler.enable()
    for event in events:
        invoke(event, expected)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.items():
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({function})",
                "calls": calls / n,
                "tottime": tottime / n,
                "cumtime": cumtime / n,
            }
        )
    rows.sort(key=lambda row: row["tottime"], reverse=True)
    components = sorted(_attribute(stats).items(), key=lambda item: item[1], reverse=True)
    return {
        "n": n,
        "total": sum(row["tottime"] for row in rows),
        "top": rows[:25],
        "components": [{"component": name, "time": seconds / n} for name, seconds in components],
    }


def _short(filename: str) -> str:
    for marker in ("/task/", "/layer/", "/runtime/", "/lib/python3."):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." else tail
    return filename


def main(argv: list[str]) -> None:
    mode, out = argv[0], argv[1]
    if mode == "init":
        wall, cpu = _time_import(argv[2])
        # Whether the X-Ray SDK was loaded: bench.run checks that the untraced targets did not.
        result: dict = {"seconds": wall, "cpu": cpu, "xray": "aws_xray_sdk" in sys.modules}
    elif mode == "steps":
        result = _steps(argv[2] == "tracer")
    elif mode == "first":
        result = _first(argv[2], int(argv[3]))
    elif mode == "warm":
        result = _warm(int(argv[2]), argv[3] == "sampled", argv[4] if len(argv) > 4 else None)
    elif mode == "enrich":
        result = _enrich(int(argv[2]), argv[3] == "on", len(argv) > 4 and argv[4] == "profile")
    elif mode == "slow":
        result = _slow(argv[2], float(argv[3]), int(argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    with open(out, "w", encoding="utf-8") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main(sys.argv[1:])
