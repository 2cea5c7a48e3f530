"""scripts/check-routing: what it prints and how it exits for documents, templates and sample payloads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.check_routing import main
from tests.support.cli import run_main, write
from tests.support.events import PAYLOADS, payload

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "routing.example.json"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    return run_main(main, capsys, *argv)


def blocks(out: str) -> dict[str, str]:
    """Each payload's lines under its file name."""
    found: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith(str(PAYLOADS)):
            current = Path(line.split(":", 1)[0]).name
            found[current] = line + "\n"
        elif current and line.startswith("  "):
            found[current] += line + "\n"
    return found


# The routing document


def test_the_example_document_is_valid_and_gets_its_put_parameter_line(capsys) -> None:
    status, out, err = run(capsys, EXAMPLE)

    assert status == 0, out + err
    assert out.splitlines() == [
        f"✓ {EXAMPLE}: 3 rules (staging noise, payments P1, platform teams)",
        "  store it: aws ssm put-parameter --type String --name /pagerduty-postmortem/routing "
        f"--value file://{EXAMPLE} --overwrite",
    ]
    assert err == ""


def test_the_prefix_option_names_the_parameter(capsys) -> None:
    status, out, _ = run(capsys, EXAMPLE, "--prefix", "/acme/pd/")

    assert status == 0
    assert "--name /acme/pd/routing " in out


def test_a_broken_document_says_what_is_wrong_and_gets_no_put_parameter_line(capsys, tmp_path) -> None:
    broken = write(tmp_path, "routing.json", {"rules": [{"name": "payments P1", "playbook": "playbook-1"}]})

    status, out, _ = run(capsys, broken)

    assert status == 1
    assert out == f'✗ {broken}: rules[0] "payments P1": unknown key "playbook" (did you mean "playbook_id"?)\n'


def test_a_document_that_is_not_json_is_invalid(capsys, tmp_path) -> None:
    status, out, _ = run(capsys, write(tmp_path, "routing.json", '{"rules": [\n  {"name": "a"}\n  {"name": "b"}\n]}'))

    assert status == 1
    assert out.endswith("routing: not JSON: Expecting ',' delimiter (line 3, column 3)\n")


def test_an_empty_document_routes_nothing(capsys, tmp_path) -> None:
    path = write(tmp_path, "routing.json", {"rules": []})

    status, out, _ = run(capsys, path, "--try", PAYLOADS / "incident-resolved-p1.json")

    assert status == 0
    assert out.startswith(f"✓ {path}: 0 rules (routes nothing)\n")
    assert "→ no rule matches" in out


def test_a_document_over_4_kb_is_stored_on_the_advanced_tier(capsys, tmp_path) -> None:
    path = write(tmp_path, "routing.json", {"rules": [{"name": "long", "instructions": "Step. " * 1000}]})

    status, out, _ = run(capsys, path)

    assert status == 0
    assert "put-parameter --type String --tier Advanced --name /pagerduty-postmortem/routing" in out


def test_a_document_over_8_kb_cannot_be_stored(capsys, tmp_path) -> None:
    path = write(tmp_path, "routing.json", {"rules": [{"name": "long", "instructions": "Step. " * 1500}]})

    status, out, _ = run(capsys, path)

    assert status == 1
    size = path.stat().st_size
    assert out == f"✗ {path}: routing: too large for Parameter Store: {size} bytes, at most 8192 (Advanced tier)\n"


# The prompt template


def test_a_valid_template_lists_its_placeholders_and_gets_its_put_parameter_line(capsys, tmp_path) -> None:
    text = "Postmortem of ${service}: ${title}.\nBudget $$5. Write to $postmortem_path.\n"
    path = write(tmp_path, "prompt.md", text)

    status, out, _ = run(capsys, "--prompt-template", path)

    assert status == 0
    assert out.splitlines() == [
        f"✓ {path}: prompt template, {len(text)} characters, "
        "placeholders: ${service}, ${title}, ${postmortem_path}",
        "  store it: aws ssm put-parameter --type String --name /pagerduty-postmortem/prompt-template "
        f"--value file://{path} --overwrite",
    ]


def test_a_template_with_an_unknown_placeholder_is_invalid(capsys, tmp_path) -> None:
    path = write(tmp_path, "prompt.md", "Look at ${servce}\n")

    status, out, _ = run(capsys, "--prompt-template", path)

    assert status == 1
    assert out == (
        f"✗ {path}: prompt template: unknown placeholder ${{servce}} at line 1, column 9 (did you mean ${{service}}?)\n"
    )


def test_a_valid_document_and_a_broken_template_exit_1_and_report_both(capsys, tmp_path) -> None:
    template = write(tmp_path, "prompt.md", "Spend $5")

    status, out, _ = run(capsys, EXAMPLE, "--prompt-template", template)

    assert status == 1
    assert out.startswith(f"✓ {EXAMPLE}: 3 rules")
    assert f'✗ {template}: prompt template: "$" at line 1, column 7 starts no placeholder' in out


