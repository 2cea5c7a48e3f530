"""Reads the routing document and prompt templates, and picks the rule that decides what an incident's session gets.

Pure: no AWS, no network; the only file read is routing.schema.json beside this module, once, on first use.
A document or template that is wrong in any way raises RoutingError, whose message says what and where.
"""

from __future__ import annotations

import difflib
import functools
import json
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..result.schema import SchemaProblem, load_schema
from ..text import clean_text
from ..webhook.event import Incident

# What a template may name, as ${name}; prompt.py supplies each value.
PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "service",
        "title",
        "incident_id",
        "incident_number",
        "priority",
        "urgency",
        "created_at",
        "resolved_at",
        "postmortem_path",
        "postmortem_file",
    }
)
DEFAULT_POSTMORTEM_PATH = "docs/postmortems/"
# The postmortem's file name in that folder, as the bridge computes it and gives it to Devin verbatim.
DEFAULT_POSTMORTEM_FILE = "{date}-incident-{number}-{slug}.md"
FILE_FIELDS = ("date", "number", "slug", "incident_id")
# The same bound as a rule's `instructions` in the schema; Parameter Store caps a value at 8 KB anyway.
TEMPLATE_LIMIT = 20_000

_SCHEMA_PATH = Path(__file__).with_name("routing.schema.json")
# Input echoed in a message is cut to this many characters, so that one message never carries a document.
_ECHO_LIMIT = 40
# How long a list of the names a message expects may be; the rest are counted.
_LIST_LIMIT = 160
# A valid document nests 5 deep (rules, a rule, match, a key, a pattern); the schema rejects anything deeper.
_DEPTH = 5
_SESSION_FIELDS = ("playbook_id", "knowledge_ids", "repos", "max_acu_limit")


class RoutingError(ValueError):
    """The routing document or a template is wrong; str() says what and where, on one line."""


@dataclass(frozen=True)
class Publish:
    """Where Devin publishes the draft: "repository" (a pull request), or a wiki page through its integration."""

    to: str  # repository, confluence, notion, other
    site_url: str | None = None
    space: str | None = None
    parent_page: str | None = None
    instructions: str | None = None


@dataclass(frozen=True)
class Tracker:
    """Where each action item becomes a ticket: github (repo), jira (site_url, project), linear (project)."""

    to: str
    repo: str | None = None
    site_url: str | None = None
    project: str | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    # service, team, priority, urgency or event_type → patterns; a key that is absent matches anything.
    match: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    skip: bool = False
    playbook_id: str | None = None
    # None: not set by the rule. (): set to none at all, which Devin reads differently from leaving it out.
    knowledge_ids: tuple[str, ...] | None = None
    repos: tuple[str, ...] | None = None
    max_acu_limit: int | None = None
    tags: tuple[str, ...] = ()
    postmortem_path: str | None = None
    instructions: str | None = None
    # A schema file in handler/schemas/ for the session's structured result, instead of the default one.
    output_schema: str | None = None
    # The postmortem file's name template in postmortem_path, the repository it goes to, where it is published,
    # and where its action items become tickets (None: the deployment's defaults).
    postmortem_file: str | None = None
    postmortem_repo: str | None = None
    publish: Publish | None = None
    action_items_to: Tracker | None = None

    def session_fields(self) -> dict[str, Any]:
        """What this rule adds to Devin's create-session request body (tags apart: they join the standard ones)."""
        fields: dict[str, Any] = {}
        for name in _SESSION_FIELDS:
            value = getattr(self, name)
            if value is not None:
                fields[name] = list(value) if isinstance(value, tuple) else value
        return fields


@dataclass(frozen=True)
class Facts:
    """What rules match against, read from one incident delivery."""

    service_id: str
    service_name: str
    team_ids: tuple[str, ...]
    team_names: tuple[str, ...]
    priority: str | None
    urgency: str
    event_type: str

    @classmethod
    def of(cls, incident: Incident, event_type: str) -> Facts:
        """What rules match against in an incident's webhook data."""
        return cls(
            service_id=incident.service_id,
            service_name=incident.service_name,
            team_ids=incident.team_ids,
            team_names=incident.team_names,
            priority=incident.priority,
            urgency=incident.urgency,
            event_type=event_type,
        )


def _values(facts: Facts, key: str) -> tuple[str | None, ...]:
    """The values that a `match` key's patterns are compared with: service and team by id or by name."""
    if key == "service":
        return (facts.service_id, facts.service_name)
    if key == "team":
        return facts.team_ids + facts.team_names
    if key == "priority":
        return (facts.priority,)
    if key == "urgency":
        return (facts.urgency,)
    return (facts.event_type,)


