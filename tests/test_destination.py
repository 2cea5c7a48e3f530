"""Where the draft goes (issue 23, section 2), through the real handler and the follow-up: PostmortemRepo and a
rule's postmortem_repo, postmortem_file, publish and action_items_to reach Devin's create request and its prompt,
and the summary note links the wiki page and the tickets on the hosts the rule names, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.pagerduty_standin import sample_record
from tests.conftest import ledger_item, put_parameter
from tests.support.events import api_event, incident
from tests.support.results import PR_URL, valid_result

INCIDENT = "QDESTINATION01"
MARKER = "[pagerduty-postmortem:summary]"
# The sample incident: created 2026-03-14, number 1042, this title.
FILE = "2026-03-14-incident-1042-checkout-api-5xx-error-rate-above-5-payments-failing.md"
CONFLUENCE = {
    "to": "confluence",
    "site_url": "https://acme.atlassian.net/wiki",
    "space": "PAY",
    "parent_page": "Postmortems",
}
JIRA = {"to": "jira", "site_url": "https://acme.atlassian.net", "project": "PAY"}


def routing(**fields: Any) -> None:
    rule = {"name": "payments", "match": {"service": ["Checkout API"]}, **fields}
    put_parameter("routing", json.dumps({"rules": [rule]}), secure=False)


def start(invoke, devin, pagerduty=None) -> tuple[str, dict[str, Any]]:  # noqa: ANN001 - fixtures
    if pagerduty is not None:
        pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    answer = invoke(api_event(incident(INCIDENT)))
    assert answer.body["status"] == "started", answer.body
    return answer.body["session_id"], devin.create_requests()[-1].json()


# --- the create request and its prompt ------------------------------------------------------------------------


def test_postmortem_repo_is_where_the_pull_request_goes_and_a_repository_of_the_session(
    secrets, invoke, devin, monkeypatch
) -> None:
    monkeypatch.setenv("POSTMORTEM_REPO", "acme/postmortems")

    _, body = start(invoke, devin)

    assert body["repos"] == ["acme/postmortems"]
    assert (
        f"- Open one pull request in acme/postmortems that adds exactly this file:\n  docs/postmortems/{FILE}\n"
        in (body["prompt"])
    )


def test_a_rules_postmortem_repo_wins_over_the_deployments_and_joins_the_rules_repos(
    secrets, invoke, devin, monkeypatch
) -> None:
    monkeypatch.setenv("POSTMORTEM_REPO", "acme/postmortems")
    routing(repos=["acme/checkout"], postmortem_repo="acme/payments-postmortems")

    _, body = start(invoke, devin)

    assert body["repos"] == ["acme/checkout", "acme/payments-postmortems"]
    assert "- Open one pull request in acme/payments-postmortems that adds exactly this file:" in body["prompt"]
    assert (
        "The service's code is in acme/checkout: read it for the evidence, and change nothing there."
        in (body["prompt"])
    )
    assert "acme/postmortems " not in body["prompt"]


def test_a_rules_file_template_is_filled_in_and_given_verbatim(secrets, invoke, devin) -> None:
    routing(postmortem_path="postmortems/payments/", postmortem_file="{date}/{number}-{slug}.md")

    _, body = start(invoke, devin)

    path = "postmortems/payments/2026-03-14/1042-checkout-api-5xx-error-rate-above-5-payments-failing.md"
    assert f"adds exactly this file:\n  {path}\n" in body["prompt"]


def test_a_template_names_the_file_with_its_placeholder(secrets, invoke, devin) -> None:
    put_parameter("prompt-template", "Write the postmortem of ${incident_id} into ${postmortem_file}.", secure=False)

    _, body = start(invoke, devin)

    assert f"Write the postmortem of {INCIDENT} into docs/postmortems/{FILE}." in body["prompt"]


def test_a_rule_that_publishes_to_confluence_and_files_jira_tickets_says_so_and_opens_no_pull_request(
    pagerduty_reads, pagerduty, invoke, devin, monkeypatch
) -> None:
    monkeypatch.setenv("POSTMORTEM_REPO", "acme/postmortems")
    routing(repos=["acme/checkout"], publish=CONFLUENCE, action_items_to=JIRA)

    _, body = start(invoke, devin, pagerduty)

    prompt = body["prompt"]
    assert "- Publish the postmortem as one page, through your Confluence integration:\n" in prompt
    assert "  in Confluence at https://acme.atlassian.net/wiki, space PAY, under the page Postmortems.\n" in prompt
    assert "Do not open a pull request for it. Put the page's link in document_url" in prompt
    assert "Open one pull request in" not in prompt
    assert "- Open one ticket per action item in Jira at https://acme.atlassian.net, project PAY, through" in prompt
    # A page is not a pull request: the postmortems repository is not given to the session.
    assert body["repos"] == ["acme/checkout"]
    # The follow-up (which runs with the PagerDuty key) links pages and tickets on these hosts only.
    assert ledger_item(INCIDENT)["link_hosts"] == ["acme.atlassian.net"]


@pytest.mark.parametrize(
    ("publish", "action_items_to", "said", "hosts"),
    [
        (
            {"to": "notion", "parent_page": "Incidents / 2026"},
            {"to": "github", "repo": "acme/checkout"},
            [
                "through your Notion integration:\n  in Notion, under the page Incidents / 2026.",
                "GitHub Issues of acme/checkout",
            ],
            ["www.notion.so", "notion.so", "github.com"],
        ),
        (
            {"to": "other", "site_url": "https://wiki.acme.example", "instructions": "Add it under Incidents."},
            {"to": "linear", "project": "PAY"},
            [
                "through your wiki integration:\n  on https://wiki.acme.example: Add it under Incidents.",
                "Linear, project PAY",
            ],
            ["wiki.acme.example", "linear.app"],
        ),
        ({"to": "repository"}, None, ["adds exactly this file:"], None),
    ],
)
def test_each_place_to_publish_and_each_tracker_is_said_and_its_hosts_kept(
    pagerduty_reads, pagerduty, invoke, devin, publish, action_items_to, said, hosts
) -> None:
    routing(publish=publish, **({"action_items_to": action_items_to} if action_items_to else {}))

    _, body = start(invoke, devin, pagerduty)

    for words in said:
        assert words in body["prompt"]
    assert ledger_item(INCIDENT).get("link_hosts") == hosts


# --- the summary note --------------------------------------------------------------------------------------------


def test_the_note_links_the_page_and_the_tickets_on_the_rules_hosts_only(
    secrets, pagerduty_writes, pagerduty, invoke, devin, follow_up_run
) -> None:
    routing(publish=CONFLUENCE, action_items_to=JIRA)
    session_id, _ = start(invoke, devin, pagerduty)
    result = valid_result(
        pull_request_url=None, document_url="https://acme.atlassian.net/wiki/spaces/PAY/pages/4242/Checkout+5xx"
    )
    result["action_items"][0]["tracking_url"] = "https://acme.atlassian.net/browse/PAY-101"
    result["action_items"][1]["tracking_url"] = "https://tickets.evil.example/browse/PAY-102"
    devin.update_session(session_id, status="exit", structured_output=result)

    follow_up_run()

    (note,) = [n["content"] for n in pagerduty.notes_posted(INCIDENT) if MARKER in n["content"]]
    assert "Draft: https://acme.atlassian.net/wiki/spaces/PAY/pages/4242/Checkout+5xx" in note
    assert "owner: payments platform on-call — https://acme.atlassian.net/browse/PAY-101" in note
    # A ticket link on a host the rule does not name never reaches the incident.
    assert "evil.example" not in note
    assert "— owner: observability team\n" in note + "\n"


def test_without_a_rule_the_note_links_no_page_and_no_ticket(
    secrets, pagerduty_writes, pagerduty, invoke, devin, follow_up_run
) -> None:
    session_id, _ = start(invoke, devin, pagerduty)
    result = valid_result(document_url="https://acme.atlassian.net/wiki/spaces/PAY/pages/4242")
    result["action_items"][0]["tracking_url"] = "https://acme.atlassian.net/browse/PAY-101"
    devin.open_pull_request(session_id, PR_URL)
    devin.update_session(session_id, status="exit", structured_output=result)

    follow_up_run()

    (note,) = [n["content"] for n in pagerduty.notes_posted(INCIDENT) if MARKER in n["content"]]
    assert f"Draft: {PR_URL}" in note
    assert "atlassian" not in note