# Trying payloads


def test_sample_payloads_are_routed_by_the_example(capsys) -> None:
    samples = sorted(PAYLOADS.glob("*.json"))

    status, out, _ = run(capsys, EXAMPLE, "--try", *samples)
    routed = blocks(out)

    assert status == 0
    assert set(routed) == {path.name for path in samples}
    assert routed["incident-resolved-p1.json"] == (
        f"{PAYLOADS}/incident-resolved-p1.json: service Checkout API (PCK8V2Q), team Payments Platform (PTM3K9D), "
        "priority P1, urgency high, incident.resolved\n"
        '  → rule "payments P1":\n'
        "      playbook_id      playbook-4d2f9a7c1e8b4b35a0c6e2d917f3b8a1\n"
        "      knowledge_ids    note-8c1e5a9d3f7b4e20b6a4c9d2e1f07a53\n"
        "      repos            acme/checkout, acme/payments-gateway\n"
        "      max_acu_limit    20\n"
        "      extra tags       team:payments, severity:p1\n"
        "      postmortem_path  docs/postmortems/payments/\n"
        "      instructions     the rule's own (918 characters)\n"
    )
    # P2: the payments rule wants P1, so the team rule (by a glob on the team's name) decides.
    assert '→ rule "platform teams":' in routed["incident-resolved-merged.json"]
    assert "postmortem_path  docs/postmortems/platform/" in routed["incident-resolved-merged.json"]
    assert "knowledge_ids    Devin's default" in routed["incident-resolved-merged.json"]
    # A triggered P1 fails the payments rule's event_type and falls through to the team rule.
    assert '→ rule "platform teams":' in routed["incident-triggered-p1.json"]
    # No priority: neither rule's priority patterns match.
    assert "priority none, urgency low" in routed["incident-resolved-low-urgency.json"]
    assert (
        "→ no rule matches: a standard session (built-in instructions, docs/postmortems/)"
        in (routed["incident-resolved-low-urgency.json"])
    )
    assert "not an incident (pagey.ping)" in routed["pagey-ping.json"]
    assert "not an incident (incident.annotated)" in routed["incident-annotated.json"]
    assert out.endswith("(routing only: the function's EVENT_TYPES, PRIORITIES and URGENCIES apply first)\n")


def test_a_staging_service_is_shown_as_skipped(capsys, tmp_path) -> None:
    body = payload()
    body["event"]["data"]["service"]["summary"] = "staging-checkout"
    staging = write(tmp_path, "staging.json", body)

    status, out, _ = run(capsys, EXAMPLE, "--try", staging)

    assert status == 0
    assert "service staging-checkout (PCK8V2Q)" in out
    assert '  → rule "staging noise": skipped (answered 2xx "ignored", no session)\n' in out


def test_a_payload_without_teams_misses_the_team_rule(capsys, tmp_path) -> None:
    body = payload("incident-resolved-merged.json")
    body["event"]["data"]["teams"] = []

    status, out, _ = run(capsys, EXAMPLE, "--try", write(tmp_path, "no-teams.json", body))

    assert status == 0
    assert "team none" in out
    assert "→ no rule matches" in out


def test_a_valid_template_is_what_unruled_sessions_get(capsys, tmp_path) -> None:
    template = write(tmp_path, "prompt.md", "Write the postmortem of ${title}.")

    status, out, _ = run(
        capsys, EXAMPLE, "--prompt-template", template, "--try", PAYLOADS / "incident-resolved-merged.json"
    )

    assert status == 0
    assert "instructions     the prompt template" in out


def test_a_payload_that_the_function_would_reject_is_invalid(capsys, tmp_path) -> None:
    not_json = write(tmp_path, "body.json", "{not json")

    status, out, _ = run(capsys, EXAMPLE, "--try", PAYLOADS / "incident-resolved-p1.json", not_json)

    assert status == 1
    assert '→ rule "payments P1":' in out
    assert f"✗ {not_json}: body is not JSON (the function answers 400)" in out


def test_payloads_are_not_tried_against_a_broken_document(capsys, tmp_path) -> None:
    broken = write(tmp_path, "routing.json", {"rules": [{"name": "a", "max_acu_limit": 0}]})

    status, out, _ = run(capsys, broken, "--try", PAYLOADS / "incident-resolved-p1.json")

    assert status == 1
    assert out == f'✗ {broken}: rules[0] "a": max_acu_limit: must be at least 1, not 0\n'


