"""Which links from a session the bridge passes on to the incident: https only, and per kind, a pull request on a
code host of the allow-list with a pull request's path, a page or a ticket on the host its routing rule names.
Anything else is dropped (and counted by the caller): a link in a note the bridge posts speaks with its voice.

Pure: no I/O. A link that passes comes back rebuilt from its parts (scheme, host, path), so that what it carried
besides (a user and password, a query, a fragment, a port) never reaches the incident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

# The code hosts whose pull requests are linked without any setting; PullRequestHosts adds self-hosted ones.
CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "dev.azure.com")
URL_LIMIT = 2048
_SEGMENT = r"[A-Za-z0-9._~-]+"
_PAGE_SEGMENT = r"[A-Za-z0-9._~+%-]+"
# A pull request's path on each kind of code host (self-hosted GitHub Enterprise, GitLab, Bitbucket Server and
# Azure DevOps Server use the same shapes).
_PULL_REQUEST_PATHS = (
    re.compile(rf"/{_SEGMENT}/{_SEGMENT}/pull/\d+"),  # GitHub
    re.compile(rf"(?:/{_SEGMENT})+/-/merge_requests/\d+"),  # GitLab
    re.compile(rf"/{_SEGMENT}/{_SEGMENT}/pull-requests/\d+"),  # Bitbucket Cloud
    re.compile(rf"/projects/{_SEGMENT}/repos/{_SEGMENT}/pull-requests/\d+"),  # Bitbucket Server
    re.compile(rf"/{_SEGMENT}/{_SEGMENT}/_git/{_SEGMENT}/pullrequest/\d+"),  # Azure DevOps
)
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+")
_PATH = re.compile(rf"(/{_PAGE_SEGMENT})*/?")


def host_of(value: str) -> str:
    """The host a setting names: a bare host name, or the host of a URL; "" when it is neither."""
    text = value.strip().lower()
    host = (urlsplit(text).hostname or "") if "://" in text else text.split("/", 1)[0]
    return host if _HOST.fullmatch(host) else ""


def _https(url: object) -> tuple[str, str] | None:
    """(host, path) of an https URL of printable ASCII, or None."""
    if not isinstance(url, str) or len(url) > URL_LIMIT or not (url.isascii() and url.isprintable()) or " " in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() != "https" or not _HOST.fullmatch(host) or port not in (None, 443):
        return None
    return host, parts.path


@dataclass(frozen=True)
class LinkPolicy:
    code_hosts: frozenset[str] = frozenset(CODE_HOSTS)
    # Where the routing rule publishes the draft, or files its tickets (empty: no page and no ticket links).
    page_hosts: frozenset[str] = frozenset()

    @classmethod
    def with_hosts(cls, extra_code_hosts: Iterable[str] = (), page_hosts: Iterable[str] = ()) -> LinkPolicy:
        extra = {host for host in map(host_of, extra_code_hosts) if host}
        pages = {host for host in map(host_of, page_hosts) if host}
        return cls(frozenset(CODE_HOSTS) | extra, frozenset(pages))

    def pull_request(self, url: object) -> str | None:
        """The pull request's link as the bridge posts it, or None when it is not one it may post."""
        found = _https(url)
        if found is None:
            return None
        host, path = found
        path = path.rstrip("/")
        if host not in self.code_hosts or not any(shape.fullmatch(path) for shape in _PULL_REQUEST_PATHS):
            return None
        return f"https://{host}{path}"

    def page(self, url: object) -> str | None:
        """A page's or a ticket's link on a host the routing rule names, or None."""
        found = _https(url)
        if found is None:
            return None
        host, path = found
        if host not in self.page_hosts or not _PATH.fullmatch(path):
            return None
        return f"https://{host}{path}"
