"""The rubric's default, lenient reading of postmortems people write (issue 22): each misreading found on real
postmortems, with a small document of our own that the grader before this reading got wrong; zones and clocks;
durations as people write them; "not checkable" apart from "wrong"; templates and empty documents."""

from __future__ import annotations

import pytest
from bridge.result.rubric import CRITERIA, SECTIONS, UNCHECKED, Criterion, Grade, format_grade, grade

from scripts.check_postmortem import main
from tests.support.cli import run_main, write


def criterion(graded: Grade, key: str) -> Criterion:
    return next(found for found in graded.criteria if found.key == key)


def passes(markdown: str, key: str) -> bool:
    return criterion(grade(markdown), key).passed


# Sections wherever they stand: Setext headings, bold labels, the names people give them


SETEXT = """\
Checkout outage
===============

Impact
------

About 1,200 checkouts failed (estimated from the error rate).

What worked
-----------

The page reached the on-call at once.

What didn't work
----------------

Linking the errors to the deploy took 25 minutes.

Where we got lucky
------------------

It happened at night.
"""


def test_setext_headings_open_sections() -> None:
    graded = grade(SETEXT)

    assert criterion(graded, "impact").passed, criterion(graded, "impact").why
    assert criterion(graded, "reflection").passed, criterion(graded, "reflection").why
    assert criterion(graded, "impact").lines == (7,)


BOLD_LABELS = """\
# Search outage

**Summary**: search answered 500 for an hour.

**Impact**: an estimated 1.2M queries failed.

**Trigger**: a latent bug met a sudden rise in traffic.

**Root causes**: the index had no entry for a new term, and the search backends leaked a file descriptor on each
miss, because no test searched for an unknown term. Logs: [stack traces](https://logs.example.com/q/42).
"""


def test_bold_labels_open_sections() -> None:
    graded = grade(BOLD_LABELS)

    assert criterion(graded, "impact").passed, criterion(graded, "impact").why
    assert criterion(graded, "causes").passed, criterion(graded, "causes").why


COMMON_NAMES = """\
# Billing export failed

## Root causes

The nightly export job ran out of memory because the customer table doubled after the March import.
The job loads the whole table at once, and no alert watches its memory. Evidence: job log `export-2031`.

## Trigger

The first export after the import, at 02:00 UTC.

## Resolution

The export was rerun on a larger instance and completed.

## Corrective and preventative measures

- Stream the table instead of loading it whole, so that the export no longer runs out of memory. Owner:
  billing team, tracked in #4412.
- Alert when the export's memory passes 80%. Owner: SRE, tracked in #4413.

## Lessons learned

### What worked

The rerun was a single command.

### What didn't work

Nobody looked at the failed export until the morning.

### Where we got lucky

No invoice was due that day.
"""


@pytest.mark.parametrize("key", ["causes", "action_items", "reflection"])
def test_the_section_names_people_use_are_read(key: str) -> None:
    assert passes(COMMON_NAMES, key), criterion(grade(COMMON_NAMES), key).why


DETECTION_ONLY_IN_ACTION_ITEMS = """\
# Queue backlog

## Action items

### Detection

- Alert on queue depth above 10,000, which would have caught it sooner. Owner: SRE, tracked in #88 (10:00 UTC).
"""


def test_a_detection_subheading_under_action_items_is_not_the_detection_analysis() -> None:
    graded = grade(DETECTION_ONLY_IN_ACTION_ITEMS)

    assert not criterion(graded, "detection").passed
    assert criterion(graded, "detection").why == "the Markdown does not say how it was detected, nor when"


# Response figures as people write them, checked against the document's own timeline


TIMELINE = """\
## Timeline

All times in UTC.

- 14:02 Deploy of `api@4f2c9e1` **outage begins** ([deploy log](https://ci.example.com/run/7))
- 14:09 Monitoring paged the on-call (alert `5xx-rate`)
- 15:20 Rollback of `api@4f2c9e1` finished, **outage ends** ([run](https://ci.example.com/run/8))
"""


@pytest.mark.parametrize(
    "stated",
    [
        "Duration: 1 hour 18 minutes",
        "The API was down for 1 hour and 18 minutes.",
        "It lasted 78 minutes.",
        "Errors from 14:02 to 15:20 UTC.",
        "Time to recovery: 1h 18m",
        "Time to detection: 7 minutes",
    ],
)
def test_response_figures_are_read_in_the_forms_people_write_them(stated: str) -> None:
    graded = grade(f"# API outage\n\n{stated}\n\n{TIMELINE}")

    found = criterion(graded, "response_times")
    assert found.passed and found.state == "pass", found.why
    assert "agrees with" in found.why


