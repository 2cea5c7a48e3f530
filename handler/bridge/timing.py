"""How long one invocation spent in each dependency (Parameter Store, DynamoDB, Devin, PagerDuty), for its summary
log line and latency metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SSM = "ssm"
DYNAMODB = "dynamodb"
DEVIN = "devin"
PAGERDUTY = "pagerduty"
DEPENDENCIES = (SSM, DYNAMODB, DEVIN, PAGERDUTY)


class Timings:
    """Milliseconds per dependency since the last `reset()` (the start of an invocation)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ms = dict.fromkeys(DEPENDENCIES, 0.0)

    def reset(self) -> None:
        with self._lock:
            self._ms = dict.fromkeys(DEPENDENCIES, 0.0)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._ms[name] = self._ms.get(name, 0.0) + seconds * 1000

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        began = self._clock()
        try:
            yield
        finally:
            self.add(name, self._clock() - began)

    def milliseconds(self) -> dict[str, float]:
        with self._lock:
            return {name: round(value, 1) for name, value in self._ms.items()}

    def watch_boto_client(self, client: Any, name: str) -> Any:
        """Count every API call of a boto3 client, retries and failures included, under `name`."""

        def before(context: dict[str, Any], **_: Any) -> None:
            context["bridge_timing_started"] = self._clock()

        def after(context: dict[str, Any], **_: Any) -> None:
            began = context.pop("bridge_timing_started", None)
            if began is not None:
                self.add(name, self._clock() - began)

        client.meta.events.register("before-call", before)
        client.meta.events.register("after-call", after)
        client.meta.events.register("after-call-error", after)
        return client


class TimedHttp:
    """A requests.Session as the API clients use it (`request`), timing each call under `name`."""

    def __init__(self, http: Any, timings: Timings, name: str) -> None:
        self._http = http
        self._timings = timings
        self._name = name

    def request(self, *args: Any, **kwargs: Any) -> Any:
        with self._timings.measure(self._name):
            return self._http.request(*args, **kwargs)
