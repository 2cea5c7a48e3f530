"""Secrets taken out of text that came from elsewhere (a session's result, its pull request links) before the bridge
keeps or posts it: the bridge's own secrets in any form a model might echo them, and tokens by their known shapes.

Pure: no I/O. Text is normalised first (text.normalise: a key split by a zero-width space or a soft hyphen is whole
again), then scrubbed; what is kept of it is cleaned and capped after that. No rule guesses by entropy: PagerDuty
ids, session ids, commit SHAs and pull request numbers are evidence and must survive.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .text import normalise

REDACTED = "[redacted]"
# A secret's squashed form (letters and digits only) shorter than this is not looked for split apart: too many
# innocent words would match.
MIN_SQUASHED = 12

# Tokens by their published shapes: GitHub (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), Slack (xoxb-, xoxp-…),
# AWS access key ids (AKIA, ASIA), Devin (cog_, and the legacy apk_), OpenAI-style (sk-), HTTP bearer and
# PagerDuty token headers, and PagerDuty user API keys (u+…).
_SHAPES = re.compile(
    r"""
    \bgh[pousr]_[A-Za-z0-9]{30,}
    | \bgithub_pat_[A-Za-z0-9_]{20,}
    | \bxox[abposr]-[A-Za-z0-9-]{10,}
    | \b(?:AKIA|ASIA)[A-Z0-9]{16}\b
    | \bcog_[A-Za-z0-9_-]{16,}
    | \bapk_(?:user_)?[A-Za-z0-9_-]{16,}
    | \bsk-[A-Za-z0-9_-]{20,}
    | \bbearer\s+[A-Za-z0-9._~+/=-]{16,}
    | \btoken\s+token=[^\s"'<>]+
    | (?<![A-Za-z0-9_+-])u\+[A-Za-z0-9_+-]{16,}
    """,
    re.IGNORECASE | re.VERBOSE,
)
# PagerDuty account API keys: exactly 20 characters of letters, digits, _ + - ([DD] 02), taken as one when they mix
# lower and upper case letters, a digit and one of _ + -, as generated keys do. PagerDuty's ids (all capitals and
# digits), Devin session ids (devin- and 32 lower-case hex digits), commit SHAs (40 hex digits), pull request numbers
# and hyphenated words without a digit ("PagerDuty-PostMortem") never match. Case-sensitive, unlike the rest.
_ACCOUNT_KEY = re.compile(
    r"(?<![A-Za-z0-9_+/-])(?=[A-Za-z0-9_+-]{20}(?![A-Za-z0-9_+/-]))"
    r"(?=[A-Za-z0-9_+-]{0,19}[a-z])(?=[A-Za-z0-9_+-]{0,19}[A-Z])(?=[A-Za-z0-9_+-]{0,19}[0-9])"
    r"(?=[A-Za-z0-9_+-]{0,19}[_+-])[A-Za-z0-9_+-]{20}"
)


def _squashed(text: str) -> tuple[str, list[int]]:
    """`text` with only its letters and digits, and where each of them stands in `text`."""
    where = [index for index, char in enumerate(text) if char.isalnum()]
    return "".join(text[index] for index in where), where


def _base64_cores(secret: bytes) -> set[str]:
    """What any base64 text holding `secret` must contain, wherever the secret starts in it: for each of the three
    alignments and both alphabets, the characters that depend on the secret's bytes alone."""
    cores = set()
    for skip in range(3):
        encoded = base64.b64encode(b"\0" * skip + secret).decode("ascii")
        first, end = math.ceil(8 * skip / 6), (8 * (skip + len(secret))) // 6
        core = encoded[first:end]
        cores.update({core, core.replace("+", "-").replace("/", "_")})
    return cores


@dataclass(frozen=True)
class Scrubber:
    """Scrubs the bridge's own `secrets` (as they are, reversed, base64-encoded, and split by whitespace or
    punctuation) and any token of a known shape."""

    secrets: tuple[str, ...] = ()
    _forms: tuple[str, ...] = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        forms: set[str] = set()
        for secret in self.secrets:
            if not secret:
                continue
            normal = normalise(secret)
            for variant in (normal, normal[::-1], *_base64_cores(normal.encode("utf-8"))):
                squashed = _squashed(variant)[0]
                if len(squashed) >= MIN_SQUASHED:
                    forms.add(squashed)
        object.__setattr__(self, "_forms", tuple(sorted(forms, key=len, reverse=True)))

    def __repr__(self) -> str:  # never the secrets
        return f"Scrubber({len(self.secrets)} secrets)"

    def text(self, value: str) -> str:
        """`value` normalised, with every secret and token replaced by REDACTED."""
        text = normalise(value)
        for secret in sorted((normalise(s) for s in self.secrets if s), key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        text = self._split_forms(text)
        text = _SHAPES.sub(REDACTED, text)
        return _ACCOUNT_KEY.sub(REDACTED, text)

    def _split_forms(self, text: str) -> str:
        if not self._forms:
            return text
        squashed, where = _squashed(text)
        spans = []
        for form in self._forms:
            start = squashed.find(form)
            while start != -1:
                spans.append((where[start], where[start + len(form) - 1] + 1))
                start = squashed.find(form, start + 1)
        for begin, end in _merged(spans)[::-1]:
            text = text[:begin] + REDACTED + text[end:]
        return text

    def found(self, value: str) -> bool:
        """Whether `value` carries anything this scrubber takes out."""
        return self.text(value) != normalise(value)


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged
