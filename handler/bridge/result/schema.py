"""The structured result Devin fills in: the JSON Schema sent with every create request, the check that a routing
rule's own schema keeps what the bridge relies on, the validation of what comes back, and the compact copy the
ledger keeps.

Pure apart from reading the schema files that ship with the function (this folder's postmortem.schema.json, and
handler/schemas/ for the ones routing rules name), once each.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..text import clean_text, echoed

DEFAULT_SCHEMA = "default"
DEFAULT_SCHEMA_PATH = Path(__file__).with_name("postmortem.schema.json")
# The default schema's versions: a session is checked against the one it was created with (the ledger's
# result_schema_version; absent: 1, from before versions were recorded). Version 2 asks for evidence (an action
# item at least, evidence for a cause that is not a hypothesis) and adds resolution, evidence_gaps, tracking_url
# and document_url.
SCHEMA_VERSION = 2
SCHEMA_VERSIONS = {1: Path(__file__).with_name("postmortem-v1.schema.json"), SCHEMA_VERSION: DEFAULT_SCHEMA_PATH}
# Where the schemas that routing rules name (`output_schema`) live in the deployed package: handler/schemas/.
RULE_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
RULE_SCHEMA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.json")

# Devin's limit on structured_output_schema (devin-api.md §2).
SCHEMA_LIMIT = 64 * 1024
DRAFT_7 = "http://json-schema.org/draft-07/schema#"
# The fields the bridge reads from every result (the compact copy, the summary note): a rule's schema keeps them.
REQUIRED = ("summary", "root_cause", "action_items")
# A result larger than this is not read at all: nothing the bridge keeps needs more.
RESULT_LIMIT = 256 * 1024
ERROR_LIMIT = 300

# What the ledger keeps of a valid result (postmortem_result): enough for `scripts/ledger show` and the summary
# note, far under DynamoDB's 400 KB item limit.
SUMMARY_LIMIT = 1000
STATEMENT_LIMIT = 500
ITEM_TEXT_LIMIT = 200
MAX_ITEMS = 20


class SchemaProblem(ValueError):
    """A schema file cannot be used; str() says why on one line."""


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaProblem(f"no file {path.name} in handler/schemas/") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SchemaProblem(f"{path.name} is not a readable JSON file ({type(error).__name__})") from None
    if not isinstance(document, dict):
        raise SchemaProblem(f"{path.name} is not a JSON object")
    return _without_comments(document)


def _without_comments(value: Any) -> Any:
    """`value` without its maintainers' `$comment`s: they are notes for us, not instructions for Devin."""
    if isinstance(value, dict):
        return {key: _without_comments(child) for key, child in value.items() if key != "$comment"}
    if isinstance(value, list):
        return [_without_comments(child) for child in value]
    return value


@functools.cache
def load_schema(name: str = DEFAULT_SCHEMA, version: int | None = None) -> Mapping[str, Any]:
    """The schema called `name`: DEFAULT_SCHEMA (at `version`, the current one by default), or a file in
    handler/schemas/ that check_schema accepts. Without its `$comment`s."""
    if name == DEFAULT_SCHEMA:
        return _read(SCHEMA_VERSIONS.get(version or SCHEMA_VERSION, DEFAULT_SCHEMA_PATH))
    if not RULE_SCHEMA_NAME.fullmatch(name):
        raise SchemaProblem("must be a file name such as payments.schema.json (letters, digits, _ . -)")
    document = _read(RULE_SCHEMA_DIR / name)
    problem = schema_problem(document)
    if problem is not None:
        raise SchemaProblem(f"{name}: {problem}")
    return document


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            if key == "$ref" and isinstance(child, str):
                yield child
            else:
                yield from _refs(child)
    elif isinstance(value, list):
        for child in value:
            yield from _refs(child)


