"""The routing document and prompt templates: which rule an incident meets, and how a broken one is reported."""

from __future__ import annotations

import json
import string
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from bridge.devin.prompt import incident_tag
from bridge.devin.routing import (
    DEFAULT_POSTMORTEM_PATH,
    PLACEHOLDERS,
    Facts,
    Routing,
    RoutingError,
    check_template,
    matches,
    parse_routing,
)

ROOT = Path(__file__).resolve().parents[1]

# The sample P1 resolve (events/payloads/incident-resolved-p1.json) as the routing sees it.
CHECKOUT_P1 = Facts(
    service_id="PCK8V2Q",
    service_name="Checkout API",
    team_ids=("PTM3K9D",),
    team_names=("Payments Platform",),
    priority="P1",
    urgency="high",
    event_type="incident.resolved",
)


def facts(**changes: Any) -> Facts:
    return replace(CHECKOUT_P1, **changes)


def routing(*rules: dict[str, Any]) -> Routing:
    return parse_routing(json.dumps({"rules": list(rules)}))


def rejection(document: Any) -> str:
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(RoutingError) as caught:
        parse_routing(text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def routed_name(rules: Routing, incident: Facts = CHECKOUT_P1) -> str | None:
    rule = rules.route(incident)
    return rule.name if rule else None


# Which rule decides


def test_the_first_matching_rule_decides() -> None:
    broad = {"name": "everything Checkout", "match": {"service": ["Checkout*"]}}
    narrow = {"name": "Checkout P1", "match": {"service": ["Checkout API"], "priority": ["P1"]}}

    assert routed_name(routing(broad, narrow)) == "everything Checkout"
    assert routed_name(routing(narrow, broad)) == "Checkout P1"


def test_an_incident_that_no_rule_matches_gets_no_rule() -> None:
    rules = routing({"name": "search", "match": {"service": ["Search API"]}})

    assert rules.route(CHECKOUT_P1) is None


def test_an_empty_document_is_valid_and_routes_nothing() -> None:
    rules = parse_routing('{"rules": []}')

    assert rules.rules == ()
    assert rules.route(CHECKOUT_P1) is None


def test_a_rule_without_match_matches_every_incident() -> None:
    rules = routing({"name": "default", "repos": ["acme/monorepo"]})

    assert routed_name(rules, facts(service_name="", service_id="", team_ids=(), team_names=(), priority=None)) == (
        "default"
    )


@pytest.mark.parametrize("pattern", ["PCK8V2Q", "Checkout API"])
def test_service_matches_by_id_or_by_name(pattern: str) -> None:
    assert routed_name(routing({"name": "checkout", "match": {"service": [pattern]}})) == "checkout"


@pytest.mark.parametrize("pattern", ["PTM3K9D", "Payments Platform", "PSR4E2X", "SRE"])
def test_team_matches_any_team_of_the_incident_by_id_or_by_name(pattern: str) -> None:
    two_teams = facts(team_ids=("PTM3K9D", "PSR4E2X"), team_names=("Payments Platform", "SRE"))

    assert routed_name(routing({"name": "team", "match": {"team": [pattern]}}), two_teams) == "team"


@pytest.mark.parametrize(
    ("key", "matching", "other"),
    [
        ("service", "Checkout API", "Search API"),
        ("team", "Payments Platform", "Search"),
        ("priority", "P1", "P2"),
        ("urgency", "high", "low"),
        ("event_type", "incident.resolved", "incident.triggered"),
    ],
)
def test_each_match_key_selects_on_its_own_fact(key: str, matching: str, other: str) -> None:
    assert routed_name(routing({"name": "it", "match": {key: [matching]}})) == "it"
    assert routed_name(routing({"name": "it", "match": {key: [other]}})) is None


def test_any_pattern_of_a_key_may_match() -> None:
    assert routed_name(routing({"name": "it", "match": {"priority": ["P2", "P1"]}})) == "it"


@pytest.mark.parametrize("key", ["service", "team", "priority", "urgency", "event_type"])
def test_every_key_present_must_match(key: str) -> None:
    everything = {
        "service": ["Checkout API"],
        "team": ["Payments Platform"],
        "priority": ["P1"],
        "urgency": ["high"],
        "event_type": ["incident.resolved"],
    }
    assert routed_name(routing({"name": "all", "match": everything})) == "all"

    one_wrong = {**everything, key: ["something else"]}
    assert routed_name(routing({"name": "all", "match": one_wrong})) is None


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("staging-*", "staging-checkout", True),
        ("staging-*", "prod-checkout", False),
        ("*API*", "Checkout API v2", True),
        ("P?", "P1", True),
        ("P?", "P10", False),
        ("P?", "P", False),
        # Brackets are literal: PagerDuty names often carry them.
        ("Checkout [EU]", "Checkout [EU]", True),
        ("Checkout [EU]", "Checkout E", False),
        ("*", "anything at all", True),
    ],
)
def test_glob_patterns(pattern: str, value: str, expected: bool) -> None:
    assert matches([pattern], value) is expected


