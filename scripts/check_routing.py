"""Check a routing document and a prompt template before they go into Parameter Store, and try them on payloads.

    scripts/check-routing [ROUTING_FILE] [--prompt-template FILE] [--try PAYLOAD_FILE ...] [--prefix PREFIX]

ROUTING_FILE is checked as the function checks `<prefix>/routing` (bridge.devin.routing.parse_routing), FILE as it
checks `<prefix>/prompt-template`; for each valid one it prints the `aws ssm put-parameter` line that stores it.
`--try` reads each PagerDuty v3 webhook body the way the function does and prints which rule it meets and what
that rule would send to Devin. Only the routing is applied: the function's EVENT_TYPES, PRIORITIES and URGENCIES
still decide first whether a delivery gets a session at all.

Exit status: 0 when everything given is valid, 1 when something is invalid, 2 on a usage error or a file that
cannot be read.
"""

from __future__ import annotations

import argparse
import re
import shlex
import string
import sys
from pathlib import Path

HANDLER = Path(__file__).resolve().parent.parent / "handler"
if str(HANDLER) not in sys.path:
    sys.path.insert(0, str(HANDLER))

from bridge.devin.destination import destination, integration, page, tracker_words  # noqa: E402
from bridge.devin.routing import (  # noqa: E402
    DEFAULT_POSTMORTEM_PATH,
    Facts,
    Routing,
    RoutingError,
    Rule,
    check_template,
    parse_routing,
)
from bridge.errors import BadRequest  # noqa: E402
from bridge.webhook.event import Incident, parse_event, read_incident  # noqa: E402

DEFAULT_PREFIX = "/pagerduty-postmortem"
# template.yaml's AllowedPattern for SsmParameterPrefix.
PREFIX_PATTERN = re.compile(r"(/[A-Za-z0-9_.-]+)+")
# Parameter Store's limits on a String value, in bytes: the Standard tier, then the Advanced one (which costs).
STANDARD_LIMIT = 4096
ADVANCED_LIMIT = 8192


