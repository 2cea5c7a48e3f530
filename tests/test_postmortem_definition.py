"""One source for what a postmortem holds (issue 23): the rubric's sections (bridge/result/rubric.py) are what the
prompt asks for, each carried by fields of the result's schema, and graded by the criteria that name them. A
postmortem that follows the prompt's instructions to the letter gets full marks in the strict reading; leaving out
any graded section costs exactly its criterion."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from bridge.result.rubric import CRITERIA, SECTIONS, UNGRADED, grade
from bridge.result.schema import load_schema

from tests.support.events import api_event, payload
from tests.support.template import ROOT

GOOD = ROOT / "tests" / "samples" / "postmortem-good.md"
COMPUTED = json.loads((ROOT / "tests" / "samples" / "computed.json").read_text(encoding="utf-8"))
# Fields of the result that say where the draft is, not what it holds.
LINKS = {"pull_request_url", "document_url"}


def prompt(invoke, devin) -> str:  # noqa: ANN001 - fixtures
    answer = invoke(api_event(payload()))
    assert answer.body["status"] == "started", answer.body
    return devin.create_requests()[-1].json()["prompt"]


def asked_sections(text: str) -> list[str]:
    """The sections the prompt's instructions name, in their order."""
    flat = " ".join(text.split())
    (listed,) = re.findall(
        r"with these sections, each a heading of its own, in this order, each filled in: (.*?)\.", flat
    )
    return [name.strip() for name in listed.split(", ")]


def test_the_prompt_asks_for_the_rubrics_sections_in_their_order(secrets, invoke, devin) -> None:
    assert asked_sections(prompt(invoke, devin)) == [section.name for section in SECTIONS.values()]


def test_every_section_is_carried_by_fields_of_the_schema_and_every_field_by_a_section() -> None:
    properties = set(load_schema()["properties"])
    fields = {field for section in SECTIONS.values() for field in section.fields}

    assert all(section.fields for section in SECTIONS.values())
    assert fields <= properties, fields - properties
    assert properties - fields == LINKS


def test_every_section_is_graded_by_a_criterion_or_says_why_not() -> None:
    graded = {section.key for rule in CRITERIA for section in rule.sections}

    assert graded | set(UNGRADED) == set(SECTIONS)
    assert not graded & set(UNGRADED)
    assert all(len(why) > 30 for why in UNGRADED.values())


def _sections_of(markdown: str) -> dict[str, str]:
    """The good sample's `## ` sections by heading (its preface under "")."""
    parts: dict[str, str] = {}
    heading = ""
    for line in markdown.splitlines(keepends=True):
        if line.startswith("## "):
            heading = line[3:].strip()
            parts[heading] = ""
        else:
            parts[heading] = parts.get(heading, "") + line
    return parts


def letter_of_the_prompt(names: list[str], leave_out: str | None = None) -> str:
    """A postmortem that follows the prompt to the letter: every section it names, as a heading of its own, in its
    order, filled in (with the good sample's content)."""
    sample = _sections_of(GOOD.read_text(encoding="utf-8"))
    sample["Timeline"] = sample.pop("Timeline (UTC)")
    sample["Evidence gaps"] = "\nNone: every integration and repository answered.\n\n"
    parts = [sample[""]]
    for name in names:
        if name != leave_out:
            parts.append(f"## {name}\n{sample[name]}")
    return "".join(parts)


@pytest.fixture
def names(secrets, invoke, devin) -> list[str]:  # noqa: ANN001 - fixtures
    return asked_sections(prompt(invoke, devin))


def test_a_postmortem_that_follows_the_prompt_to_the_letter_gets_full_marks_in_the_strict_reading(names) -> None:
    graded = grade(letter_of_the_prompt(names), computed=COMPUTED, strict=True)

    assert graded.passed == graded.total, [(c.key, c.why) for c in graded.criteria if not c.passed]


@pytest.mark.parametrize("section", list(SECTIONS.values()), ids=list(SECTIONS))
def test_leaving_out_a_section_the_prompt_asks_for_costs_exactly_its_criterion(names, section: Any) -> None:
    graded = grade(letter_of_the_prompt(names, leave_out=section.name), computed=COMPUTED, strict=True)

    failed = {criterion.key for criterion in graded.criteria if not criterion.passed}
    assert failed == {rule.key for rule in CRITERIA if section in rule.sections}
