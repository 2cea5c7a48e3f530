"""Concurrent load against the local stack (local/stack.py): requests per second and latency percentiles.

This measures the handler's path behind a local HTTP front with a pool of workers, not Lambda: Lambda scales
by running more sandboxes, one request at a time each, so its throughput is bounded by concurrency limits
and the API's throttling (template.yaml), not by this figure.

The load is a mix like real traffic: mostly ignored events, some retries of incidents already started
(duplicates), some new incidents; senders keep their connection open, as PagerDuty's delivery workers do.
"""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench import deliveries

# Share of each kind in the load: new incidents, duplicates (retries / other events), ignored events.
MIX = (("started", 0.1), ("duplicate", 0.2), ("ignored", 0.7))
SENDERS = (8, 32)
LATENCIES = (0.0, 0.3)
WORKERS = 4


@dataclass(frozen=True)
class LoadResult:
    senders: int
    devin_latency: float
    requests: int
    errors: int
    seconds: float
    latencies: dict[str, list[float]]  # by kind, sorted

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, share: float, kind: str | None = None) -> float:
        values = sorted(sum(self.latencies.values(), [])) if kind is None else self.latencies.get(kind, [])
        return values[min(len(values) - 1, int(len(values) * share))] if values else 0.0


def stack_class() -> Any | None:
    """local.stack.LocalStack, or None while it is not in the tree."""
    try:
        from local.stack import LocalStack
    except ImportError:
        return None
    return LocalStack


def _webhook(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/pagerduty"):
        path += "/pagerduty"
    return parts.hostname or "127.0.0.1", parts.port or 80, path


def _body_and_headers(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    headers = {
        name: value for name, value in event["headers"].items() if name.startswith(("x-pagerduty", "content-type"))
    }
    headers["user-agent"] = "PagerDuty-Webhook/V3.0"
    return event["body"].encode(), headers


def run_load(url: str, senders: int, seconds: float, seed: int = 1) -> tuple[int, int, float, dict[str, list[float]]]:
    """`senders` threads post the mix to `url` for `seconds`; returns (requests, errors, elapsed, latencies by kind).

    A warm-up of the same load comes first (every worker's cold start, the duplicates' first deliveries),
    and is not counted.
    """
    host, port, path = _webhook(url)
    started_ids = [deliveries.new_incident_id() for _ in range(8)]
    prepared = {
        "duplicate": [_body_and_headers(deliveries.for_incident(incident)) for incident in started_ids],
        "ignored": [_body_and_headers(deliveries.low_urgency())],
    }
    _send_all(host, port, path, prepared["duplicate"])
    _load(host, port, path, prepared, senders, min(2.0, seconds), seed + 1)
    return _load(host, port, path, prepared, senders, seconds, seed)


def _load(
    host: str, port: int, path: str, prepared: dict, senders: int, seconds: float, seed: int
) -> tuple[int, int, float, dict[str, list[float]]]:
    latencies: dict[str, list[float]] = {kind: [] for kind, _ in MIX}
    errors = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    expected = {"started": "started", "duplicate": "duplicate", "ignored": "ignored"}

    def sender(index: int) -> None:
        nonlocal errors
        chooser = random.Random(seed * 1000 + index)  # noqa: S311 - load mix, not security
        connection = http.client.HTTPConnection(host, port, timeout=30)
        mine: dict[str, list[float]] = {kind: [] for kind in kinds}
        failed = 0
        while time.perf_counter() < stop:
            kind = chooser.choices(kinds, weights)[0]
            if kind == "started":
                body, headers = _body_and_headers(deliveries.for_incident(deliveries.new_incident_id()))
            else:
                body, headers = chooser.choice(prepared[kind])
            began = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                ok = response.status == 200 and json.loads(answer).get("status") == expected[kind]
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=30)
                ok = False
            mine[kind].append(time.perf_counter() - began)
            failed += not ok
        connection.close()
        with lock:
            for kind, values in mine.items():
                latencies[kind].extend(values)
            errors += failed

    threads = [threading.Thread(target=sender, args=(index,)) for index in range(senders)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return sum(len(values) for values in latencies.values()), errors, elapsed, latencies


def _send_all(host: str, port: int, path: str, requests: list[tuple[bytes, dict[str, str]]]) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        for body, headers in requests:
            connection.request("POST", path, body=body, headers=headers)
            connection.getresponse().read()
    finally:
        connection.close()


def measure(seconds: float, senders: tuple[int, ...] = SENDERS, latencies: tuple[float, ...] = LATENCIES):  # noqa: ANN201
    """LoadResults for every (latency, senders) pair, or None when the local stack does not exist yet.

    The stack's containers are processes importing the real handler, with moto (SSM, DynamoDB) and the Devin
    stand-in on loopback: each request pays real HTTP hops the in-process warm benchmark does not.
    """
    stack_type = stack_class()
    if stack_type is None:
        return None
    results = []
    for latency in latencies:
        stack = stack_type(
            host="127.0.0.1",
            port=0,
            devin="standin",
            workers=WORKERS,
            devin_latency=latency,
            function_log=subprocess.DEVNULL,  # the function's log lines would bury the table
        )
        stack.start()
        try:
            for count in senders:
                done, errors, elapsed, times = run_load(stack.url, count, seconds)
                results.append(
                    LoadResult(
                        senders=count,
                        devin_latency=latency,
                        requests=done,
                        errors=errors,
                        seconds=elapsed,
                        latencies={kind: sorted(values) for kind, values in times.items()},
                    )
                )
        finally:
            stack.stop()
    return results
