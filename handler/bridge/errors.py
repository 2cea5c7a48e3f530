"""Named failures, each carrying the HTTP answer it maps to and the metric it counts, so app.py maps them in one
place. The metric names are stable: template.yaml's alarms and dashboard use them."""

from __future__ import annotations

from typing import ClassVar


class BridgeError(Exception):
    """A failure with a planned HTTP answer. The message is safe to send back: it never holds a secret."""

    status_code = 500
    retry_after: int | None = None
    metric: ClassVar[str] = "BridgeError"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "metric" not in cls.__dict__:
            cls.metric = cls.__name__

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after is not None:
            self.retry_after = retry_after


class BadRequest(BridgeError):
    """The request was authenticated (or could not even be read) but is not a PagerDuty v3 delivery."""

    status_code = 400


class Unauthorized(BridgeError):
    """The signature or the shared webhook secret is missing or wrong."""

    status_code = 401


class ConfigurationError(BridgeError):
    """An operator must fix the deployment (a missing setting or secret); PagerDuty's retries wait for it."""

    status_code = 500


class Unavailable(BridgeError):
    """A dependency failed in a way a later delivery can get past; PagerDuty retries 503 for up to 48 hours."""

    status_code = 503
    retry_after = 30


class ParameterStoreUnavailable(Unavailable):
    """SSM Parameter Store (or KMS behind it) could not be read."""


class DevinOutage(Unavailable):
    """Devin answered 429/5xx or could not be reached, or its answer was lost: nothing is recorded as done."""

    metric = "DevinUnavailable"


class DevinRefused(BridgeError):
    """Devin refused the request (credentials, permissions, the request itself): an operator must act."""

    status_code = 502


class IncidentInFlight(BridgeError):
    """Another delivery for the same incident holds the claim right now."""

    status_code = 429


class SetupUnavailable(Unavailable):
    """The routing document or prompt template in Parameter Store is broken and no good one was seen before: a
    delivery about to start a session cannot know how. The log says what is wrong; PagerDuty retries."""

    retry_after = 60
