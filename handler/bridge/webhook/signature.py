"""Authenticates a delivery: PagerDuty's v3 HMAC signature and/or the subscription's custom shared-secret header."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from ..credentials import Credentials
from ..errors import ConfigurationError, Unauthorized

SIGNATURE_HEADER = "x-pagerduty-signature"
WEBHOOK_SECRET_HEADER = "x-webhook-secret"  # noqa: S105 - a header name


def _candidates(header: str) -> list[bytes]:
    # Several `v1=` entries appear during a secret rotation, and API Gateway joins repeated headers with ",".
    return [part.strip()[3:].encode("utf-8", "replace") for part in header.split(",") if part.strip().startswith("v1=")]


def signature_matches(raw_body: bytes, header: str | None, secrets: tuple[str, ...]) -> bool:
    """True when any `v1=` signature in the header is the HMAC-SHA256 (hex) of the raw body under any secret."""
    if not header:
        return False
    candidates = _candidates(header)
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest().encode()
        for candidate in candidates:
            # No early exit: the time taken must not depend on which candidate matched.
            matched |= hmac.compare_digest(expected, candidate)
    return matched


def shared_secret_matches(header: str | None, secrets: tuple[str, ...]) -> bool:
    if header is None:
        return False
    given = header.strip().encode("utf-8", "replace")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(secret.encode(), given)
    return matched


def authenticate(raw_body: bytes, headers: Mapping[str, str], credentials: Credentials) -> None:
    """Raise unless every configured scheme passes; with no scheme configured, fail closed.

    `headers` must have lowercased names (HTTP API payload 2.0 already does this).
    """
    if not credentials.signing_secrets and not credentials.webhook_secrets:
        raise ConfigurationError("webhook authentication is not configured")
    if credentials.signing_secrets and not signature_matches(
        raw_body, headers.get(SIGNATURE_HEADER), credentials.signing_secrets
    ):
        raise Unauthorized("signature missing or invalid")
    if credentials.webhook_secrets and not shared_secret_matches(
        headers.get(WEBHOOK_SECRET_HEADER), credentials.webhook_secrets
    ):
        raise Unauthorized("webhook secret missing or invalid")
