"""The handler answers properly in environments that set less than the template does."""

from __future__ import annotations

import importlib
import os
from types import SimpleNamespace

from tests.support.events import api_event, incident, payload


def test_without_a_metrics_namespace_the_answer_still_arrives(handler_module, invoke, monkeypatch) -> None:
    namespace = os.environ["POWERTOOLS_METRICS_NAMESPACE"]
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    importlib.reload(handler_module)
    try:
        answer = invoke(api_event(payload("pagey-ping.json")))
    finally:
        # Only the namespace is put back (monkeypatch.undo would drop the env fixture's variables too, and the module
        # reloaded without them would log "service_undefined" for every later test).
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", namespace)
        importlib.reload(handler_module)

    assert answer.status == 200


def test_a_context_without_remaining_time_still_starts_the_session(invoke, devin) -> None:
    context = SimpleNamespace(
        function_name="f",
        memory_limit_in_mb=256,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        aws_request_id="r",
    )

    answer = invoke(api_event(incident()), context)

    assert answer.body["status"] == "started"
