"""The structured result (issue 14, part 1): the schema kept in the repository, on every create request Devin gets
(whatever routing and templates say), a rule's own schema only when it keeps what the bridge reads, and how a
result that comes back is judged and kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from bridge.result import schema as results

from tests.conftest import put_parameter
from tests.support.events import api_event, incident, payload
from tests.support.results import valid_result
from tests.support.template import ROOT

SCHEMA_FILE = ROOT / "handler" / "bridge" / "result" / "postmortem.schema.json"
EXAMPLE_RULE_SCHEMA = "customer-facing.schema.json"


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def without_comments(value: Any) -> Any:
    """A schema as the bridge sends it: the maintainers' $comments taken out."""
    if isinstance(value, dict):
        return {key: without_comments(child) for key, child in value.items() if key != "$comment"}
    if isinstance(value, list):
        return [without_comments(child) for child in value]
    return value


def comments(value: Any) -> int:
    if isinstance(value, dict):
        return ("$comment" in value) + sum(comments(child) for child in value.values())
    if isinstance(value, list):
        return sum(comments(child) for child in value)
    return 0


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from [child] if key == "$ref" else refs(child)
    elif isinstance(value, list):
        for child in value:
            yield from refs(child)


# --- the schema file -----------------------------------------------------------------------------------------


