"""What both functions (the webhook and the scheduled follow-up) are made of: their settings, Parameter Store, the
ledger and an HTTP connection pool, each made once per warm container and only when first needed."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.config import Config

from .config import Settings
from .parameters import ParameterStore
from .timing import DEVIN, DYNAMODB, PAGERDUTY, SSM, TimedHttp, Timings

if TYPE_CHECKING:
    import requests

    from .ledger import Ledger

AWS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 3})

# Held while a lazily made dependency is made: boto3's default session is not thread-safe.
_making = threading.Lock()


@dataclass(frozen=True)
class Dependencies:
    """What every delivery needs is made with it; what only a qualifying incident needs, on the first one.

    Most deliveries are ignored or refused: a container that only ever sees those never loads DynamoDB's
    service model (about 25 ms of its first request) nor requests (about 20 ms of init; docs/performance.md).
    """

    settings: Settings
    parameters: ParameterStore
    # Milliseconds spent in each dependency during the current invocation (reset by the entry point).
    timings: Timings
    # Called once when requests is first loaded, so that X-Ray can patch it (the entry point's Tracer).
    on_requests_loaded: Callable[[], None] = lambda: None

    @functools.cached_property
    def ledger(self) -> Ledger:
        from .ledger import Ledger  # only a delivery that reaches the ledger loads it (and DynamoDB's model)

        with _making:
            client = boto3.client("dynamodb", config=AWS_CONFIG)
        self.timings.watch_boto_client(client, DYNAMODB)
        return Ledger(client, self.settings.table_name, self.settings.ledger_retention_days)

    @functools.cached_property
    def http(self) -> requests.Session:
        """The connection pool for Devin and PagerDuty."""
        with _making:
            import requests

            self.on_requests_loaded()
            return requests.Session()

    @functools.cached_property
    def devin_http(self) -> TimedHttp:
        return TimedHttp(self.http, self.timings, DEVIN)

    @functools.cached_property
    def pagerduty_http(self) -> TimedHttp:
        return TimedHttp(self.http, self.timings, PAGERDUTY)


def make_dependencies(timings: Timings, on_requests_loaded: Callable[[], None] = lambda: None) -> Dependencies:
    """Built on the first request, not at import. A failure raises (and is not cached by the caller): a missing
    setting answers 500 and the next delivery tries again."""
    settings = Settings.from_env()
    with _making:
        ssm = boto3.client("ssm", config=AWS_CONFIG)
    timings.watch_boto_client(ssm, SSM)
    return Dependencies(
        settings=settings,
        parameters=ParameterStore(settings.ssm_prefix, SSMProvider(boto3_client=ssm), max_age=settings.secrets_max_age),
        timings=timings,
        on_requests_loaded=on_requests_loaded,
    )