@pytest.mark.parametrize(
    ("pattern", "value"),
    [("checkout api", "Checkout API"), ("CHECKOUT*", "Checkout API"), ("p1", "P1"), ("High", "high")],
)
def test_patterns_ignore_case(pattern: str, value: str) -> None:
    assert matches([pattern], value)


def test_a_missing_value_matches_no_pattern_not_even_a_star() -> None:
    assert not matches(["*"], None)
    assert not matches(["*"], "")
    assert not matches(["*"])
    assert matches(["*"], None, "Checkout API")


def test_a_priority_star_means_the_incident_has_a_priority() -> None:
    rules = routing(
        {"name": "has a priority", "match": {"priority": ["*"]}},
        {"name": "no priority", "match": {"urgency": ["high"]}},
    )

    assert routed_name(rules, facts(priority="P3")) == "has a priority"
    assert routed_name(rules, facts(priority=None)) == "no priority"


def test_a_team_pattern_does_not_match_an_incident_without_teams() -> None:
    rules = routing({"name": "any team", "match": {"team": ["*"]}})

    assert routed_name(rules, facts(team_ids=(), team_names=())) is None


def test_a_skip_rule_routes_the_incident_to_skip() -> None:
    rules = routing(
        {"name": "staging noise", "match": {"service": ["staging-*"]}, "skip": True},
        {"name": "everything else", "playbook_id": "playbook-1"},
    )

    skipped = rules.route(facts(service_name="staging-checkout"))

    assert skipped is not None and skipped.name == "staging noise" and skipped.skip
    assert skipped.session_fields() == {}
    assert routed_name(rules) == "everything else"


# What a rule carries


def test_a_rule_carries_what_the_session_gets() -> None:
    rule = routing(
        {
            "name": "payments P1",
            "match": {"service": ["Checkout API", "PCK8V2Q"], "priority": ["P1"]},
            "playbook_id": "playbook-abc",
            "knowledge_ids": ["note-1", "note-2"],
            "repos": ["acme/checkout"],
            "max_acu_limit": 20,
            "tags": ["team:payments"],
            "postmortem_path": "docs/postmortems/payments/",
            "instructions": "Write it up for ${service}.",
        }
    ).rules[0]

    assert rule.match == {"service": ("Checkout API", "PCK8V2Q"), "priority": ("P1",)}
    assert not rule.skip
    assert rule.tags == ("team:payments",)
    assert rule.postmortem_path == "docs/postmortems/payments/"
    assert rule.instructions == "Write it up for ${service}."
    assert rule.session_fields() == {
        "playbook_id": "playbook-abc",
        "knowledge_ids": ["note-1", "note-2"],
        "repos": ["acme/checkout"],
        "max_acu_limit": 20,
    }


def test_a_rule_sends_only_the_fields_it_sets() -> None:
    rule = routing({"name": "bare"}).rules[0]

    assert rule.session_fields() == {}
    assert rule.tags == ()
    assert rule.postmortem_path is None and rule.instructions is None
    assert DEFAULT_POSTMORTEM_PATH == "docs/postmortems/"


def test_an_empty_knowledge_list_is_sent_as_none_rather_left_out() -> None:
    # In Devin's API an absent knowledge_ids means all knowledge and [] means none.
    rule = routing({"name": "no knowledge", "knowledge_ids": [], "repos": []}).rules[0]

    assert rule.session_fields() == {"knowledge_ids": [], "repos": []}


def test_a_whole_number_written_with_a_decimal_point_is_sent_as_an_integer() -> None:
    limit = routing({"name": "x", "max_acu_limit": 20.0}).rules[0].session_fields()["max_acu_limit"]

    assert limit == 20 and isinstance(limit, int)


# A broken document says what is wrong and where


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{'rules': []}", "routing: not JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
        (
            '{"rules": [\n  {"name": "a"}\n  {"name": "b"}\n]}',
            "routing: not JSON: Expecting ',' delimiter (line 3, column 3)",
        ),
        ([], 'routing: must be the routing document: an object with a "rules" array, not an array'),
        ({}, 'routing: "rules" is missing'),
        ({"rule": []}, 'routing: unknown key "rule" (did you mean "rules"?)'),
        ({"rules": {"name": "a"}}, "routing: rules: must be an array of rules, tried in order, not an object"),
        ({"rules": ["payments"]}, "rules[0]: must be a rule object, not a string"),
        ({"rules": [{"match": {}}]}, 'rules[0]: "name" is missing'),
        ({"rules": [{"nme": "payments"}]}, 'rules[0]: unknown key "nme" (did you mean "name"?)'),
        ({"rules": [{"name": ""}]}, "rules[0]: name: must not be empty"),
        ({"rules": [{"name": 7}]}, "rules[0]: name: must be a name on one line that neither starts nor ends"),
    ],
)
def test_a_broken_document_is_reported_where_it_breaks(document: Any, message: str) -> None:
    assert rejection(document).startswith(message)


def test_a_typo_in_a_rule_key_names_the_rule_and_suggests_the_key() -> None:
    message = rejection({"rules": [{"name": "ok"}, {"name": "payments P1", "playbook": "playbook-1"}]})

    assert message == 'rules[1] "payments P1": unknown key "playbook" (did you mean "playbook_id"?)'


def test_a_typo_in_a_match_key_names_the_rule_and_suggests_the_key() -> None:
    message = rejection({"rules": [{"name": "payments", "match": {"services": ["Checkout API"]}}]})

    assert message == 'rules[0] "payments": match: unknown key "services" (did you mean "service"?)'


