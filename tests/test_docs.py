"""The README and every page in docs/ point at what exists: every alarm's runbook section, every relative link (and
its heading, for a link into a Markdown file), and every `scripts/` command they name. The README stays short."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.template import ROOT, load_template

README = ROOT / "README.md"
RUNBOOK = ROOT / "docs" / "runbook.md"
DOCS = (README, *sorted((ROOT / "docs").glob("*.md")))
# What a stranger reads in five minutes (issue 13): everything else lives in docs/.
README_MAX_LINES = 300

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) outside code; the text may hold `code` but no brackets.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_RUNBOOK_LINK = re.compile(r"Runbook: docs/runbook\.md#([\w-]+)")
_SCRIPT = re.compile(r"\bscripts/([A-Za-z0-9_.-]*[A-Za-z0-9_])")


def _prose(text: str) -> Iterator[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation dropped, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2… for repeated ones."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    """Every link target in the file's prose that is not a URL with a scheme (http:, mailto:…)."""
    targets = []
    for line in _prose(path.read_text(encoding="utf-8")):
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                targets.append(target)
    return targets


def test_the_anchors_are_githubs() -> None:
    assert github_anchor("`sam local invoke` and `sam local start-api` (needs Docker)") == (
        "sam-local-invoke-and-sam-local-start-api-needs-docker"
    )
    assert github_anchor("PagerDuty's record and notes") == "pagerdutys-record-and-notes"
    assert github_anchor("Deploy → Local") == "deploy--local"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_every_alarms_runbook_link_has_its_section(template: dict[str, Any]) -> None:
    linked = {
        name: _RUNBOOK_LINK.findall(resource["Properties"]["AlarmDescription"])
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    sections = anchors(RUNBOOK)

    assert linked, "template.yaml has no alarm"
    assert {name: found for name, found in linked.items() if len(found) != 1} == {}
    assert {name: found[0] for name, found in linked.items() if found[0] not in sections} == {}


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_relative_link_points_at_a_file_and_heading_that_exist(doc: Path) -> None:
    broken = []
    for target in relative_links(doc):
        where, _, anchor = target.partition("#")
        file = (doc.parent / where).resolve() if where else doc
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.relative_to(ROOT)}")

    if doc in (README, RUNBOOK):
        assert relative_links(doc), f"{doc.name} has no relative link: is the link pattern still right?"
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_script_the_docs_name_exists(doc: Path) -> None:
    named = set(_SCRIPT.findall(doc.read_text(encoding="utf-8")))

    if doc in (README, RUNBOOK):
        assert named, f"{doc.name} names no script: is the pattern still right?"
    assert sorted(name for name in named if not (ROOT / "scripts" / name).exists()) == []


def test_the_docs_pages_the_old_readme_sections_moved_to_are_all_there() -> None:
    # The README's sections moved to these pages (issue 13); links elsewhere point at them by these names.
    pages = {path.name for path in DOCS if path.parent.name == "docs"}

    assert pages >= {"deploy.md", "local.md", "configuration.md", "operating.md", "runbook.md", "performance.md"}


def test_the_readme_is_short_and_tries_it_locally_before_it_deploys() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    text = "\n".join(lines)

    assert len(lines) <= README_MAX_LINES
    assert "scripts/demo" in text and "sam deploy" in text
    assert text.index("scripts/demo") < text.index("sam deploy")


def test_the_rubrics_table_of_what_a_postmortem_holds_is_the_codes() -> None:
    from bridge.result.rubric import CRITERIA, SECTIONS, UNGRADED

    text = (ROOT / "docs" / "postmortem-rubric.md").read_text(encoding="utf-8")
    table = text.split("## What a postmortem holds", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Section")]
    expected = []
    for key, section in SECTIONS.items():
        graded = [f"`{rule.key}`" for rule in CRITERIA if section in rule.sections]
        criterion = ", ".join(graded) if graded else f"none: {UNGRADED[key]}"
        expected.append(f"| {section.name} | {criterion} | {', '.join(f'`{field}`' for field in section.fields)} |")

    assert rows == expected
