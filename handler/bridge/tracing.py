"""X-Ray tracing as a deploy-time choice (template parameter `Tracing`, passed as TRACING: Active or PassThrough;
Powertools' own POWERTOOLS_TRACE_DISABLED turns it off too).

Powertools' Tracer loads the X-Ray SDK when it is made, even when tracing is disabled: 11-16 ms of every cold start
on the benchmark machine (docs/performance.md, Init). With tracing off, no Tracer is made at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Tracer

Handler = TypeVar("Handler", bound=Callable[..., Any])


def tracing_on(env: Mapping[str, str] | None = None) -> bool:
    env = env if env is not None else os.environ
    if env.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true"):
        return False
    return env.get("TRACING", "Active").strip().lower() != "passthrough"


class Tracing:
    """The Tracer when tracing is on; otherwise the same calls do nothing and the X-Ray SDK is never imported."""

    def __init__(self, patch_modules: tuple[str, ...], env: Mapping[str, str] | None = None) -> None:
        # Only botocore at first; requests when it is first loaded (patch_requests). Patching everything Powertools
        # can (its default) also imports sqlite3 and tries a dozen database drivers at every cold start.
        self.tracer = Tracer(patch_modules=patch_modules) if tracing_on(env) else None

    def capture_lambda_handler(self, handler: Handler) -> Handler:
        return handler if self.tracer is None else self.tracer.capture_lambda_handler(handler)

    def patch_requests(self) -> None:
        if self.tracer is not None:
            self.tracer.patch(modules=("requests",))