@pytest.mark.parametrize("stated", ["Duration: 2 hours", "The API was down for 95 minutes."])
def test_a_figure_the_timeline_contradicts_fails(stated: str) -> None:
    found = criterion(grade(f"# API outage\n\n{stated}\n\n{TIMELINE}"), "response_times")

    assert not found.passed
    assert "disagrees with the timeline" in found.why


TWELVE_HOUR = """\
# Login outage

Time to resolve: 1h 30m

## Timeline

- 11:40 AM UTC Incident triggered by the login monitor (log entry `R2JX5T8QK1`)
- 01:10 PM UTC Incident resolved (log entry `R7T5Y3U9I0`)
"""


def test_a_12_hour_clock_is_read_before_comparing() -> None:
    found = criterion(grade(TWELVE_HOUR), "response_times")

    assert found.passed, found.why


PACIFIC_AND_UTC = """\
# Login outage

Time to resolve: 40 minutes

## Timeline (all times PST unless marked)

- 09:00 Incident triggered by the login monitor (log entry `R2JX5T8QK1`)
- 17:40 UTC Incident resolved (log entry `R7T5Y3U9I0`)
"""


def test_declared_zones_and_offsets_are_converted_before_comparing() -> None:
    found = criterion(grade(PACIFIC_AND_UTC), "response_times")

    assert found.passed, found.why  # 09:00 PST is 17:00 UTC


@pytest.mark.parametrize(
    ("zone", "declared"),
    [("PST", "PST"), ("CET", "CET"), ("UTC-7", "UTC-7"), ("PDT (UTC-7)", "PDT"), ("IST", "IST")],
)
def test_the_zone_table_knows_the_common_abbreviations_and_offsets(zone: str, declared: str) -> None:
    markdown = f"# Outage\n\n## Timeline\n\nAll times in {zone}.\n\n- 10:00 Deploy [run](https://x/1)\n- 10:30 Fixed\n"

    found = criterion(grade(markdown), "timeline")

    assert found.passed, found.why  # a declared zone is an explicit offset


UNCHECKABLE = """\
# Outage

The site was down for 2 hours. Time to resolve: 2 hours.
"""


def test_a_figure_that_cannot_be_checked_passes_with_a_warning_unless_strict() -> None:
    lenient, strict = grade(UNCHECKABLE), grade(UNCHECKABLE, strict=True)

    found = criterion(lenient, "response_times")
    assert (found.passed, found.state) == (True, UNCHECKED)
    assert found.why.startswith("not checkable: time to resolve “2 hours” (line 3): no timeline times to compare")
    assert "⚠ Response times match the record (within 60 s): not checkable" in format_grade(lenient)
    assert "(1 not checkable, counted as passed)" in format_grade(lenient)
    found = criterion(strict, "response_times")
    assert (found.passed, found.state) == (False, UNCHECKED)
    assert found.why.startswith("nothing to compare: the Markdown states the time to resolve")
    assert "(1 not checkable, failed by --strict)" in format_grade(strict)


def test_a_wrong_figure_is_reported_apart_from_an_uncheckable_one() -> None:
    wrong = criterion(grade(f"# API outage\n\nDuration: 2 hours\n\n{TIMELINE}"), "response_times")

    assert wrong.state == "fail"
    assert "✗ Response times" in format_grade(grade(f"# API outage\n\nDuration: 2 hours\n\n{TIMELINE}"))


# Action items


WRAPPED_ACTIONS = """\
# Outage

## Action items

Reject pool sizes below 20 in the configuration schema, owned by the payments team and
tracked in #4412, so that the same typo cannot pass review
again.
"""


def test_wrapped_prose_is_one_action_item_not_three() -> None:
    found = criterion(grade(WRAPPED_ACTIONS), "action_items")

    assert found.passed, found.why
    assert found.why.startswith("1 action item (line 5)")