def test_an_unknown_key_without_a_near_miss_lists_the_known_ones() -> None:
    message = rejection({"rules": [{"name": "a", "owner": "me"}]})

    assert message.startswith('rules[0] "a": unknown key "owner" (expected one of: "action_items_to", "instructions"')


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": {"service": "Checkout API"}}, "match.service: must be a non-empty array of patterns"),
        ({"match": {"team": [7]}}, "match.team[0]: must be a pattern on one line"),
        ({"match": {"priority": []}}, "match.priority: must not be empty"),
        ({"match": {"urgency": [""]}}, "match.urgency[0]: must not be empty"),
        ({"match": {"service": ["Checkout API "]}}, "match.service[0]: must be a pattern on one line"),
        ({"match": ["service"]}, "match: must be an object of patterns by key, not an array"),
        ({"skip": "yes"}, "skip: must be true (ignore matching incidents) or false, not a string"),
        ({"playbook_id": 5}, "playbook_id: must be an id without spaces, not 5"),
        ({"playbook_id": ""}, "playbook_id: must not be empty"),
        ({"knowledge_ids": "note-1"}, "knowledge_ids: must be an array of knowledge ids ([] for none), not a string"),
        ({"repos": ["acme/checkout", "acme checkout"]}, "repos[1]: must be an id without spaces"),
        ({"max_acu_limit": "20"}, "max_acu_limit: must be a whole number of ACUs from 1 to 1000, not a string"),
        ({"max_acu_limit": 2.5}, "max_acu_limit: must be a whole number of ACUs from 1 to 1000, not 2.5"),
        ({"max_acu_limit": True}, "max_acu_limit: must be a whole number of ACUs from 1 to 1000, not true"),
        ({"max_acu_limit": 0}, "max_acu_limit: must be at least 1, not 0"),
        ({"max_acu_limit": 20_000}, "max_acu_limit: must be at most 1000, not 20000"),
        ({"tags": "team:payments"}, "tags: must be an array of at most 47 tags"),
        ({"tags": [f"t{n}" for n in range(48)]}, "tags: has too many items (48, at most 47)"),
        ({"tags": [None]}, "tags[0]: must be a tag on one line"),
        (
            {"postmortem_path": "docs/postmortems/payments"},
            'postmortem_path: must be a relative folder path ending in "/"',
        ),
        ({"postmortem_path": "/docs/postmortems/"}, "postmortem_path: must be a relative folder path"),
        ({"postmortem_path": "docs/../secrets/"}, "postmortem_path: must be a relative folder path"),
        ({"postmortem_path": "docs/post mortems/"}, "postmortem_path: must be a relative folder path"),
        ({"instructions": ["step 1"]}, "instructions: must be the instructions' text"),
        ({"instructions": "  \n "}, "instructions: must be the instructions' text (not blank"),
        ({"instructions": "x" * 20_001}, "instructions: is too long (20001 characters, at most 20000)"),
    ],
)
def test_a_wrong_field_names_the_rule_and_the_field(rule: dict[str, Any], message: str) -> None:
    document = {"rules": [{"name": "first"}, {"name": "payments P1", **rule}]}

    assert rejection(document).startswith(f'rules[1] "payments P1": {message}')


def test_a_rule_may_not_forge_the_tag_that_finds_an_incidents_session() -> None:
    message = rejection({"rules": [{"name": "x", "tags": ["team:payments", incident_tag("Q2CKYRLH85UNN4")]}]})

    assert message.startswith('rules[0] "x": tags[1]: must be a tag on one line')
    assert '"pagerduty-incident:" tag' in message


@pytest.mark.parametrize(
    "field",
    ["playbook_id", "knowledge_ids", "repos", "max_acu_limit", "tags", "postmortem_path", "instructions"],
)
def test_a_skip_rule_may_not_carry_session_fields(field: str) -> None:
    value = {
        "playbook_id": "playbook-1",
        "knowledge_ids": [],
        "repos": ["acme/x"],
        "max_acu_limit": 5,
        "tags": ["t"],
        "postmortem_path": "docs/",
        "instructions": "do it",
    }[field]

    message = rejection({"rules": [{"name": "staging noise", "skip": True, field: value}]})

    assert (
        message
        == f'rules[0] "staging noise": {field}: not allowed with "skip": true (a skipped incident starts no session)'
    )


def test_a_rule_with_skip_false_may_carry_session_fields() -> None:
    rule = routing({"name": "kept", "skip": False, "playbook_id": "playbook-1"}).rules[0]

    assert not rule.skip and rule.playbook_id == "playbook-1"


def test_rule_names_must_differ_ignoring_case() -> None:
    message = rejection({"rules": [{"name": "Payments"}, {"name": "other"}, {"name": "payments"}]})

    assert message == 'rules[2] "payments": name: already used by rules[0] (names must differ, ignoring case)'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"rules": [], "rules": [{"name": "a"}]}', 'routing: key "rules" appears twice'),
        ('{"rules": [{"name": "a", "tags": ["x"], "tags": ["y"]}]}', 'rules[0] "a": key "tags" appears twice'),
        ('{"rules": [{"name": "a", "match": {"team": ["x"], "team": ["y"]}}]}', 'rules[0] "a": match: key "team"'),
    ],
)
def test_a_key_written_twice_is_reported_instead_of_the_last_one_winning(text: str, message: str) -> None:
    assert rejection(text).startswith(message)


