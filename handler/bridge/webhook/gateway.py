"""API Gateway's HTTP API (payload 2.0) for the webhook: the event read into a request, the route, exception
handlers by class, and the answer's shape, as Powertools' event handler has them. Pure: no I/O.

The function used Powertools' APIGatewayHttpResolver. Its package loads a resolver for every event source and asyncio
for AppSync's, and Powertools' data classes package (its API Gateway event class included) the class of every event
source: together a fifth of boto3's import at every cold start (docs/performance.md, Init). This is the part the
function used, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

Route = Callable[[], dict[str, Any]]
Failure = Callable[[Any], dict[str, Any]]


class Request(NamedTuple):
    """What the function reads of API Gateway's HTTP API event (payload 2.0), read as Powertools' API Gateway event
    data class reads it: the method and the path without a stage that is not $default."""

    method: str
    path: str
    body: str | None
    is_base64_encoded: bool | None
    headers: dict[str, str]

    @classmethod
    def of(cls, event: dict[str, Any]) -> Request:
        context = event["requestContext"]
        stage, path = context["stage"], event["rawPath"]
        return cls(
            method=context["http"]["method"],
            path=path if stage == "$default" else path[len("/" + stage) :],
            body=event.get("body"),
            is_base64_encoded=event.get("isBase64Encoded"),
            headers=event.get("headers") or {},
        )


class HttpApi:
    """The part of Powertools' APIGatewayHttpResolver the function uses: one route per method and path, exception
    handlers looked up by the failure's class, and the 404 of a path with no route."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Route] = {}
        self._failures: dict[type[Exception], Failure] = {}
        self.current_event: Request | None = None
        self.lambda_context: Any = None

    def post(self, path: str) -> Callable[[Route], Route]:
        def register(route: Route) -> Route:
            self._routes["POST", path] = route
            return route

        return register

    def exception_handler(self, kind: type[Exception]) -> Callable[[Failure], Failure]:
        def register(handler: Failure) -> Failure:
            self._failures[kind] = handler
            return handler

        return register

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.current_event, self.lambda_context = Request.of(event), context
        route = self._routes.get((self.current_event.method.upper(), self.current_event.path))
        if route is None:
            return answer(404, '{"statusCode":404,"message":"Not found"}')
        try:
            return route()
        except Exception as error:
            # The handler registered for the nearest class, as the event handler looks it up; without one the failure
            # propagates.
            handler = next((self._failures[c] for c in type(error).__mro__ if c in self._failures), None)
            if handler is None:
                raise
            return handler(error)


def answer(status: int, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An HTTP API (payload 2.0) answer as Powertools' event handler shapes a JSON Response: no cookies."""
    return {
        "statusCode": status,
        "body": body,
        "isBase64Encoded": False,
        "headers": {**(headers or {}), "Content-Type": "application/json"},
        "cookies": [],
    }