# Where the draft goes (issue 23): the new fields, each refused with what to write instead


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"postmortem_file": "{date}-{title}.md"},
            "postmortem_file: unknown field {title} (expected one of: {date}, {incident_id}, {number}, {slug})",
        ),
        (
            {"postmortem_file": "{date}-{slug.md"},
            'postmortem_file: has a "{" or "}" that opens or closes no field: write {date}, {number}, {slug} or '
            "{incident_id}",
        ),
        ({"postmortem_file": "notes.txt"}, 'postmortem_file: must be a file name template ending in ".md"'),
        ({"postmortem_file": "../{slug}.md"}, 'postmortem_file: must be a file name template ending in ".md"'),
        (
            {"postmortem_repo": "https://github.com/acme/postmortems"},
            'postmortem_repo: must be a repository as owner/name, such as "acme/postmortems"',
        ),
        ({"publish": {"to": "sharepoint"}}, "publish.to: must be one of repository, confluence, notion, other"),
        (
            {"publish": {"to": "confluence", "site_url": "https://acme.atlassian.net/wiki", "space": "PAY"}},
            'publish: "parent_page" is missing',
        ),
        (
            {"publish": {"to": "other", "site_url": "http://wiki.acme.example", "instructions": "Add it."}},
            "publish.site_url: must be an https URL",
        ),
        ({"action_items_to": {"to": "jira", "project": "PAY"}}, 'action_items_to: "site_url" is missing'),
        (
            {"action_items_to": {"to": "github", "repo": "not a repo"}},
            'action_items_to.repo: must be a repository as owner/name, such as "acme/postmortems"',
        ),
    ],
)
def test_a_broken_destination_field_says_what_to_write(capsys, tmp_path, fields, message) -> None:
    broken = write(tmp_path, "routing.json", {"rules": [{"name": "a", "match": {}, **fields}]})

    status, out, _ = run(capsys, broken)

    assert status == 1
    assert out.startswith(f'✗ {broken}: rules[0] "a": {message}'), out
    assert "put-parameter" not in out


def test_a_payload_shows_where_its_draft_goes_and_where_its_tickets_go(capsys, tmp_path) -> None:
    rule = {
        "name": "payments",
        "match": {"service": ["Checkout*"]},
        "postmortem_path": "postmortems/",
        "postmortem_file": "{date}/{number}-{slug}.md",
        "postmortem_repo": "acme/postmortems",
        "publish": {"to": "notion", "parent_page": "Incidents"},
        "action_items_to": {"to": "github", "repo": "acme/checkout"},
    }
    document = write(tmp_path, "routing.json", {"rules": [rule]})

    status, out, _ = run(capsys, document, "--try", PAYLOADS / "incident-resolved-p1.json")

    assert status == 0, out
    path = "postmortems/2026-03-14/1042-checkout-api-5xx-error-rate-above-5-payments-failing.md"
    assert f"      postmortem_file  {{date}}/{{number}}-{{slug}}.md → {path}\n" in out
    assert "      postmortem_repo  acme/postmortems (unused: the draft is a page)\n" in out
    assert (
        "      publish          a page through Devin's Notion integration: in Notion, under the page Incidents.\n"
        in out
    )
    assert "      action_items_to  a ticket per action item in GitHub Issues of acme/checkout\n" in out


# Usage


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give a ROUTING_FILE, a --prompt-template FILE, or both"),
        (["--try", str(PAYLOADS / "incident-resolved-p1.json")], "--try needs a ROUTING_FILE"),
        ([str(EXAMPLE), "--prefix", "pagerduty-postmortem"], "is not a parameter path such as /pagerduty-postmortem"),
        (["missing.json"], "cannot read missing.json: No such file or directory"),
        ([str(EXAMPLE), "--try", "missing.json"], "cannot read missing.json"),
        (["--prompt-template", str(ROOT / "docs")], "cannot read"),
    ],
)
def test_usage_errors_and_unreadable_files_exit_2(capsys, argv: list[str], message: str) -> None:
    status, _, err = run(capsys, *argv)

    assert status == 2
    assert err.startswith("error: ") and message in err


def test_a_file_that_is_not_utf8_text_exits_2(capsys, tmp_path) -> None:
    status, _, err = run(capsys, write(tmp_path, "routing.json", b'{"rules": [{"name": "caf\xe9"}]}'))

    assert status == 2
    assert err == f"error: cannot read {tmp_path}/routing.json: not UTF-8 text\n"


def test_an_unknown_option_exits_2_with_the_usage(capsys) -> None:
    status, _, err = run(capsys, EXAMPLE, "--prompt", "x")

    assert status == 2
    assert "usage: scripts/check-routing" in err


def test_help_exits_0(capsys) -> None:
    status, out, _ = run(capsys, "--help")

    assert status == 0
    assert "--prompt-template FILE" in out


def test_it_runs_as_a_module_with_handler_off_the_path() -> None:
    # As scripts/check-routing runs it (the wrapper is not run here: it may rebuild .venv): no pytest pythonpath,
    # so the script must find `bridge` itself, and the exit status is main's.
    result = subprocess.run(  # noqa: S603 - this interpreter, our own module
        [sys.executable, "-m", "scripts.check_routing", "docs/routing.example.json", "--try", "missing.json"],
        cwd=ROOT,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert result.stdout.startswith("✓ docs/routing.example.json: 3 rules (staging noise, payments P1, platform teams)")
    assert result.stderr == "error: cannot read missing.json: No such file or directory\n"
