"""Deliveries of one incident racing each other, with DynamoDB's one-call-at-a-time guarantee given back to moto."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bridge.errors import IncidentInFlight


class OneCallAtATime:
    """DynamoDB applies each conditional write atomically; moto's in-process backend does not under threads.

    Serialising the API calls gives back the guarantee the real service makes, while the deliveries still
    overlap everywhere else (the Devin calls, the gaps between ledger calls).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            with self._lock:
                return method(**kwargs)

        return call


def race(count: int, deliver: Callable[[], Any]) -> list[str]:
    """Run `deliver` in `count` threads released at the same instant; each one's outcome status, or "in flight"
    for a delivery told to come back (429). `deliver` makes its own HTTP session: requests' is not shared."""
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(count)

    def one() -> None:
        start.wait()
        try:
            status = deliver().status
        except IncidentInFlight:
            status = "in flight"
        with lock:
            outcomes.append(status)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
