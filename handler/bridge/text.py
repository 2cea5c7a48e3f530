"""Text from outside made safe to keep and pass on: on one line, without control or format characters, capped."""

from __future__ import annotations

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
