"""Everything the bridge keeps in SSM Parameter Store, read in one round trip and cached per warm container."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aws_lambda_powertools.utilities.parameters import SSMProvider

from .credentials import Credentials, lines
from .devin.routing import Routing, RoutingError, check_template, parse_routing
from .errors import ParameterStoreUnavailable

# Parameter names under the prefix (names, not secrets).
DEVIN_API_KEY = "devin-api-key"
DEVIN_ORG_ID = "devin-org-id"
SIGNING_SECRET = "pagerduty-signing-secret"  # noqa: S105 - a parameter name
WEBHOOK_SECRET = "webhook-secret"  # noqa: S105 - a parameter name
PAGERDUTY_API_KEY = "pagerduty-api-key"
PAGERDUTY_FROM_EMAIL = "pagerduty-from-email"
ROUTING = "routing"
PROMPT_TEMPLATE = "prompt-template"
NAMES = (
    DEVIN_API_KEY,
    DEVIN_ORG_ID,
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    PAGERDUTY_API_KEY,
    PAGERDUTY_FROM_EMAIL,
    ROUTING,
    PROMPT_TEMPLATE,
)
# The ones that must be SecureString (scripts/doctor checks the types).
SECRET_NAMES = frozenset({DEVIN_API_KEY, SIGNING_SECRET, WEBHOOK_SECRET, PAGERDUTY_API_KEY})


@dataclass(frozen=True)
class SessionSetup:
    """How new sessions are made: the routing document and the prompt template, both optional, both checked."""

    routing: Routing | None = None
    prompt_template: str | None = None


@dataclass(frozen=True)
class Parameters:
    credentials: Credentials
    # None when the routing document or the prompt template is broken and no good one was seen before: a
    # delivery about to start a session cannot know how, and is answered 503 (`setup_problem` says why).
    setup: SessionSetup | None
    setup_problem: str | None = None
    # Set when this read found a broken document and kept the last good one in use (counted by app.py).
    refresh_problem: str | None = None


def _setup(routing_text: str | None, template_text: str | None) -> SessionSetup:
    routing = parse_routing(routing_text) if routing_text and routing_text.strip() else None
    template = check_template(template_text) if template_text and template_text.strip() else None
    return SessionSetup(routing, template)


class ParameterStore:
    """Fetches every parameter with one GetParameters call (decrypted) and keeps the result for `max_age` seconds.

    Powertools caches the values it found but not the names it did not find, and the optional parameters are
    usually absent; so the resolved set, absences included, is cached here. A set that cannot serve a
    qualifying incident (missing credentials, or a broken routing document with no good one before it) is not
    cached, and Powertools' cache is dropped with it: an operator's fix takes effect on the next delivery.
    """

    def __init__(
        self,
        prefix: str,
        provider: SSMProvider,
        max_age: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = {name: f"{prefix}/{name}" for name in NAMES}
        self._provider = provider
        self._max_age = max_age
        self._clock = clock
        self._cached: Parameters | None = None
        self._fetched_at = 0.0
        self._last_good_setup: SessionSetup | None = None
        self._read_before = False

    def get(self) -> Parameters:
        if self._cached is not None and self._clock() - self._fetched_at < self._max_age:
            return self._cached
        if self._read_before and self._cached is None:
            self._provider.clear_cache()
        try:
            found = self._provider.get_parameters_by_name(
                {path: {} for path in self._paths.values()},
                decrypt=True,
                max_age=self._max_age,
                raise_on_error=False,
            )
        except Exception as error:  # throttling, network, KMS: all worth a retry by PagerDuty
            raise ParameterStoreUnavailable("could not read the bridge's parameters from SSM") from error
        self._read_before = True
        values = {name: found.get(path) for name, path in self._paths.items()}
        if not any(values.values()):
            # Powertools reports InternalServerError/InvalidKeyId as "every name failed": indistinguishable
            # from nothing configured, and both deserve a retry rather than a cached verdict.
            raise ParameterStoreUnavailable("no bridge parameter could be read from SSM")
        credentials = Credentials(
            devin_api_key=(values[DEVIN_API_KEY] or "").strip() or None,
            devin_org_id=(values[DEVIN_ORG_ID] or "").strip() or None,
            signing_secrets=lines(values[SIGNING_SECRET]),
            webhook_secrets=lines(values[WEBHOOK_SECRET]),
            pagerduty_api_key=(values[PAGERDUTY_API_KEY] or "").strip() or None,
            pagerduty_from_email=(values[PAGERDUTY_FROM_EMAIL] or "").strip() or None,
        )
        parameters = self._with_setup(credentials, values[ROUTING], values[PROMPT_TEMPLATE])
        if credentials.complete and parameters.setup is not None:
            # A refresh problem is reported by the read that found it, not by every delivery the cache serves.
            self._cached, self._fetched_at = replace(parameters, refresh_problem=None), self._clock()
        else:
            self._cached = None
        return parameters

    def _with_setup(self, credentials: Credentials, routing: str | None, template: str | None) -> Parameters:
        try:
            setup = _setup(routing, template)
        except RoutingError as error:
            if self._last_good_setup is None:
                return Parameters(credentials, None, setup_problem=str(error))
            return Parameters(credentials, self._last_good_setup, refresh_problem=str(error))
        self._last_good_setup = setup
        return Parameters(credentials, setup)
