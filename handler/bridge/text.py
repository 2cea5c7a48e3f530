"""Text from outside made safe to keep and pass on: on one line, without control or format characters, capped."""

from __future__ import annotations

import re
import unicodedata
from typing import Any


def clean_text(value: Any, limit: int) -> str:
    """A string field on one line, with control and format characters (bidi overrides too) removed, capped.

    Otherwise kept exactly as PagerDuty sent it: the service tag must match the service name.
    """
    if not isinstance(value, str):
        return ""
    if value.isprintable():
        # Nearly every field. isprintable() is False for every character of the C* categories (and the Z*
        # ones but " "), so there is nothing to remove; the loop below was a third of an ignored delivery's time.
        kept = value
    else:
        kept = "".join(
            " " if char in "\t\n\r" else char
            for char in value
            if char in "\t\n\r" or unicodedata.category(char) not in ("Cc", "Cf", "Cs")
        )
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"


def normalise(value: str) -> str:
    """Text from outside in one canonical form before anything looks into it: Unicode NFKC (full-width and other
    compatibility forms become the plain characters they stand for), then without format characters (zero-width
    spaces, soft hyphens, bidi controls), control characters but tab and newline, and lone surrogates. A key split by
    a zero-width space is one word again, where a scrub can find it."""
    folded = unicodedata.normalize("NFKC", value)
    if folded.isprintable():
        return folded
    return "".join(
        char for char in folded if char in "\t\n" or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co")
    )


# The bridge's marker prefix as anyone could spell it: any case, any run of separators between its words, an opening
# bracket of any kind before it (NFKC has made the full-width ones plain), and the colon after it.
_MARKER_LIKE = re.compile(r"[\[(<{]?\s*pagerduty[\W_]{0,5}post[\W_]{0,5}mortem\s*[:：]", re.IGNORECASE)
MARKER_REMOVED = "(marker removed)"


def neutralise_markers(text: str) -> str:
    """`text` with anything that looks like one of the bridge's note markers ("[pagerduty-postmortem:…]") spelled out
    of it: only the bridge writes markers, on the last line of its own notes."""
    return _MARKER_LIKE.sub(MARKER_REMOVED, text)


def plain_token(value: Any, limit: int, allowed: str = r"A-Za-z0-9._:+-") -> str:
    """`value` reduced to characters of `allowed` (a regular expression class body), capped at `limit`; "" when
    nothing is left. For what stands outside a data block: ids, enumerations, times."""
    if not isinstance(value, str):
        return ""
    return re.sub(f"[^{allowed}]+", "", normalise(value))[:limit]


# A link in free text: any scheme://… and anything starting with www. (chat tools and PagerDuty's web page make
# both clickable).
_LINK = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]{0,30}://|www\.)[^\s<>\"'`]+")
LINK_REMOVED = "(link removed)"


def remove_links(text: str) -> str:
    """`text` without its links: what the bridge posts links only from the fields meant for them (a pull request's
    link, checked against the allow-list), never from free text someone else wrote."""
    return _LINK.sub(LINK_REMOVED, text)


def echoed(value: Any, limit: int) -> str:
    """Free text from Devin or PagerDuty as the bridge passes it on in its own notes and the ledger: no look-alike
    of its markers, no link, on one line, capped."""
    if not isinstance(value, str):
        return clean_text(value, limit)
    return clean_text(remove_links(neutralise_markers(value)), limit)