def test_the_schema_is_valid_draft_7_under_64_kb_and_self_contained() -> None:
    document = schema()

    jsonschema.Draft7Validator.check_schema(document)
    assert document["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert len(json.dumps(document, separators=(",", ":")).encode()) < 64 * 1024
    assert all(ref.startswith("#/") for ref in refs(document))
    assert results.schema_problem(document) is None


def test_the_schema_requires_exactly_summary_root_cause_and_action_items() -> None:
    document = schema()

    assert sorted(document["required"]) == ["action_items", "root_cause", "summary"]
    root = document["properties"]["root_cause"]
    assert sorted(root["required"]) == ["confidence", "evidence", "statement"]
    assert root["properties"]["confidence"]["enum"] == ["confirmed", "likely", "hypothesis"]
    item = document["properties"]["action_items"]["items"]
    assert sorted(item["required"]) == ["owner", "priority", "title", "type", "verification"]
    assert item["properties"]["type"]["enum"] == ["prevent", "mitigate", "detect", "process"]
    assert item["properties"]["priority"]["enum"] == ["P0", "P1", "P2", "P3"]


def test_the_three_required_fields_make_a_valid_result_with_one_action_item_and_a_hypothesis_without_evidence():
    item = valid_result()["action_items"][0]
    minimal = {
        "summary": "s",
        "root_cause": {"statement": "r", "confidence": "hypothesis", "evidence": []},
        "action_items": [item],
    }

    jsonschema.Draft7Validator(schema()).validate(minimal)
    jsonschema.Draft7Validator(schema()).validate(valid_result())
    assert results.validation_error(minimal) is None
    assert results.validation_error(valid_result()) is None


@pytest.mark.parametrize(
    ("root_cause", "action_items", "words"),
    [
        ({"statement": "r", "confidence": "confirmed", "evidence": []}, "one", "evidence must contain at least 1"),
        ({"statement": "r", "confidence": "likely", "evidence": []}, "one", "evidence must contain at least 1"),
        ({"statement": "r", "confidence": "hypothesis", "evidence": []}, "none", "action_items must contain at least"),
    ],
)
def test_version_2_asks_for_evidence_and_an_action_item_and_version_1_sessions_still_validate(
    root_cause: dict[str, Any], action_items: str, words: str
) -> None:
    items = [valid_result()["action_items"][0]] if action_items == "one" else []
    loose = {"summary": "s", "root_cause": root_cause, "action_items": items}

    assert words in (results.validation_error(loose) or "")
    assert words in (results.validation_error(loose, results.DEFAULT_SCHEMA, 2) or "")
    # A session created with version 1 is checked against version 1: not marked invalid by the upgrade.
    assert results.validation_error(loose, results.DEFAULT_SCHEMA, 1) is None


def test_the_schema_sent_to_devin_carries_no_maintainers_comment() -> None:
    assert comments(schema()) > 0
    assert comments(results.load_schema()) == 0
    assert results.load_schema() == without_comments(schema())
    assert "$comment" not in json.dumps(results.load_schema(results.DEFAULT_SCHEMA, 1))


def test_the_optional_parts_the_issue_names_are_in_the_schema() -> None:
    properties = schema()["properties"]

    for name in (
        "impact",
        "detection",
        "contributing_factors",
        "changes",
        "went_well",
        "went_poorly",
        "got_lucky",
        "recurrence",
        "pull_request_url",
        "timeline",
        "response",
    ):
        assert name in properties
    assert properties["changes"]["items"]["properties"]["verdict"]["enum"] == [
        "implicated",
        "ruled_out",
        "not_inspected",
    ]
    assert {"value", "unit", "estimate"} <= set(properties["impact"]["properties"]["quantity"]["required"])


@pytest.mark.parametrize(
    ("broken", "words"),
    [
        (valid_result(summary=None), "summary"),
        (valid_result(root_cause={"statement": "x", "confidence": "sure", "evidence": []}), "confidence"),
        (
            valid_result(
                action_items=[{"title": "t", "type": "prevent", "priority": "P9", "owner": "o", "verification": "v"}]
            ),
            "priority",
        ),
        (
            valid_result(action_items=[{"title": "t", "type": "prevent", "priority": "P1", "owner": "o"}]),
            "verification",
        ),
        (valid_result(impact={"started_at": "14 March, 09:12"}), "started_at"),
        ("a postmortem as text", "object"),
    ],
    ids=["no summary", "bad confidence", "bad priority", "no verification", "time not UTC", "not an object"],
)
def test_an_invalid_result_gets_its_first_error_in_one_capped_line(broken: Any, words: str) -> None:
    error = results.validation_error(broken)

    assert error is not None
    assert words in error
    assert "\n" not in error and len(error) <= results.ERROR_LIMIT


def test_a_huge_result_is_not_read() -> None:
    huge = valid_result(went_well=["x" * 400] * 1000)

    assert "at most" in (results.validation_error(huge) or "")


def test_the_compact_copy_keeps_the_summary_root_cause_and_action_items_capped() -> None:
    many = [
        {"title": f"item {n} " + "t" * 400, "type": "mitigate", "priority": "P2", "owner": "o", "verification": "v"}
        for n in range(30)
    ]

    kept = results.compact(valid_result(action_items=many, summary="s" * 3000))

    assert len(kept["summary"]) == results.SUMMARY_LIMIT
    assert kept["root_cause"] == {"statement": valid_result()["root_cause"]["statement"], "confidence": "likely"}
    assert len(kept["action_items"]) == results.MAX_ITEMS and kept["action_items_omitted"] == 10
    assert set(kept["action_items"][0]) == {"title", "type", "priority", "owner"}
    assert len(kept["action_items"][0]["title"]) == results.ITEM_TEXT_LIMIT
    assert kept["pull_request_url"] == valid_result()["pull_request_url"]
    assert len(json.dumps(kept)) < 16_000


def test_cited_ids_the_data_block_never_held_are_found_and_links_are_not_checked() -> None:
    cited, unknown = results.evidence_check(valid_result(), ["Q02JTSNZWHSEKV", "RNAJ8DLJGWHBXXYX1CC5G50C9O"])

    # Q1RPVEX3LK98BU (twice) is cited but not known here; the pull request link is not an id.
    assert cited == 4
    assert unknown == ["Q1RPVEX3LK98BU"]


# --- on every create request -----------------------------------------------------------------------------------


def created_body(invoke, devin) -> dict[str, Any]:  # noqa: ANN001 - fixtures
    answer = invoke(api_event(payload()))
    assert answer.body["status"] == "started", answer.body
    return devin.create_requests()[-1].json()


def test_a_create_request_without_any_new_setting_carries_the_schema_and_todays_fields(secrets, invoke, devin):
    body = created_body(invoke, devin)

    assert set(body) == {"prompt", "title", "tags", "structured_output_schema"}
    assert body["structured_output_schema"] == without_comments(schema())
    assert "fill in the structured output" in body["prompt"]


def test_the_prompt_says_what_the_result_needs_outside_the_data_block(secrets, invoke, devin) -> None:
    prompt = created_body(invoke, devin)["prompt"]
    outside = prompt.split("</pagerduty-incident>", 1)[1]

    for words in (
        'Cite an entry of the data block by its "id"; cite anything outside it',
        "Keep the trigger (root_cause) apart from the contributing factors",
        "Stay blameless",
        "Check the earlier postmortems under docs/postmortems/",
    ):
        assert words in outside


def test_a_prompt_template_cannot_remove_the_schema_or_what_the_result_needs(secrets, invoke, devin) -> None:
    put_parameter("prompt-template", "Write a postmortem for ${service}. Nothing else.", secure=False)

    body = created_body(invoke, devin)

    assert "Write a postmortem for Checkout API. Nothing else." in body["prompt"]
    assert body["structured_output_schema"] == without_comments(schema())
    assert "fill in the structured output" in body["prompt"]


def routing(*rules: dict[str, Any]) -> None:
    put_parameter("routing", json.dumps({"rules": list(rules)}), secure=False)


def test_a_rule_with_its_own_instructions_still_sends_the_schema(secrets, invoke, devin) -> None:
    routing({"name": "all", "instructions": "Only list what changed.", "postmortem_path": "pm/checkout/"})

    body = created_body(invoke, devin)

    assert body["structured_output_schema"] == without_comments(schema())
    assert "Check the earlier postmortems under pm/checkout/" in body["prompt"]


def test_a_rule_may_name_its_own_schema_that_keeps_the_required_part(secrets, invoke, devin) -> None:
    routing({"name": "customer facing", "output_schema": EXAMPLE_RULE_SCHEMA})

    sent = created_body(invoke, devin)["structured_output_schema"]

    rule_file = json.loads((results.RULE_SCHEMA_DIR / EXAMPLE_RULE_SCHEMA).read_text(encoding="utf-8"))
    assert sent == without_comments(rule_file)
    assert "customer_communication" in sent["properties"]
    assert sent["required"][:3] == ["summary", "root_cause", "action_items"]


@pytest.fixture
def rule_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """handler/schemas/ in a temporary folder, for schemas that must not ship."""
    monkeypatch.setattr(results, "RULE_SCHEMA_DIR", tmp_path)
    results.load_schema.cache_clear()
    yield tmp_path
    results.load_schema.cache_clear()


def write_schema(folder: Path, name: str, document: dict[str, Any]) -> None:
    (folder / name).write_text(json.dumps(document), encoding="utf-8")


def without_required(name: str) -> dict[str, Any]:
    document = schema()
    document["required"] = [field for field in document["required"] if field != name]
    return document


def with_root_cause_as_text() -> dict[str, Any]:
    document = schema()
    document["properties"]["root_cause"] = {"type": "string"}
    return document


def with_external_ref() -> dict[str, Any]:
    document = schema()
    document["properties"]["extra"] = {"$ref": "https://example.com/schema.json"}
    return document


def too_big() -> dict[str, Any]:
    document = schema()
    document["properties"]["padding"] = {"description": "x" * (65 * 1024)}
    return document


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (without_required("action_items"), "must require action_items"),
        (with_root_cause_as_text(), 'must keep "root_cause"'),
        (with_external_ref(), "external $ref"),
        (too_big(), "Devin takes at most 65536"),
        ({**schema(), "$schema": "https://json-schema.org/draft/2020-12/schema"}, "Draft 7"),
    ],
    ids=["drops a required field", "changes a required field", "external ref", "over 64 KB", "not draft 7"],
)
def test_a_rule_schema_that_loses_what_the_bridge_reads_is_refused(rule_schemas: Path, document, words) -> None:
    from bridge.devin.routing import RoutingError, parse_routing

    write_schema(rule_schemas, "team.schema.json", document)

    with pytest.raises(RoutingError) as refused:
        parse_routing(json.dumps({"rules": [{"name": "team", "output_schema": "team.schema.json"}]}))

    assert 'rules[0] "team": output_schema: team.schema.json' in str(refused.value)
    assert words in str(refused.value)


