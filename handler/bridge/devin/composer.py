"""Writes what Devin receives for a delivery, at the moment it is about to be sent: PagerDuty's record is read then
(and only then, when the deployment has a PagerDuty key), the routing rule applied, and the text built (prompt.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..pagerduty.client import PagerDutyClient, read_record
from ..pagerduty.record import IncidentRecord
from ..webhook.event import Incident, WebhookEvent, read_note
from ..webhook.policy import Delivery
from .prompt import LOOKBACK_MINUTES, SessionRequest, build_message, build_session_request, resolved_at
from .routing import Rule

RECORD_PARTS = ("log_entries", "alerts", "notes", "change_events", "past_incidents")


@dataclass(frozen=True)
class Composer:
    playbook_id: str | None
    pagerduty: PagerDutyClient | None  # None: no PagerDuty key, no PagerDuty request
    read_seconds: float
    prompt_template: str | None = None
    # The deployment's repository for postmortems (PostmortemRepo), and how far before the incident the evidence
    # window starts (TimelineLookbackMinutes).
    postmortem_repo: str | None = None
    lookback_minutes: int = LOOKBACK_MINUTES
    # Told about each part of the record that could not be read: (part, plain-words reason).
    on_unavailable: Callable[[str, str], None] = lambda part, reason: None

    def session_request(self, incident: Incident, event: WebhookEvent, rule: Rule | None = None) -> SessionRequest:
        record = self._record(incident.id, created_at=incident.created_at, resolved_at=resolved_at(event))
        return build_session_request(
            incident,
            event,
            self.playbook_id,
            record,
            rule=rule,
            template=self.prompt_template,
            postmortem_repo=self.postmortem_repo,
            lookback_minutes=self.lookback_minutes,
        )

    def message(self, delivery: Delivery, item: Mapping[str, Any]) -> str:
        """The message forwarding the delivery's event to the session of the ledger `item`."""
        event = delivery.event
        note = read_note(event) if event.event_type == "incident.annotated" else None
        forwarded = item.get("forwarded") or []
        resolved_before = any(isinstance(f, Mapping) and f.get("event_type") == "incident.reopened" for f in forwarded)
        record = None
        if event.event_type == "incident.resolved" and item.get("recorded_at"):
            # What PagerDuty recorded since the session started, for the session to finish with.
            record = self._record(delivery.incident_id, since=str(item["recorded_at"]))
        return build_message(event, delivery.incident, note=note, resolved_before=resolved_before, record=record)

    def _record(
        self,
        incident_id: str,
        *,
        since: str | None = None,
        created_at: str | None = None,
        resolved_at: str | None = None,
    ) -> IncidentRecord | None:
        if self.pagerduty is None:
            return None
        record = read_record(
            self.pagerduty, incident_id, self.read_seconds, since=since, created_at=created_at, resolved_at=resolved_at
        )
        for name in RECORD_PARTS:
            part = getattr(record, name)
            # A part PagerDuty keeps for an add-on the account lacks is not a failure: the prompt still says so.
            if part is not None and part.unavailable is not None and not part.not_in_plan:
                self.on_unavailable(name, part.unavailable)
        return record
