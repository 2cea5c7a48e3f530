"""The bridge's secrets, read from SSM Parameter Store in one round trip and cached per warm container."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities.parameters import SSMProvider

from .errors import Unavailable

# Parameter names under the prefix (names, not secrets).
DEVIN_API_KEY = "devin-api-key"
DEVIN_ORG_ID = "devin-org-id"
SIGNING_SECRET = "pagerduty-signing-secret"  # noqa: S105 - a parameter name
WEBHOOK_SECRET = "webhook-secret"  # noqa: S105 - a parameter name
NAMES = (DEVIN_API_KEY, DEVIN_ORG_ID, SIGNING_SECRET, WEBHOOK_SECRET)


def _lines(value: str | None) -> tuple[str, ...]:
    """One secret per line, so that the old and the new secret can both be live during a rotation."""
    return tuple(line.strip() for line in (value or "").splitlines() if line.strip())


@dataclass(frozen=True)
class Credentials:
    # repr=False everywhere: a logged or raised Credentials must never print a secret.
    devin_api_key: str | None = field(default=None, repr=False)
    devin_org_id: str | None = field(default=None, repr=False)
    signing_secrets: tuple[str, ...] = field(default=(), repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def complete(self) -> bool:
        """Everything a qualifying incident needs is configured."""
        return bool(self.devin_api_key and self.devin_org_id and (self.signing_secrets or self.webhook_secrets))


class CredentialStore:
    """Fetches all four parameters with one GetParameters call (decrypted) and keeps them for `max_age` seconds.

    Powertools caches the values it found but not the names it did not find, and the two optional secrets
    are usually absent; so the resolved set, absences included, is cached here. An incomplete set is not
    cached: an operator who adds the missing parameter sees it take effect on the next delivery.
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
        self._cached: Credentials | None = None
        self._fetched_at = 0.0

    def get(self) -> Credentials:
        if self._cached is not None and self._clock() - self._fetched_at < self._max_age:
            return self._cached
        try:
            found = self._provider.get_parameters_by_name(
                {path: {} for path in self._paths.values()},
                decrypt=True,
                max_age=self._max_age,
                raise_on_error=False,
            )
        except Exception as error:  # throttling, network, KMS: all worth a retry by PagerDuty
            raise Unavailable("could not read the bridge's parameters from SSM") from error
        values = {name: found.get(path) for name, path in self._paths.items()}
        if not any(values.values()):
            # Powertools reports InternalServerError/InvalidKeyId as "every name failed": indistinguishable
            # from nothing configured, and both deserve a retry rather than a cached verdict.
            raise Unavailable("no bridge parameter could be read from SSM")
        credentials = Credentials(
            devin_api_key=values[DEVIN_API_KEY] or None,
            devin_org_id=(values[DEVIN_ORG_ID] or "").strip() or None,
            signing_secrets=_lines(values[SIGNING_SECRET]),
            webhook_secrets=_lines(values[WEBHOOK_SECRET]),
        )
        if credentials.complete:
            self._cached, self._fetched_at = credentials, self._clock()
        return credentials