def _local(document: Mapping[str, Any], pointer: str) -> Any:
    """What a local `#/a/b` reference points at, or None."""
    value: Any = document
    for part in pointer.removeprefix("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _resolved(document: Mapping[str, Any], value: Any, depth: int = 0) -> Any:
    """`value` with every local reference replaced by what it points at, so that two schemas compare by meaning."""
    if depth > 20:
        return value
    if isinstance(value, Mapping):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#") and len(value) == 1:
            return _resolved(document, _local(document, ref), depth + 1)
        return {key: _resolved(document, child, depth + 1) for key, child in value.items()}
    if isinstance(value, list):
        return [_resolved(document, child, depth + 1) for child in value]
    return value


def schema_problem(document: Mapping[str, Any]) -> str | None:
    """Why `document` cannot be a session's structured_output_schema, or None: Draft 7, self-contained, within
    Devin's 64 KB, and keeping the three required fields with exactly the default schema's shapes (the bridge
    reads them from every result)."""
    declared = document.get("$schema")
    if declared is not None and declared.rstrip("#") != DRAFT_7.rstrip("#"):
        return f"$schema must be Draft 7 ({DRAFT_7})"
    size = len(json.dumps(document, separators=(",", ":")).encode("utf-8"))
    if size > SCHEMA_LIMIT:
        return f"is {size} bytes; Devin takes at most {SCHEMA_LIMIT}"
    external = next((ref for ref in _refs(document) if not ref.startswith("#")), None)
    if external is not None:
        return f"has an external $ref ({clean_text(external, 60)}); Devin takes only self-contained schemas"
    dangling = next((ref for ref in _refs(document) if _local(document, ref) is None), None)
    if dangling is not None:
        return f"has a $ref to nothing ({clean_text(dangling, 60)})"
    try:
        _validator(json.dumps(document, sort_keys=True))
    except Exception as error:  # noqa: BLE001 - fastjsonschema raises several kinds for a bad schema
        return f"is not a valid JSON Schema ({clean_text(str(error), 120)})"
    if document.get("type") != "object":
        return 'must describe an object ("type": "object")'
    required = document.get("required")
    missing = [name for name in REQUIRED if not isinstance(required, list) or name not in required]
    if missing:
        return f"must require {', '.join(missing)} (the bridge reads them from every result)"
    properties = document.get("properties") if isinstance(document.get("properties"), Mapping) else {}
    for name in REQUIRED:
        shapes = []
        for version in SCHEMA_VERSIONS:
            default = load_schema(DEFAULT_SCHEMA, version)
            shapes.append(_resolved(default, default["properties"][name]))
        if _resolved(document, _without_comments(properties.get(name))) not in shapes:
            return (
                f'must keep "{name}" as a version of the default schema defines it'
                " (handler/bridge/result/postmortem.schema.json, or postmortem-v1.schema.json)"
            )
    return None


@functools.cache
def _validator(schema_text: str) -> Any:
    # Imported here: only the follow-up validates results, and the webhook's cold start does not pay for it.
    import fastjsonschema

    return fastjsonschema.compile(json.loads(schema_text))


def validation_error(result: Any, schema_name: str = DEFAULT_SCHEMA, version: int | None = None) -> str | None:
    """Why `result` does not satisfy the schema called `schema_name` (the default one at `version`), in one capped
    line; None when it does."""
    import fastjsonschema

    try:
        size = len(json.dumps(result, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError):
        return "the result is not JSON"
    if size > RESULT_LIMIT:
        return f"the result is {size} bytes; at most {RESULT_LIMIT} are read"
    try:
        schema = load_schema(schema_name, version if schema_name == DEFAULT_SCHEMA else None)
    except SchemaProblem:
        # The rule's schema left the package since the session started: the default one has the same required part.
        schema = load_schema(DEFAULT_SCHEMA)
    try:
        _validator(json.dumps(schema, sort_keys=True))(result)
    except fastjsonschema.JsonSchemaValueException as error:
        return echoed(error.message, ERROR_LIMIT)
    return None


def _text(value: Any, limit: int) -> str:
    """A result's text as the ledger keeps it: no look-alike of the bridge's markers, no link, on one line, capped."""
    return echoed(value, limit)


def compact(result: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a valid result, for `scripts/ledger show` and the summary note: the summary, the root
    cause's statement and confidence, each action item's title, type, priority, owner and ticket (the first
    MAX_ITEMS); and, when the result gives them, the impact, what ended the incident, the changes it implicates and
    the page it was published to. Each text capped; links are checked by the caller (follow.py)."""
    root = result["root_cause"]
    items = result["action_items"]
    kept: dict[str, Any] = {
        "summary": _text(result["summary"], SUMMARY_LIMIT),
        "root_cause": {
            "statement": _text(root["statement"], STATEMENT_LIMIT),
            "confidence": _text(root["confidence"], 20),
        },
        "action_items": [_item(item) for item in items[:MAX_ITEMS]],
    }
    if len(items) > MAX_ITEMS:
        kept["action_items_omitted"] = len(items) - MAX_ITEMS
    for name in ("pull_request_url", "document_url"):
        url = result.get(name)
        if isinstance(url, str) and url:
            kept[name] = clean_text(url, 2048)
    impact = _impact(result.get("impact"))
    if impact:
        kept["impact"] = impact
    resolution = result.get("resolution")
    if isinstance(resolution, Mapping) and isinstance(resolution.get("what"), str):
        kept["resolution"] = {"what": _text(resolution["what"], ITEM_TEXT_LIMIT)}
        if isinstance(resolution.get("at"), str):
            kept["resolution"]["at"] = clean_text(resolution["at"], 40)
    changes = result.get("changes") if isinstance(result.get("changes"), list) else []
    implicated = [
        _text(change["id"], 100)
        for change in changes
        if isinstance(change, Mapping) and change.get("verdict") == "implicated" and isinstance(change.get("id"), str)
    ]
    if implicated:
        kept["implicated"] = implicated[:5]
    return kept


def _item(item: Mapping[str, Any]) -> dict[str, Any]:
    kept = {field: _text(item[field], ITEM_TEXT_LIMIT) for field in ("title", "type", "priority", "owner")}
    if isinstance(item.get("tracking_url"), str):
        kept["tracking_url"] = clean_text(item["tracking_url"], 2048)
    return kept


def _impact(impact: Any) -> dict[str, Any]:
    if not isinstance(impact, Mapping):
        return {}
    kept: dict[str, Any] = {
        name: _text(impact[name], ITEM_TEXT_LIMIT) for name in ("what", "who") if isinstance(impact.get(name), str)
    }
    quantity = impact.get("quantity")
    value = quantity.get("value") if isinstance(quantity, Mapping) else None
    finite = isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 1e15
    if isinstance(quantity, Mapping) and isinstance(quantity.get("unit"), str) and finite:
        kept["quantity"] = {
            "value": value,
            "unit": _text(quantity["unit"], 100),
            "estimate": bool(quantity.get("estimate")),
            **({"basis": _text(quantity["basis"], ITEM_TEXT_LIMIT)} if isinstance(quantity.get("basis"), str) else {}),
        }
    return kept


def _cited(result: Mapping[str, Any]) -> Iterator[str]:
    """Every evidence reference a result makes, wherever the schema allows one."""
    places: list[Any] = [result.get("root_cause"), result.get("detection")]
    for key in ("contributing_factors", "timeline"):
        value = result.get(key)
        places.extend(value if isinstance(value, list) else [])
    for place in places:
        evidence = place.get("evidence") if isinstance(place, Mapping) else None
        for reference in evidence if isinstance(evidence, list) else ():
            if isinstance(reference, str):
                yield reference


def evidence_check(result: Mapping[str, Any], known_ids: Iterator[str] | list[str]) -> tuple[int, list[str]]:
    """(how many evidence references the result makes, the ids among them that the data block never held).

    A reference with "://" is a link to something outside PagerDuty's record and is not checked; anything else is
    taken for an id of the data block, so a made-up or mistyped one shows.
    """
    known = set(known_ids)
    cited = list(dict.fromkeys(_cited(result)))
    unknown = [reference for reference in cited if "://" not in reference and reference not in known]
    return len(cited), unknown


# How deep and how large a result may be before anything walks it: the schema's own shapes are a few levels deep;
# extra properties are allowed, so a result may be anything, and must not be able to cost more than this.
MAX_DEPTH = 32
MAX_NODES = 20_000


class Unreadable(ValueError):
    """A result too deep or too large to walk; str() says which, in the bridge's own words."""


def scrubbed(value: Any, scrub: Callable[[str], str]) -> Any:
    """A copy of `value` (what JSON gives: dicts, lists, strings, numbers, booleans, None) with every string, keys
    too, passed through `scrub` (scrub.Scrubber.text: normalised, the secrets taken out). Walked without recursion,
    and refused (Unreadable) past MAX_DEPTH levels or MAX_NODES values, before anything else looks at it."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 1)]
    nodes = 0
    while stack:
        source, parent, key, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise Unreadable(f"the result has more than {MAX_NODES} values; it is not read")
        if depth > MAX_DEPTH:
            raise Unreadable(f"the result is nested deeper than {MAX_DEPTH} levels; it is not read")
        if isinstance(source, Mapping):
            names = [(scrub(name) if isinstance(name, str) else str(name), child) for name, child in source.items()]
            copied: Any = dict.fromkeys(name for name, _ in names)  # the keys in their order; filled as walked
            stack.extend((child, copied, name, depth + 1) for name, child in names)
        elif isinstance(source, list):
            copied = [None] * len(source)
            stack.extend((child, copied, index, depth + 1) for index, child in enumerate(source))
        elif isinstance(source, str):
            copied = scrub(source)
        else:
            copied = source
        parent[key] = copied
    return root[0]
