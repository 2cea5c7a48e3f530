"""Deliveries of one incident racing each other still start exactly one session."""

from __future__ import annotations

import json
import time

import requests
from bridge.config import Settings
from bridge.devin.client import DevinClient
from bridge.devin.prompt import build_session_request
from bridge.ledger import Ledger
from bridge.postmortem import Outcome, start_postmortem
from bridge.webhook.event import parse_event
from bridge.webhook.policy import select

from local.devin_standin import DevinStandIn
from tests.conftest import DEVIN_KEY, DEVIN_ORG, TABLE, aws_client, ledger_items
from tests.support.events import incident
from tests.support.race import OneCallAtATime, race


def test_racing_deliveries_of_one_incident_start_exactly_one_session(aws) -> None:
    # GIVEN a Devin that takes 300 ms to answer, so every delivery overlaps the first one's call
    with DevinStandIn(api_key=DEVIN_KEY, org_id=DEVIN_ORG, latency=0.3) as devin:
        event = parse_event(json.dumps(incident("QRACE1")).encode())
        settings = Settings.from_env({"TABLE_NAME": TABLE})
        chosen = select(event, settings).incident
        ledger = Ledger(OneCallAtATime(aws_client("dynamodb")), TABLE, retention_days=90)

        def deliver() -> Outcome:
            return start_postmortem(
                chosen,
                event,
                lambda: build_session_request(chosen, event),
                ledger=ledger,
                devin=DevinClient(devin.base_url, DEVIN_KEY, DEVIN_ORG, requests.Session()),
                deadline=time.monotonic() + 20,
                lease_seconds=30,
            )

        # WHEN twelve deliveries arrive at once
        outcomes = race(12, deliver)

        # THEN one started the session; the others were told to come back, or (had the scheduler held one
        # back until the first had finished) were answered with the recorded session
        assert outcomes.count("started") == 1
        assert set(outcomes) <= {"started", "in flight", "duplicate"}
        assert len(outcomes) == 12
        assert len(devin.sessions) == 1
        assert [item["status"] for item in ledger_items()] == ["started"]