class UsageError(Exception):
    """Exit status 2: wrong arguments or a file that cannot be read."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/check-routing",
        allow_abbrev=False,
        description="Check the routing document and/or the prompt template before storing them in Parameter Store.",
    )
    parser.add_argument("routing", nargs="?", metavar="ROUTING_FILE", help="the routing document (JSON)")
    parser.add_argument("--prompt-template", metavar="FILE", help="a prompt template to check")
    parser.add_argument(
        "--try",
        dest="payloads",
        nargs="+",
        action="extend",
        default=[],
        metavar="PAYLOAD_FILE",
        help="PagerDuty v3 webhook bodies to route (e.g. events/payloads/*.json); needs ROUTING_FILE",
    )
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"the stack's SsmParameterPrefix (default {DEFAULT_PREFIX})"
    )
    return parser


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None


def _text(path: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path}: not UTF-8 text") from None


def _size_problem(raw: bytes) -> str | None:
    if len(raw) > ADVANCED_LIMIT:
        return f"too large for Parameter Store: {len(raw)} bytes, at most {ADVANCED_LIMIT} (Advanced tier)"
    return None


def _put_parameter(name: str, path: str, raw: bytes) -> str:
    tier = " --tier Advanced" if len(raw) > STANDARD_LIMIT else ""
    return (
        f"  store it: aws ssm put-parameter --type String{tier} --name {shlex.quote(name)} "
        f"--value {shlex.quote('file://' + path)} --overwrite"
    )


def check_routing_file(path: str, prefix: str) -> Routing | None:
    """Print ✓ or ✗ for the routing document; the Routing when it is valid."""
    raw = _read(path)
    try:
        problem = _size_problem(raw)
        if problem:
            raise RoutingError(f"routing: {problem}")
        routing = parse_routing(_text(path, raw))
    except RoutingError as error:
        print(f"✗ {path}: {error}")
        return None
    count = len(routing.rules)
    names = ", ".join(rule.name for rule in routing.rules) or "routes nothing"
    print(f"✓ {path}: {count} rule{'' if count == 1 else 's'} ({names})")
    print(_put_parameter(f"{prefix}/routing", path, raw))
    return routing


def check_template_file(path: str, prefix: str) -> bool:
    """Print ✓ or ✗ for the prompt template; whether it is valid."""
    raw = _read(path)
    try:
        problem = _size_problem(raw)
        if problem:
            raise RoutingError(f"prompt template: {problem}")
        text = check_template(_text(path, raw))
    except RoutingError as error:
        print(f"✗ {path}: {error}")
        return False
    used = dict.fromkeys(string.Template(text).get_identifiers())
    placeholders = ", ".join(f"${{{name}}}" for name in used) or "none"
    print(f"✓ {path}: prompt template, {len(text)} characters, placeholders: {placeholders}")
    print(_put_parameter(f"{prefix}/prompt-template", path, raw))
    return True


def read_facts(raw_body: bytes) -> tuple[Facts, Incident] | str:
    """What the routing sees of a webhook body and its incident, or why the body never reaches the routing."""
    event = parse_event(raw_body)
    if event.data_type != "incident":
        return f"not an incident ({event.event_type}): the function ignores it before routing"
    incident = read_incident(event)
    return Facts.of(incident, event.event_type), incident


def _named(name: str, ident: str) -> str:
    return f"{name} ({ident})" if name and ident else name or ident or "?"


def describe_facts(facts: Facts) -> str:
    if len(facts.team_names) == len(facts.team_ids):
        teams = ", ".join(map(_named, facts.team_names, facts.team_ids)) or "none"
    else:  # a team without a name or an id: the pairs cannot be told apart
        teams = ", ".join(facts.team_names + facts.team_ids)
    return (
        f"service {_named(facts.service_name, facts.service_id)}, team {teams}, "
        f"priority {facts.priority or 'none'}, urgency {facts.urgency or 'none'}, {facts.event_type}"
    )


def describe_rule(rule: Rule | None, template: bool, incident: Incident | None = None) -> list[str]:
    """What a delivery routed to `rule` gets, one line per setting; where the draft goes, for `incident`, when the
    rule says more of it than the folder."""
    if rule is None:
        instructions = "the prompt template" if template else "built-in"
        return [f"  → no rule matches: a standard session ({instructions} instructions, {DEFAULT_POSTMORTEM_PATH})"]
    if rule.skip:
        return [f'  → rule "{rule.name}": skipped (answered 2xx "ignored", no session)']

    def listed(values: tuple[str, ...] | None, unset: str) -> str:
        if values is None:
            return unset
        return ", ".join(values) or "none ([])"

    if rule.instructions is not None:
        instructions = f"the rule's own ({len(rule.instructions)} characters)"
    else:
        instructions = "the prompt template" if template else "built-in"
    rows = [
        ("playbook_id", rule.playbook_id or "none"),
        ("knowledge_ids", listed(rule.knowledge_ids, "Devin's default")),
        ("repos", listed(rule.repos, "Devin's default")),
        ("max_acu_limit", str(rule.max_acu_limit) if rule.max_acu_limit is not None else "Devin's default"),
        ("extra tags", listed(rule.tags, "none")),
        ("postmortem_path", rule.postmortem_path or f"{DEFAULT_POSTMORTEM_PATH} (default)"),
        ("instructions", instructions),
        *_where_rows(rule, incident),
    ]
    return [f'  → rule "{rule.name}":'] + [f"      {label:<16} {value}" for label, value in rows]


def _where_rows(rule: Rule, incident: Incident | None) -> list[tuple[str, str]]:
    """The rows of the draft's place, only for the fields the rule sets (the file's path filled in for `incident`)."""
    rows: list[tuple[str, str]] = []
    where = destination(incident, rule) if incident is not None else None
    if rule.postmortem_file is not None:
        rows.append(("postmortem_file", rule.postmortem_file + (f" → {where.path}" if where is not None else "")))
    a_page = rule.publish is not None and rule.publish.to != "repository"
    if rule.postmortem_repo is not None:
        rows.append(("postmortem_repo", rule.postmortem_repo + (" (unused: the draft is a page)" if a_page else "")))
    if rule.publish is not None and not a_page:
        rows.append(("publish", "a pull request (the default)"))
    elif rule.publish is not None:
        rows.append(
            ("publish", f"a page through Devin's {integration(rule.publish)} integration: {page(rule.publish)}")
        )
    if rule.action_items_to is not None:
        rows.append(("action_items_to", f"a ticket per action item in {tracker_words(rule.action_items_to)}"))
    return rows


def try_payload(path: str, routing: Routing, template: bool) -> bool:
    """Print where one payload is routed; False when it is not a webhook body the function accepts."""
    raw = _read(path)
    try:
        facts = read_facts(raw)
    except BadRequest as error:
        print(f"✗ {path}: {error} (the function answers 400)")
        return False
    if isinstance(facts, str):
        print(f"{path}: {facts}")
        return True
    facts, incident = facts
    print(f"{path}: {describe_facts(facts)}")
    for line in describe_rule(routing.route(facts), template, incident):
        print(line)
    return True


def main(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage; --help exits 0
        return 0 if exit_.code in (0, None) else 2
    try:
        if args.payloads and args.routing is None:
            raise UsageError("--try needs a ROUTING_FILE to route with")
        if args.routing is None and args.prompt_template is None:
            raise UsageError("give a ROUTING_FILE, a --prompt-template FILE, or both")
        prefix = args.prefix.rstrip("/")
        if not PREFIX_PATTERN.fullmatch(prefix):
            raise UsageError(f"--prefix {args.prefix!r} is not a parameter path such as {DEFAULT_PREFIX}")

        routing = check_routing_file(args.routing, prefix) if args.routing is not None else None
        template = check_template_file(args.prompt_template, prefix) if args.prompt_template is not None else None
        valid = (args.routing is None or routing is not None) and template is not False
        if routing is not None and args.payloads:
            for payload in args.payloads:
                valid = try_payload(payload, routing, bool(template)) and valid
            print("(routing only: the function's EVENT_TYPES, PRIORITIES and URGENCIES apply first)")
        return 0 if valid else 1
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
