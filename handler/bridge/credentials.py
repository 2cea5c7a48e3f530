"""The bridge's secrets as values: what authenticates a delivery and what reaches Devin and PagerDuty.

A plain value type, with no I/O: parameters.py fetches it from Parameter Store, webhook/signature.py and app.py read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def lines(value: str | None) -> tuple[str, ...]:
    """One secret per line, so that the old and the new secret can both be live during a rotation."""
    return tuple(line.strip() for line in (value or "").splitlines() if line.strip())


@dataclass(frozen=True)
class Credentials:
    # repr=False everywhere: a logged or raised Credentials must never print a secret.
    devin_api_key: str | None = field(default=None, repr=False)
    devin_org_id: str | None = field(default=None, repr=False)
    signing_secrets: tuple[str, ...] = field(default=(), repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    # Optional: with no PagerDuty key the function makes no PagerDuty request at all.
    pagerduty_api_key: str | None = field(default=None, repr=False)
    # The user notes are written as (the `From` header); without it the function only reads.
    pagerduty_from_email: str | None = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, to scrub from text that comes from elsewhere before the bridge passes it on."""
        found = (self.devin_api_key, *self.signing_secrets, *self.webhook_secrets, self.pagerduty_api_key)
        return tuple(value for value in found if value)

    @property
    def complete(self) -> bool:
        """Everything a qualifying incident needs is configured."""
        return bool(self.devin_api_key and self.devin_org_id and (self.signing_secrets or self.webhook_secrets))

    @property
    def reads_pagerduty(self) -> bool:
        return bool(self.pagerduty_api_key)

    @property
    def writes_pagerduty(self) -> bool:
        return bool(self.pagerduty_api_key and self.pagerduty_from_email)
