"""Where an incident's postmortem goes, worked out by the bridge and told to Devin verbatim: the repository and the
file's path for a pull request, or the wiki page it publishes instead, and the tracker its action items become
tickets in. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..result.links import host_of
from ..text import plain_token
from ..webhook.event import Incident
from .routing import DEFAULT_POSTMORTEM_FILE, DEFAULT_POSTMORTEM_PATH, Publish, Rule, Tracker

SLUG_LIMIT = 60
REPOSITORY = "repository"
# Where Notion and Linear keep their pages and issues (no site of one's own there).
NOTION_HOSTS = ("www.notion.so", "notion.so")
LINEAR_HOSTS = ("linear.app",)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def slug(title: str) -> str:
    """A title reduced to a-z, 0-9 and "-": ASCII letters for accented ones, one "-" for each run of anything else,
    at most SLUG_LIMIT characters; "incident" when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii").lower()
    reduced = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return reduced[:SLUG_LIMIT].rstrip("-") or "incident"


@dataclass(frozen=True)
class Destination:
    """Where the draft goes, for one incident and its routing rule."""

    path: str  # the postmortem file's path in its repository
    repository: str | None = None  # where its pull request goes; None: the team's postmortems repository, found
    code_repos: tuple[str, ...] = ()  # the repositories of the service's code (routing `repos`)
    publish: Publish | None = None  # a wiki page instead of a pull request; None: a pull request
    tracker: Tracker | None = None  # where action items become tickets; None: no tickets

    @property
    def link_hosts(self) -> tuple[str, ...]:
        """The hosts whose pages and tickets the summary note may link: the wiki's and the tracker's, nothing else."""
        hosts: list[str] = []
        if self.publish is not None:
            if self.publish.to == "notion":
                hosts += NOTION_HOSTS
            elif self.publish.site_url:
                hosts.append(host_of(self.publish.site_url))
        if self.tracker is not None:
            if self.tracker.to == "github":
                hosts.append("github.com")
            elif self.tracker.to == "linear":
                hosts += LINEAR_HOSTS
            elif self.tracker.site_url:
                hosts.append(host_of(self.tracker.site_url))
        return tuple(dict.fromkeys(host for host in hosts if host))


def file_path(incident: Incident, rule: Rule | None) -> str:
    """The postmortem file's path: the rule's folder (default docs/postmortems/) and its file name template filled
    in with the incident's creation date, number (its id when it has none) and title's slug."""
    folder = (rule.postmortem_path if rule is not None else None) or DEFAULT_POSTMORTEM_PATH
    template = (rule.postmortem_file if rule is not None else None) or DEFAULT_POSTMORTEM_FILE
    date = incident.created_at[:10] if _DATE.fullmatch(incident.created_at[:10]) else "undated"
    number = str(incident.number) if incident.number is not None else plain_token(incident.id, 64, "A-Za-z0-9")
    fields = {"date": date, "number": number, "slug": slug(incident.title), "incident_id": incident.id}
    # routing.file_template_problem has made sure that only these fields are named.
    return folder + template.format(**fields)


def destination(incident: Incident, rule: Rule | None, default_repository: str | None = None) -> Destination:
    """Where this incident's postmortem goes: the rule's settings, else the deployment's (PostmortemRepo)."""
    publish = rule.publish if rule is not None and rule.publish is not None else None
    return Destination(
        path=file_path(incident, rule),
        repository=(rule.postmortem_repo if rule is not None else None) or default_repository or None,
        code_repos=(rule.repos or ()) if rule is not None else (),
        publish=publish if publish is not None and publish.to != REPOSITORY else None,
        tracker=rule.action_items_to if rule is not None else None,
    )


def paragraph(where: Destination) -> list[str]:
    """What the prompt says of where the draft goes: the bridge's own part, whatever a rule or template says."""
    lines = ["Where the draft goes:"]
    if where.code_repos:
        lines.append(
            f"- The service's code is in {', '.join(where.code_repos)}: read it for the evidence, and change nothing"
            " there."
        )
    if where.publish is None:
        into = where.repository or "the repository where this team keeps its postmortems"
        lines += [
            f"- Open one pull request in {into} that adds exactly this file:",
            f"  {where.path}",
            "  Put its link in your final message.",
        ]
    else:
        lines.append(f"- Publish the postmortem as one page, through your {integration(where.publish)} integration:")
        lines.append(f"  {page(where.publish)}")
        lines.append(
            "  Do not open a pull request for it. Put the page's link in document_url and in your final message."
        )
    if where.tracker is not None:
        lines.append(
            f"- Open one ticket per action item in {tracker_words(where.tracker)}, through your integration, and put"
            " each ticket's link in that item's tracking_url."
        )
    return lines


def integration(publish: Publish) -> str:
    """The integration a page is published through, as the prompt names it."""
    return {"confluence": "Confluence", "notion": "Notion"}.get(publish.to, "wiki")


def page(publish: Publish) -> str:
    """Where the page goes, in words."""
    if publish.to == "confluence":
        return f"in Confluence at {publish.site_url}, space {publish.space}, under the page {publish.parent_page}."
    if publish.to == "notion":
        return f"in Notion, under the page {publish.parent_page}."
    return f"on {publish.site_url}: {publish.instructions}"


def tracker_words(tracker: Tracker) -> str:
    """Where action items become tickets, in words."""
    if tracker.to == "github":
        return f"GitHub Issues of {tracker.repo}"
    if tracker.to == "jira":
        return f"Jira at {tracker.site_url}, project {tracker.project}"
    return f"Linear, project {tracker.project}"
