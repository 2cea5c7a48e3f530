"""PagerDuty's own OpenAPI specification as the contract tests hold the client and the stand-in to it.

tests/contracts/pagerduty-openapi-subset.json is PagerDuty's specification cut to the operations the bridge and
scripts/doctor call (its `x-source` says from where). `Contract` checks a request as the stand-in received it and an
answer as the stand-in sent it with openapi-core, against a copy of the specification in which no object may carry
a property its schema does not declare: PagerDuty's schemas allow any extra property, so plain validation would
accept a field the real API never sends. `Reads` records which fields of PagerDuty's JSON a piece of code reads, for
`Contract.undeclared` to say which of them the specification does not declare.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from jsonschema.exceptions import best_match
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

from local.http_server import RecordedRequest

SPEC = Path(__file__).resolve().parent.parent / "contracts" / "pagerduty-openapi-subset.json"
# The specification's server: requests are checked as if sent there, whichever port the stand-in listens on.
SERVER = "https://api.pagerduty.com"
# Header parameters OpenAPI says validators ignore: checked here instead.
_IGNORED_HEADERS = ("accept", "content-type")
# Every error answer of every operation shares this schema ({"error": {"message", "code", "errors"}}).
ERROR_SCHEMA = "#/components/responses/Conflict/content/application~1json/schema"


@dataclass(frozen=True)
class Erratum:
    """A place where the specification contradicts itself, read the way the rest of it says."""

    pointer: str  # JSON pointer of the value replaced
    value: Any
    why: str


ERRATA = (
    Erratum(
        "/components/schemas/AcknowledgeLogEntry/allOf/1/properties/type/enum",
        ["acknowledge_log_entry"],
        "the sub-schema spells it acknowledgement_log_entry, which LogEntry's own type enum (which it extends) does "
        "not hold, so no acknowledgement could validate; LogEntry's enum and PagerDuty's answers say "
        "acknowledge_log_entry (shared/reference/pagerduty-rest-api.md §3.2)",
    ),
)


def load() -> dict[str, Any]:
    """The vendored specification, with ERRATA applied."""
    document = json.loads(SPEC.read_text(encoding="utf-8"))
    for erratum in ERRATA:
        *parents, last = _pointer_parts(erratum.pointer)
        holder = reduce(_step, parents, document)
        holder[last] = erratum.value
    return document


def _pointer_parts(pointer: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.lstrip("#").strip("/").split("/")]


def resolve(document: Any, ref: str) -> Any:
    return reduce(_step, _pointer_parts(ref), document)


def _step(node: Any, part: str) -> Any:
    return node[int(part)] if isinstance(node, list) else node[part]


# --- every object closed: no property its schema does not declare

_COMPONENT = re.compile(r"^#/components/schemas/[^/]+$")


def closed(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `document` whose object schemas refuse every property they do not declare.

    `allOf` is flattened first (each part closed on its own would refuse the other parts' properties), and an object
    with both properties and a `oneOf` (Channel) gets its properties in every branch. `oneOf` becomes `anyOf`:
    PagerDuty uses it for "one of these shapes", and shapes that require nothing but `type` (Channel's five) all
    match a real channel, which JSON Schema's `oneOf` would refuse for matching more than one.
    """
    closer = _Closer(document)
    result = copy.deepcopy(dict(document))
    components = result["components"]
    components["schemas"] = {name: closer.inline(schema) for name, schema in document["components"]["schemas"].items()}
    for response in components.get("responses", {}).values():
        _close_content(closer, response)
    for operations in result["paths"].values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for response in operation["responses"].values():
                _close_content(closer, response)
            if "requestBody" in operation:
                _close_content(closer, operation["requestBody"])
    return result


def _close_content(closer: _Closer, holder: dict[str, Any]) -> None:
    for media in holder.get("content", {}).values():
        if "schema" in media:
            media["schema"] = closer.close(media["schema"])