def matches(patterns: Iterable[str], *values: str | None) -> bool:
    """Whether any pattern matches any of the values, ignoring case.

    `*` stands for any run of characters and `?` for one; everything else is literal, brackets included
    (service names such as "Checkout [EU]" are common). A missing or empty value matches no pattern, not
    even `*`: so `"priority": ["*"]` means "has a priority", and an incident without one matches only rules
    that leave `priority` out. Likewise `"team": ["*"]` needs the incident to have a team.
    """
    present = [value.casefold() for value in values if value]
    if not present:
        return False
    return any(fnmatchcase(value, _glob(pattern)) for pattern in patterns for value in present)


def _glob(pattern: str) -> str:
    # fnmatch reads "[...]" as a character set; "[[]" is its spelling of a literal "[".
    return pattern.casefold().replace("[", "[[]")


def _applies(rule: Rule, facts: Facts) -> bool:
    return all(matches(patterns, *_values(facts, key)) for key, patterns in rule.match.items())


@dataclass(frozen=True)
class Routing:
    rules: tuple[Rule, ...] = ()

    def route(self, facts: Facts) -> Rule | None:
        """The first rule whose every `match` key matches, or None when no rule does."""
        return next((rule for rule in self.rules if _applies(rule, facts)), None)


def parse_routing(text: str) -> Routing:
    """The routing document, checked against routing.schema.json, with unique names and valid `instructions`."""
    # Powertools' validation (and fastjsonschema, jmespath) cost tens of milliseconds to import, and most cold
    # starts never read a routing document.
    from aws_lambda_powertools.utilities.validation import SchemaValidationError, validate

    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise RoutingError(f"routing: not JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise RoutingError("routing: not JSON: nested too deeply") from None
    except ValueError as error:  # a number with thousands of digits
        raise RoutingError(f"routing: not JSON: {_cut(str(error))}") from None
    repeated = _repeated_key(document, [], document)
    if repeated:
        raise RoutingError(repeated)
    try:
        validate(event=document, schema=_schema())
    except SchemaValidationError as error:
        raise RoutingError(_explain(error, document)) from None

    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(document["rules"]):
        where = _rule_where(index, raw)
        earlier = seen.setdefault(raw["name"].casefold(), index)
        if earlier != index:
            raise RoutingError(f"{where}: name: already used by rules[{earlier}] (names must differ, ignoring case)")
        if "instructions" in raw:
            problem = _template_problem(raw["instructions"])
            if problem:
                raise RoutingError(f"{where}: instructions: {problem}")
        if "output_schema" in raw:
            try:
                load_schema(raw["output_schema"])
            except SchemaProblem as error:
                raise RoutingError(f"{where}: output_schema: {error}") from None
        if "postmortem_file" in raw:
            problem = file_template_problem(raw["postmortem_file"])
            if problem:
                raise RoutingError(f"{where}: postmortem_file: {problem}")
        rules.append(_rule(raw))
    return Routing(rules=tuple(rules))


def check_template(text: str) -> str:
    """`text` itself when it is a valid prompt template: string.Template syntax, `$$` for a literal `$`, and
    only PLACEHOLDERS as names; raises RoutingError otherwise."""
    problem = _template_problem(text)
    if problem:
        raise RoutingError(f"prompt template: {problem}")
    return text


def _rule(raw: Mapping[str, Any]) -> Rule:
    def strings(key: str) -> tuple[str, ...] | None:
        return tuple(raw[key]) if key in raw else None

    limit = raw.get("max_acu_limit")
    return Rule(
        name=raw["name"],
        match=MappingProxyType({key: tuple(patterns) for key, patterns in raw.get("match", {}).items()}),
        skip=raw.get("skip", False),
        playbook_id=raw.get("playbook_id"),
        knowledge_ids=strings("knowledge_ids"),
        repos=strings("repos"),
        # JSON Schema counts 20.0 as an integer; Devin gets 20.
        max_acu_limit=None if limit is None else int(limit),
        tags=strings("tags") or (),
        postmortem_path=raw.get("postmortem_path"),
        instructions=raw.get("instructions"),
        output_schema=raw.get("output_schema"),
        postmortem_file=raw.get("postmortem_file"),
        postmortem_repo=raw.get("postmortem_repo"),
        publish=Publish(**raw["publish"]) if "publish" in raw else None,
        action_items_to=Tracker(**raw["action_items_to"]) if "action_items_to" in raw else None,
    )


def file_template_problem(template: str) -> str | None:
    """Why a postmortem_file template cannot be filled in, or None: only {date}, {number}, {slug}, {incident_id}."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return 'has a "{" or "}" that opens or closes no field: write {date}, {number}, {slug} or {incident_id}'

    unknown = next((name for name in names if name not in FILE_FIELDS), None)
    if unknown is not None:
        return f"unknown field {{{_cut(unknown)}}}" + _suggest(unknown, FILE_FIELDS, "{%s}")
    return None


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(_SCHEMA_PATH.read_text(encoding="utf-8"))


class _RepeatedKey(dict[str, Any]):
    """An object in which `key` appeared twice: json.loads would keep the last value and hide the first."""

    key: str


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            marked = _RepeatedKey(pairs)
            marked.key = key
            return marked
        result[key] = value
    return result


def _repeated_key(value: Any, path: list[str | int], document: Any) -> str | None:
    """Where the first object with a repeated key is, and which key; None when there is none."""
    if isinstance(value, _RepeatedKey):
        return f"{_where(path, document)}: key {_quote(value.key)} appears twice"
    if len(path) > _DEPTH:
        return None
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _repeated_key(child, [*path, key], document)
        if found:
            return found
    return None


def _template_problem(text: str) -> str | None:
    if not text.strip():
        return "is blank"
    if len(text) > TEMPLATE_LIMIT:
        return f"is too long ({len(text)} characters, at most {TEMPLATE_LIMIT})"
    for found in string.Template.pattern.finditer(text):
        if found.group("invalid") is not None:
            line, column = _position(text, found.start())
            return (
                f'"$" at line {line}, column {column} starts no placeholder: write ${{name}} for a placeholder '
                'and "$$" for a literal "$"'
            )
        name = found.group("named") or found.group("braced")
        if name is not None and name not in PLACEHOLDERS:
            line, column = _position(text, found.start())
            return f"unknown placeholder ${{{_cut(name)}}} at line {line}, column {column}" + _suggest(
                name, PLACEHOLDERS, "${%s}"
            )
    return None


def _position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _explain(error: Any, document: Any) -> str:
    """One line from fastjsonschema's first failure: where (the rule by index and name, then the field) and what."""
    where = _where([int(part) if str(part).isdecimal() else part for part in (error.path or ["data"])[1:]], document)
    definition = error.definition if isinstance(error.definition, Mapping) else {}
    value, rule, bound = error.value, error.rule, error.rule_definition
    if error.definition is False:
        # A property that the `then` of a "skip": true rule forbids.
        return f'{where}: not allowed with "skip": true (a skipped incident starts no session)'
    if rule in ("required", "additionalProperties"):
        # An unknown key first: `{"nme": …}` is better answered "did you mean name" than "name is missing".
        properties = definition.get("properties", {})
        unknown = next((key for key in value if key not in properties), None)
        if unknown is not None and definition.get("additionalProperties") is False:
            known = [key for key in properties if not key.startswith("$")]
            return f"{where}: unknown key {_quote(unknown)}" + _suggest(unknown, known, '"%s"')
        missing = next(key for key in bound if key not in value)
        return f"{where}: {_quote(missing)} is missing"
    described = definition.get("description", "valid")
    if rule == "type":
        return f"{where}: must be {described}, not {_json_type(value)}"
    if rule in ("minLength", "minItems"):
        return f"{where}: must not be empty"
    if rule == "maxLength":
        return f"{where}: is too long ({len(value)} characters, at most {bound})"
    if rule == "maxItems":
        return f"{where}: has too many items ({len(value)}, at most {bound})"
    if rule == "minimum":
        return f"{where}: must be at least {bound}, not {_json_type(value)}"
    if rule == "maximum":
        return f"{where}: must be at most {bound}, not {_json_type(value)}"
    return f"{where}: must be {described}"


def _where(path: list[str | int], document: Any) -> str:
    """`rules[2] "name": match.service[0]` for a place inside a rule, `routing: …` for one outside the rules."""
    where, rest = "routing", path
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        where, rest = _rule_where(path[1], document["rules"][path[1]]), path[2:]
    return f"{where}: {_field(rest)}" if rest else where


def _rule_where(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return f"rules[{index}] {_quote(name)}" if isinstance(name, str) and name else f"rules[{index}]"


def _field(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _suggest(name: str, known: Iterable[str], form: str) -> str:
    close = difflib.get_close_matches(name.casefold(), sorted(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {form % close[0]}?)"
    listed = [form % key for key in sorted(known)]
    shown = []
    for item in listed:  # the list stays short enough that a message is one readable line
        if len(", ".join([*shown, item])) > _LIST_LIMIT:
            break
        shown.append(item)
    more = f" and {len(listed) - len(shown)} more" if len(shown) < len(listed) else ""
    return " (expected one of: " + ", ".join(shown) + more + ")"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return _cut(json.dumps(value))
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _cut(text: str) -> str:
    return clean_text(text, _ECHO_LIMIT)


def _quote(text: str) -> str:
    return json.dumps(_cut(text), ensure_ascii=False)
