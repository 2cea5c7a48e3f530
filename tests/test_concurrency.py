"""Deliveries of one incident racing each other still start exactly one session."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests
from bridge.config import Settings
from bridge.devin import DevinClient
from bridge.errors import IncidentInFlight
from bridge.ledger import Ledger
from bridge.pagerduty import parse_event
from bridge.policy import select
from bridge.postmortem import start_postmortem
from bridge.prompt import build_session_request

from local.devin_standin import DevinStandIn
from tests.conftest import DEVIN_KEY, DEVIN_ORG, TABLE, aws_client, ledger_items
from tests.support.events import incident


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


def test_racing_deliveries_of_one_incident_start_exactly_one_session(aws) -> None:
    # GIVEN a Devin that takes 300 ms to answer, so every delivery overlaps the first one's call
    with DevinStandIn(api_key=DEVIN_KEY, org_id=DEVIN_ORG, latency=0.3) as devin:
        event = parse_event(json.dumps(incident("QRACE1")).encode())
        settings = Settings.from_env({"TABLE_NAME": TABLE})
        chosen = select(event, settings).incident
        ledger = Ledger(OneCallAtATime(aws_client("dynamodb")), TABLE, retention_days=90)
        outcomes: list[str] = []
        start = threading.Barrier(12)

        def deliver() -> None:
            devin_client = DevinClient(devin.base_url, DEVIN_KEY, DEVIN_ORG, requests.Session())
            start.wait()
            try:
                outcome = start_postmortem(
                    chosen,
                    event,
                    lambda: build_session_request(chosen, event),
                    ledger=ledger,
                    devin=devin_client,
                    deadline=time.monotonic() + 20,
                    lease_seconds=30,
                )
                outcomes.append(outcome.status)
            except IncidentInFlight:
                outcomes.append("in flight")

        # WHEN twelve deliveries arrive at once
        threads = [threading.Thread(target=deliver) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # THEN one started the session; the others were told to come back, or (had the scheduler held one
        # back until the first had finished) were answered with the recorded session
        assert outcomes.count("started") == 1
        assert set(outcomes) <= {"started", "in flight", "duplicate"}
        assert len(outcomes) == 12
        assert len(devin.sessions) == 1
        assert [item["status"] for item in ledger_items()] == ["started"]