class _Closer:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document

    def close(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The closed schema; a reference to a whole component stays a reference (to its closed copy)."""
        if "$ref" in schema:
            ref = schema["$ref"]
            return {"$ref": ref} if _COMPONENT.match(ref) else self.inline(resolve(self._document, ref))
        return self._closed(schema)

    def inline(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The closed schema with a reference replaced by what it points at, for merging."""
        if "$ref" in schema:
            return self.inline(resolve(self._document, schema["$ref"]))
        return self._closed(schema)

    def _closed(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        rest = dict(schema)
        if "allOf" in rest:
            parts = [self.inline(part) for part in rest.pop("allOf")]
            return reduce(_merge, [*parts, self._closed(rest)], {})
        branches_key = "oneOf" if "oneOf" in rest else "anyOf" if "anyOf" in rest else None
        if branches_key is not None:
            branches = rest.pop(branches_key)
            if "properties" in rest:
                shared = self._closed(rest)
                return {"anyOf": [_merge(shared, self.inline(branch)) for branch in branches]}
            rest["anyOf"] = [self.close(branch) for branch in branches]
        if "properties" in rest:
            rest["properties"] = {name: self.close(sub) for name, sub in rest["properties"].items()}
            rest.setdefault("additionalProperties", False)
        elif isinstance(rest.get("additionalProperties"), dict):
            rest["additionalProperties"] = self.close(rest["additionalProperties"])
        if isinstance(rest.get("items"), dict):
            rest["items"] = self.close(rest["items"])
        return rest


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Two parts of an allOf as one schema: a value valid against it is valid against both."""
    merged = dict(a)
    for key, value in b.items():
        if key == "properties":
            properties = dict(merged.get("properties", {}))
            for name, sub in value.items():
                properties[name] = _merge_property(name, properties[name], sub) if name in properties else sub
            merged["properties"] = properties
        elif key == "required":
            merged["required"] = sorted(set(merged.get("required", ())) | set(value))
        elif key == "enum" and "enum" in merged:
            merged["enum"] = [item for item in merged["enum"] if item in value]
        elif key == "additionalProperties":
            merged[key] = False if False in (merged.get(key), value) else value
        else:
            merged[key] = value
    return merged


def _merge_property(name: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    if a == b:
        return dict(a)
    if "$ref" in a or "$ref" in b:
        raise ValueError(f"cannot merge two different schemas of {name!r} when one is a reference")
    return _merge(a, b)


# --- requests and answers


@dataclass(frozen=True)
class Operation:
    method: str  # lowercase, as the specification keys it
    template: str  # the specification's path, e.g. /incidents/{id}/notes

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.template}"


class Contract:
    """The vendored specification with openapi-core to check requests and answers against it: closed (no undeclared
    property) unless `strict` is False, which leaves PagerDuty's schemas as published."""

    def __init__(self, *, strict: bool = True) -> None:
        self.document = load()
        self.checked = closed(self.document) if strict else self.document
        self._openapi = OpenAPI.from_dict(self.checked)
        self._paths = [
            (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "/?$"), template)
            for template in self.document["paths"]
        ]

    def operations(self) -> set[Operation]:
        """Every operation the specification holds."""
        return {
            Operation(method, template)
            for template, item in self.document["paths"].items()
            for method in item
            if method in ("get", "put", "post", "delete", "patch")
        }

    def operation(self, method: str, path: str) -> Operation:
        for pattern, template in self._paths:
            if pattern.match(path) and method.lower() in self.document["paths"][template]:
                return Operation(method.lower(), template)
        raise LookupError(f"{method} {path} is no operation of the specification")

    def request_errors(self, request: RecordedRequest) -> list[str]:
        """What is wrong with a request as the stand-in received it: openapi-core's findings (path, query values,
        security, body), any query parameter the operation does not declare (openapi-core ignores those), and the
        Accept and Content-Type headers the operation declares (OpenAPI tells validators to ignore header parameters
        of those names, yet PagerDuty's specification marks both required on every operation)."""
        operation = self.operation(request.method, request.path)
        errors = [_describe(error) for error in self._openapi.iter_request_errors(_mock_request(request))]
        parameters = self._parameters(operation)
        declared = {parameter["name"] for parameter in parameters if parameter["in"] == "query"}
        errors += [f"query parameter {name!r} is not declared" for name in sorted(request.query.keys() - declared)]
        for parameter in parameters:
            name = parameter["name"]
            if parameter["in"] != "header" or name.lower() not in _IGNORED_HEADERS:
                continue
            value = request.headers.get(name.lower())
            if value is None:
                errors += [f"header {name} is required"] if parameter.get("required") else []
                continue
            validator = OAS30Validator(parameter["schema"])
            errors += [f"header {name}: {problem.message}" for problem in validator.iter_errors(value)]
        return [f"{operation}: {error}" for error in errors]

    def response_errors(
        self, request: RecordedRequest, status: int, body: bytes, content_type: str = "application/json"
    ) -> list[str]:
        """What is wrong with an answer to `request`, every undeclared property included. An error status the
        operation does not list is held to the error schema every operation shares."""
        operation = self.operation(request.method, request.path)
        declared = self.document["paths"][operation.template][operation.method]["responses"]
        if str(status) not in declared and status >= 400:
            validator = OAS30Validator(
                resolve(self.checked, ERROR_SCHEMA), format_checker=OAS30Validator.FORMAT_CHECKER
            )
            problems = validator.iter_errors(json.loads(body))
            return [
                f"{operation} → {status}: {'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                for e in problems
            ]
        response = MockResponse(body, status_code=status, content_type=content_type)
        found = list(self._openapi.iter_response_errors(_mock_request(request), response))
        return [f"{operation} → {status}: {_describe(error)}" for error in found]

    def undeclared(self, reads: Iterable[tuple[Operation, tuple[str, ...]]]) -> list[str]:
        """The fields read (as `Reads` records them) that the operation's answer does not declare."""
        missing = set()
        for operation, path in reads:
            schema = self._success_schema(operation)
            if not self._declares(schema, path):
                missing.add(f"{operation}: {'.'.join(path)}")
        return sorted(missing)

    def _parameters(self, operation: Operation) -> list[dict[str, Any]]:
        item = self.document["paths"][operation.template]
        listed = [*item.get("parameters", ()), *item[operation.method].get("parameters", ())]
        return [resolve(self.document, p["$ref"]) if "$ref" in p else p for p in listed]

    def _success_schema(self, operation: Operation) -> Mapping[str, Any]:
        responses = self.checked["paths"][operation.template][operation.method]["responses"]
        [success] = [response for status, response in responses.items() if status.startswith("2")]
        return success["content"]["application/json"]["schema"]

    def _declares(self, schema: Mapping[str, Any], path: tuple[str, ...]) -> bool:
        if "$ref" in schema:
            return self._declares(resolve(self.checked, schema["$ref"]), path)
        if not path:
            return True
        if "anyOf" in schema:
            return any(self._declares(branch, path) for branch in schema["anyOf"])
        head, rest = path[0], path[1:]
        if head == "[]":
            return isinstance(schema.get("items"), dict) and self._declares(schema["items"], rest)
        properties = schema.get("properties")
        if properties is None:
            # A free-form object (custom details, an alert's details) declares whatever it holds.
            return schema.get("type", "object") == "object" and schema.get("additionalProperties") is not False
        return head in properties and self._declares(properties[head], rest)


def _mock_request(request: RecordedRequest) -> MockRequest:
    headers = dict(request.headers)
    return MockRequest(
        SERVER,
        request.method,
        urlsplit(request.path).path,
        args=request.query,
        headers=headers,
        data=request.body or None,
        content_type=headers.get("content-type", ""),
    )


def _describe(error: BaseException) -> str:
    """openapi-core's finding, with the schema errors behind it in place of its dump of the whole value."""
    details = []
    cause: BaseException | None = error
    while cause is not None:
        for schema_error in getattr(cause, "schema_errors", ()) or ():
            # For anyOf, the branch that came nearest says more than "not valid under any of the given schemas".
            while schema_error.context:
                schema_error = best_match(schema_error.context)
            where = "/".join(str(part) for part in schema_error.absolute_path) or "(body)"
            details.append(f"{where}: {schema_error.message}")
        cause = cause.__cause__
    return "; ".join(details) if details else f"{type(error).__name__}: {error}"


# --- which fields a piece of code reads


@dataclass
class Reads:
    """Fields read from PagerDuty's JSON: `wrap` an answer's document, hand it to the code, then `seen` lists each
    (operation, path) it asked for with `get`, `[]` or `in`, whether the field was there or not. A path is the keys
    from the document's root, with "[]" for an item of a list. Going through a whole object (json.dumps of an
    alert's free-form details) reads no field by name, and is not noted."""

    seen: set[tuple[Operation, tuple[str, ...]]] = field(default_factory=set)

    def wrap(self, document: Any, operation: Operation) -> Any:
        return _wrap(document, operation, (), self.seen)

    def __iter__(self) -> Iterator[tuple[Operation, tuple[str, ...]]]:
        return iter(sorted(self.seen, key=lambda read: (str(read[0]), read[1])))


def _wrap(value: Any, operation: Operation, path: tuple[str, ...], seen: set[Any]) -> Any:
    if isinstance(value, dict):
        return _ReadDict(value, operation, path, seen)
    if isinstance(value, list):
        return [_wrap(item, operation, (*path, "[]"), seen) for item in value]
    return value


class _ReadDict(dict):
    """A dict (so the client's isinstance checks pass) that notes each key asked for."""

    def __init__(self, data: dict[str, Any], operation: Operation, path: tuple[str, ...], seen: set[Any]) -> None:
        super().__init__({key: _wrap(value, operation, (*path, key), seen) for key, value in data.items()})
        self._where = (operation, path, seen)

    def _note(self, key: object) -> None:
        operation, path, seen = self._where
        seen.add((operation, (*path, str(key))))

    def get(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)


@dataclass(frozen=True)
class Answer:
    """An answer as a client received it, with the request it answered (as the client sent it)."""

    request: RecordedRequest
    status: int
    body: bytes
    content_type: str


class Recording(requests.Session):
    """A requests.Session for a client under test: keeps every answer (`answers`) and hands the client JSON that
    notes each field it reads (`reads`)."""

    def __init__(self, contract: Contract) -> None:
        super().__init__()
        self.contract = contract
        self.answers: list[Answer] = []
        self.reads = Reads()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        sent = response.request
        parts = urlsplit(str(sent.url))
        body = sent.body.encode() if isinstance(sent.body, str) else (sent.body or b"")
        request = RecordedRequest(
            str(sent.method), parts.path, parse_qs(parts.query), {k.lower(): v for k, v in sent.headers.items()}, body
        )
        self.answers.append(
            Answer(request, response.status_code, response.content, response.headers.get("Content-Type", ""))
        )
        operation = self.contract.operation(request.method, request.path)
        decode = response.json
        response.json = lambda **options: self.reads.wrap(decode(**options), operation)
        return response