@pytest.mark.parametrize(
    "document",
    [
        {"rules": [{"name": "n" * 10_000}]},
        {"rules": [{"name": "a", "k" * 10_000: 1}]},
        {"rules": [{"name": "a", "instructions": "${" + "p" * 10_000 + "}"}]},
        {"rules": [{"name": "a", "max_acu_limit": 10**300}]},
        {"rules": [{"name": "a" * 90, "b" * 90: 1}]},
    ],
)
def test_a_message_never_repeats_much_of_the_document(document: dict[str, Any]) -> None:
    message = rejection(document)

    longest_echo = max(len(run) for run in message.replace("…", " ").replace('"', " ").split())
    assert longest_echo <= 41, message
    assert len(message) < 300


# Templates


def test_a_template_may_use_every_placeholder() -> None:
    text = "\n".join(f"{name}: ${{{name}}}" for name in sorted(PLACEHOLDERS)) + "\nand $service unbraced"

    assert check_template(text) == text
    assert string.Template(text).substitute(dict.fromkeys(PLACEHOLDERS, "v")).endswith("and v unbraced")


def test_the_placeholders_are_the_documented_ones() -> None:
    assert {
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
    } == PLACEHOLDERS


def test_a_double_dollar_is_a_literal_dollar() -> None:
    text = "Budget: $$5 per incident, see ${title}"

    assert check_template(text) == text
    assert string.Template(text).substitute(title="T") == "Budget: $5 per incident, see T"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "Look at ${servce}",
            "prompt template: unknown placeholder ${servce} at line 1, column 9 (did you mean ${service}?)",
        ),
        (
            "Line one\n  see ${Service}",
            "prompt template: unknown placeholder ${Service} at line 2, column 7 (did you mean",
        ),
        ("Open $incident_url", "prompt template: unknown placeholder ${incident_url} at line 1, column 6"),
        (
            "Use $HOME",
            "prompt template: unknown placeholder ${HOME} at line 1, column 5 (expected one of: ${created_at}",
        ),
    ],
)
def test_an_unknown_placeholder_is_rejected_by_name(text: str, message: str) -> None:
    with pytest.raises(RoutingError) as caught:
        check_template(text)

    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("Spend at most $5", "line 1, column 15"),
        ("Open ${service", "line 1, column 6"),
        ("Open ${ service }", "line 1, column 6"),
        ("Step 1\nStep 2: ${incident-number}", "line 2, column 9"),
        ("ends with $", "line 1, column 11"),
    ],
)
def test_a_dollar_that_starts_no_placeholder_is_rejected_where_it_is(text: str, where: str) -> None:
    with pytest.raises(RoutingError) as caught:
        check_template(text)

    assert str(caught.value) == (
        f'prompt template: "$" at {where} starts no placeholder: write ${{name}} for a placeholder '
        'and "$$" for a literal "$"'
    )


@pytest.mark.parametrize(("text", "message"), [("", "is blank"), (" \n\t", "is blank"), ("x" * 20_001, "too long")])
def test_a_blank_or_oversized_template_is_rejected(text: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        check_template(text)


def test_a_rules_instructions_are_checked_as_a_template() -> None:
    message = rejection({"rules": [{"name": "payments P1", "instructions": "1. Read the logs of ${servce}."}]})

    assert message == (
        'rules[0] "payments P1": instructions: unknown placeholder ${servce} at line 1, column 21 '
        "(did you mean ${service}?)"
    )


def test_a_rules_instructions_with_a_stray_dollar_are_rejected() -> None:
    message = rejection({"rules": [{"name": "a", "instructions": "Stay under $20."}]})

    assert message.startswith('rules[0] "a": instructions: "$" at line 1, column 12 starts no placeholder')


# Cost


def test_importing_the_module_neither_loads_the_validator_nor_reads_the_schema() -> None:
    # Most cold starts never see a routing document: they must not pay for Powertools' validation import.
    probe = (
        "import sys; import bridge.devin.routing as r; "
        "print('aws_lambda_powertools.utilities.validation' in sys.modules, 'fastjsonschema' in sys.modules, "
        "r._schema.cache_info().currsize)"
    )

    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", probe], cwd=ROOT / "handler", capture_output=True, text=True, timeout=30, check=True
    )

    assert result.stdout.split() == ["False", "False", "0"]