OWNER_TABLE = """\
# Outage

## Action items

### Prevention

| Action Item | Owner | Tracking bug |
|---|---|---|
| Pin our dependencies to exact versions | chinmay | [#6767](https://github.com/example/repo/issues/6767) |

### Detection

| Action Item | Owner | Tracking bug |
|---|---|---|
| Run every test against the latest dependencies nightly | ianh | [#6777](https://example.com/issues/6777) |
"""


def test_an_owner_table_with_tracking_bugs_needs_no_verification_column() -> None:
    found = criterion(grade(OWNER_TABLE), "action_items")

    assert found.passed, found.why


# Blameless language


@pytest.mark.parametrize(
    "sentence",
    [
        "The lazy-loaded extension called a function older SDKs lack.",
        "We should test lazy loaded extensions against older SDKs.",
        "git blame shows the line changed in March.",
    ],
)
def test_no_blame_is_read_inside_words_or_in_git_blame(sentence: str) -> None:
    assert passes(f"# Outage\n\n{sentence}\n", "blameless")


def test_blaming_a_person_for_carelessness_is_still_blame() -> None:
    found = criterion(grade("# Outage\n\n@alex looked over it without being thorough.\n"), "blameless")

    assert not found.passed
    assert "without being thorough" in found.why


# Recurrence and detection in the words people use


RECURRENCE_IN_PROSE = """\
# Certificate expiry

The webhook certificate expired again: this is the second outage with the same cause as incident #1187
(2026-01-14), whose action item renewed the certificate by hand but added no renewal check.
"""


def test_a_recurrence_analysis_in_prose_is_read_without_a_recurrence_heading() -> None:
    found = criterion(grade(RECURRENCE_IN_PROSE), "recurrence")

    assert found.passed, found.why


def test_a_bare_never_happened_before_is_no_recurrence_check() -> None:
    markdown = "# Outage\n\n## Recurrence\n\nThis never happened before.\n"

    assert not passes(markdown, "recurrence")


NO_ALERTING = """\
# Boskos outage

## Detection

Users reported failing jobs at 02:50 UTC on GitHub. The dashboard showed the failure, but no alerting caught it.
"""


def test_no_alerting_caught_it_is_a_detection_gap() -> None:
    found = criterion(grade(NO_ALERTING), "detection")

    assert found.passed, found.why


# Templates, placeholders and empty documents


BLANK_TEMPLATE = """\
# Postmortem: {Incident title}

Status: {draft|final}
Owner: [Name]

## Summary

{What happened, in two sentences}

## Timeline (all times UTC)

| Time | Event |
|------|-------|
| HH:MM | [What happened] |

## Impact

[Number of users or requests affected]

## Action items

- [ ]

## What went well

- TBD
"""


@pytest.mark.parametrize("markdown", ["", "\n\n", BLANK_TEMPLATE], ids=["empty", "blank lines", "template"])
def test_an_empty_document_or_a_blank_template_scores_0_and_says_so(markdown: str) -> None:
    for strict in (False, True):
        graded = grade(markdown, strict=strict)

        assert graded.score == "0/9"
        assert all("nothing to grade" in found.why for found in graded.criteria)
    assert criterion(grade(BLANK_TEMPLATE), "blameless").why.startswith("a template or placeholder document")


# The command and the criteria table


def test_the_command_reads_leniently_by_default_and_exactly_with_strict(capsys, tmp_path) -> None:
    path = write(tmp_path, "pm.md", UNCHECKABLE)

    status, out, _ = run_main(main, capsys, path, "--min-score", "2")
    assert status == 0
    assert out.splitlines()[-1] == "score: 2/9 (1 not checkable, counted as passed)"
    status, out, _ = run_main(main, capsys, path, "--min-score", "2", "--strict")
    assert status == 1
    assert out.splitlines()[-1] == "score: 1/9 (1 not checkable, failed by --strict)"


def test_each_criterion_names_the_sections_it_reads() -> None:
    reads = {rule.key: [section.key for section in rule.sections] for rule in CRITERIA}

    assert reads == {
        "timeline": ["timeline", "resolution"],
        "response_times": ["response"],
        "impact": ["impact"],
        "detection": ["detection"],
        "causes": ["root_cause", "contributing"],
        "blameless": [],
        "action_items": ["action_items"],
        "reflection": ["went_well", "went_poorly", "got_lucky"],
        "recurrence": ["recurrence"],
    }
    assert {key: section.name for key, section in SECTIONS.items()}["got_lucky"] == "Where we got lucky"