def test_a_rule_schema_that_does_not_exist_is_refused_by_name(rule_schemas: Path) -> None:
    from bridge.devin.routing import RoutingError, parse_routing

    with pytest.raises(RoutingError, match=r"output_schema: no file missing\.schema\.json in handler/schemas/"):
        parse_routing(json.dumps({"rules": [{"name": "team", "output_schema": "missing.schema.json"}]}))


def test_a_rule_schema_path_outside_the_folder_is_refused_by_the_routing_schema() -> None:
    from bridge.devin.routing import RoutingError, parse_routing

    with pytest.raises(RoutingError, match="output_schema"):
        parse_routing(json.dumps({"rules": [{"name": "team", "output_schema": "../bridge/postmortem.schema.json"}]}))


def test_check_routing_refuses_a_rule_schema_without_the_required_part(rule_schemas: Path, tmp_path: Path) -> None:
    from scripts import check_routing

    write_schema(rule_schemas, "team.schema.json", without_required("summary"))
    document = tmp_path / "routing.json"
    document.write_text(json.dumps({"rules": [{"name": "team", "output_schema": "team.schema.json"}]}))

    assert check_routing.main([str(document)]) == 1


def test_the_session_remembers_its_schema_and_the_figures_when_it_is_followed(
    pagerduty_reads, pagerduty, invoke, devin
) -> None:
    from local.pagerduty_standin import sample_record
    from tests.conftest import ledger_item

    routing({"name": "customer facing", "output_schema": EXAMPLE_RULE_SCHEMA})
    pagerduty.add_incident("QSCHEMA1", **sample_record("QSCHEMA1"))

    assert invoke(api_event(incident("QSCHEMA1"))).body["status"] == "started"

    item = ledger_item("QSCHEMA1")
    assert item["result_schema"] == EXAMPLE_RULE_SCHEMA
    assert item["computed"]["seconds_to_first_ack"] > 0
    assert "Q02JTSNZWHSEKV" in item["evidence_ids"]
