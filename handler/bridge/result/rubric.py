"""The postmortem rubric: nine checkable criteria, graded from a postmortem's Markdown, its structured result, or both.

Pure, stdlib-only and free of imports from the rest of the bridge, so that this one file can be copied into a
postmortems repository's CI. docs/postmortem-rubric.md says how each criterion is judged and why it matters;
scripts/check-postmortem prints a grade. Deterministic, and it never raises on content: odd types count as missing,
and only the first MAX_CHARS characters of a document are read.

Two readings of the Markdown. The default, lenient one reads documents people write: substance wherever it stands
(Setext headings, bold labels, the common section names, prose, 12-hour clocks and declared zones), and a figure it
cannot check passes with a warning. The strict one (`strict=True`) reads the bridge's own template with the
exactness the rubric had before the lenient reading: its section headings, every timeline entry in UTC with
evidence, confidence labels, typed and verifiable action items, and a figure it cannot check fails. The structured
result is read the same way in both.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple


class _Lazy:
    """A regular expression compiled when first used. The bridge's prompt imports this module for its sections, and
    must not pay for compiling a hundred patterns it never uses; each method, once looked up, is kept."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags

    def __getattr__(self, name: str) -> Any:
        value = getattr(re.compile(self.pattern, self.flags), name)
        setattr(self, name, value)  # later lookups find it here, without __getattr__
        return value


def _lazy(pattern: str, flags: int = 0) -> Any:
    return _Lazy(pattern, flags)


TOLERANCE_SECONDS = 60
HEDGE = 0.10  # "about 2 hours", "over 14 hours": within this share of the figure (and on its side)
MAX_CHARS = 1_000_000  # a postmortem is tens of KB; a bigger file is graded on its start
MAX_LINE = 4_000  # characters of one line that are searched
MAX_ITEMS = 500  # entries of one list (Markdown or result) that are judged
MAX_SHOWN = 3  # problems quoted in a `why`, then "and N more"
MAX_SCANNED = 100_000  # characters searched for substance outside a criterion's sections: four long postmortems
MAX_FIGURES = 50  # response figures read from one document
MAX_SPANS = 5_000  # spans of a timeline a figure is compared with
TEMPLATE_WORDS = 60  # fewer words outside prompts and placeholders: a template, not a postmortem

PASS, FAIL, ABSENT, UNCHECKED = "pass", "fail", "absent", "unchecked"


class Criterion(NamedTuple):
    key: str
    title: str
    passed: bool
    why: str
    state: str = PASS  # PASS, FAIL, or UNCHECKED: stated but not checkable (passed unless the reading is strict)
    lines: tuple[int, ...] = ()  # where in the Markdown it was found


class Grade(NamedTuple):
    criteria: tuple[Criterion, ...]
    notes: tuple[str, ...] = ()  # about the grading itself (a truncated document)
    strict: bool = False

    @property
    def passed(self) -> int:
        return sum(criterion.passed for criterion in self.criteria)

    @property
    def total(self) -> int:
        return len(self.criteria)

    @property
    def unchecked(self) -> int:
        return sum(criterion.state == UNCHECKED for criterion in self.criteria)

    @property
    def score(self) -> str:
        return f"{self.passed}/{self.total}"


class _Verdict(NamedTuple):
    state: str  # PASS; FAIL: something stated falls short; ABSENT: something needed is not stated; UNCHECKED
    why: str
    lines: tuple[int, ...] = ()


# What a postmortem holds: its sections, in the order the bridge's prompt asks for them, each with the fields of the
# structured result that carry it. The one definition the rubric's criteria (CRITERIA), the prompt's list of
# sections (bridge/devin/prompt.py) and the schema's fields (postmortem.schema.json) come from: docs/
# postmortem-rubric.md shows the table, and tests/test_postmortem_definition.py holds the three to it. `name` is what
# the bridge's template calls a section (the strict reading wants a heading with `words`); the lenient reading also
# takes `more`.


class Section(NamedTuple):
    key: str
    name: str
    words: str  # a regular expression over a heading's text
    more: str = ""  # further words of the lenient reading
    fields: tuple[str, ...] = ()  # the structured result's fields that carry it


SECTIONS: dict[str, Section] = {
    section.key: section
    for section in (
        Section("summary", "Summary", r"\bsummary\b", "", ("summary",)),
        Section("impact", "Impact", r"\bimpact\b", r"\bimpacts\b|\baffected\b|\bblast radius\b", ("impact",)),
        Section(
            "detection",
            "Detection",
            r"\bdetect(?:ion|ed)?\b|\bdiscovery\b",
            r"\bhow (?:we|it was) (?:found|noticed|learned)\b|\bwas ?n[o'’]t caught\b|\bnot caught\b"
            r"|\b(?:know|knew|notice|noticed|find out) (?:it )?sooner\b",
            ("detection",),
        ),
        Section("response", "Response", r"\bresponse\b", r"\bstats\b|\bmetrics\b", ("response",)),
        Section(
            "timeline",
            "Timeline",
            r"\btimeline\b|\bchronology\b|\bsequence of events\b",
            r"\bevents\b|\bincident log\b|\bplay[- ]by[- ]play\b",
            ("timeline",),
        ),
        Section("resolution", "Resolution", r"\bresolution\b", "", ("resolution",)),
        Section(
            "root_cause",
            "Root cause",
            r"\broot cause|\btrigger\b|(?<!contributing )\bcauses?\b",
            r"\brca\b|\bwhat caused\b|\bwhy it (?:happened|failed|broke)\b|\btechnical (?:problem|cause)"
            r"|\bwhat happened\b",
            ("root_cause", "changes"),
        ),
        Section(
            "contributing",
            "Contributing factors",
            r"\bcontributing\b",
            r"\bfactors\b|\bconditions\b|\bwas ?n[o'’]t caught\b|\bnot caught\b",
            ("contributing_factors",),
        ),
        Section(
            "went_well",
            "What went well",
            r"\bwent well\b",
            r"\bwhat worked\b|\bworked well\b|\bwent right\b",
            ("went_well",),
        ),
        Section(
            "went_poorly",
            "What went poorly",
            r"\bwent (?:poorly|wrong|badly)\b|\bdid ?n[o'’]t go well\b|\bcould have gone better\b",
            r"\bdid ?n[o'’]t (?:go (?:so )?well|work)\b|\bwhat failed\b|\bcould (?:be|have been) (?:improved|better)\b"
            r"|\bpain points\b",
            ("went_poorly",),
        ),
        Section("got_lucky", "Where we got lucky", r"\blucky\b|\bluck\b", r"\bnear miss", ("got_lucky",)),
        Section(
            "recurrence",
            "Recurrence",
            r"\brecurren|\brelated incidents\b|\bhappened before\b"
            r"|\b(?:previous|prior|past|similar|earlier) (?:incidents|postmortems)\b",
            r"\bhistory\b|\brecurring\b|\bsimilar (?:incidents?|outages?|issues?)\b",
            ("recurrence",),
        ),
        Section(
            "action_items",
            "Action items",
            r"\baction items?\b|\bfollow[- ]ups?\b|\bremediation\b|\bcorrective actions?\b|\bnext steps\b",
            r"\bcorrective\b|\bpreventa?t?ive (?:measures|actions)\b|\bimprovements\b|\bto-?dos?\b|\bprevention\b"
            r"|\bhow (?:are |will )?we (?:are |will )?(?:prevent|fix|avoid)\w*|\bpreventing (?:it|this|recurrence)\b"
            r"|\bwhat we(?:'re| are| will) (?:doing|changing)\b|\bwhat (?:we|i) (?:changed|fixed)\b",
            ("action_items",),
        ),
        Section("evidence_gaps", "Evidence gaps", r"\bevidence gaps?\b", "", ("evidence_gaps",)),
    )
}
# The sections no criterion grades, and why: docs/postmortem-rubric.md's table says the same.
UNGRADED = {
    "summary": "prose for a reader in a hurry; what it must say is what the graded sections check",
    "evidence_gaps": "it says what could not be looked at; an honest gap is not a fault, and none is not a merit",
}
_OPENS = {
    strict: {
        key: _lazy(section.words if strict or not section.more else f"{section.words}|{section.more}", re.I)
        for key, section in SECTIONS.items()
    }
    for strict in (True, False)
}


# Text


def _quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return f"“{text if len(text) <= limit else text[: limit - 1] + '…'}”"


def _listed(problems: list[str], separator: str = "; ") -> str:
    shown = separator.join(problems[:MAX_SHOWN])
    return shown + (f"{separator}and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else "")


def _at(numbers: Iterable[int]) -> str:
    """ "line 5", "lines 5–9", or "lines 5, 9, 12 and 2 more"."""
    found = sorted(set(numbers))
    if len(found) == 1:
        return f"line {found[0]}"
    if found and found[-1] - found[0] == len(found) - 1:
        return f"lines {found[0]}–{found[-1]}"
    return "lines " + _listed([str(number) for number in found], ", ")


_PLACEHOLDER = _lazy(r"(?:tbd|tba|todo|n/?a|none|nobody|unassigned|unknown|owner|someone|\?+|-+|—|–|…)?", re.I)
_STATEMENT = _lazy(r"(?:none|nothing|not much|not really|no)\b.*", re.I)  # "Not much." says something


def _placeholder(value: str, lenient: bool = False) -> bool:
    stripped = value.strip(" \t*_`.:;,()[]<>\"'!")
    if lenient and _STATEMENT.fullmatch(stripped) and stripped.lower() not in ("n/a", "none yet"):
        return False
    return _PLACEHOLDER.fullmatch(stripped) is not None or not _PROMPTS.sub("", value).strip(" \t*_`.:;,()[]<>\"'|-")


# Time: clocks (24- or 12-hour), dates, zones (a fixed-offset table: zoneinfo knows IANA names only), durations.

_FIXED = {  # minutes east of UTC
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "WEST": 60, "BST": 60, "CET": 60, "CEST": 120, "MET": 60,
    "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180, "IST": 330, "SGT": 480, "HKT": 480, "AWST": 480, "JST": 540,
    "KST": 540, "ACST": 570, "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780, "HST": -600, "AKST": -540,
    "AKDT": -480, "PST": -480, "PDT": -420, "MST": -420, "MDT": -360, "CST": -360, "CDT": -300, "EST": -300,
    "EDT": -240, "BRT": -180, "WAT": 60, "CAT": 120, "EAT": 180,
}  # fmt: skip
_SEASONAL = {"P": (-480, -420), "M": (-420, -360), "C": (-360, -300), "E": (-300, -240)}  # PT, MT, CT, ET
_ZONE_TEXT = (
    r"(?:UTC|GMT|utc)\s*[+\-−]\s*\d{1,2}(?::?\d{2})?(?![\d:])"
    r"|[PMCE][SD]?T\s*/\s*[PMCE][SD]T\b|\b[PMCE]T\b"
    r"|\b(?:" + "|".join(sorted((name for name in _FIXED if name != "Z"), key=len, reverse=True)) + r"|utc)\b"
)
_ZONE = _lazy(_ZONE_TEXT)
_CLOCK = _lazy(
    r"(?<![\d:.,])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d+)?)?(?![\d:])"
    r"(?:\s?([AaPp])\.?[Mm]\b\.?)?"
    r"(?:\s*(Z\b|[+\-]\d{2}:?\d{2}\b|" + _ZONE_TEXT + r"))?"
)
_MONTH_NAMES = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
_MONTH_NAMES += r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
_DATE = _lazy(
    r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"
    r"|\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\b"
    rf"|\b({_MONTH_NAMES})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?"
    rf"|\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH_NAMES})\b\.?(?:,?\s+(\d{{4}})\b)?",
    re.I,
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


def _offset(token: str, day: date | None) -> int | None:
    """Minutes east of UTC for a zone as written ("PDT", "UTC-7", "+05:30", "PST/PDT"), or None."""
    token = token.strip().replace("−", "-")
    if signed := re.fullmatch(r"(?:UTC|GMT|utc)?\s*([+-])\s*(\d{1,2}):?(\d{2})?", token):
        minutes = int(signed.group(2)) * 60 + int(signed.group(3) or 0)
        return minutes if signed.group(1) == "+" else -minutes
    if token.upper() in _FIXED:
        return _FIXED[token.upper()]
    if seasonal := re.fullmatch(r"([PMCE])[SD]?T(?:\s*/\s*[PMCE][SD]T)?", token):
        standard, summer = _SEASONAL[seasonal.group(1)]
        return summer if day and _us_summer(day) else standard
    return None


def _us_summer(day: date) -> bool:
    """Daylight saving time in the US: from the second Sunday of March to the first Sunday of November."""
    march = date(day.year, 3, 1)
    start = march + timedelta(days=(6 - march.weekday()) % 7 + 7)
    november = date(day.year, 11, 1)
    return start <= day < november + timedelta(days=(6 - november.weekday()) % 7)


class _Stamp(NamedTuple):
    """A moment as a timeline entry writes it."""

    day: tuple[int, int, int] | None  # year (0: not given), month, day
    ambiguous: tuple[int, int, int] | None  # "11-01-2026": the same date read month first
    clock: time | None
    zone: str  # as written, or ""


def _date_of(match: re.Match[str]) -> tuple[tuple[int, int, int], tuple[int, int, int] | None]:
    groups = match.groups()
    if groups[0]:
        return (int(groups[0]), int(groups[1]), int(groups[2])), None
    if groups[3]:
        first, second, year = int(groups[3]), int(groups[4]), int(groups[5])
        return (year, second, first), ((year, first, second) if first <= 12 and second <= 12 else None)
    if groups[6]:
        return (int(groups[8] or 0), _MONTHS[groups[6][:3].lower()], int(groups[7])), None
    return (int(groups[11] or 0), _MONTHS[groups[10][:3].lower()], int(groups[9])), None


def _clock_of(match: re.Match[str]) -> time | None:
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if meridiem := match.group(4):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem.lower() == "p" else 0)
    return time(hour, minute, second)


_LEAD = _lazy(r"[\s>*_`|\[\](){}#:–—-]*")
_STAMP_START = _lazy(rf"[\s>*_`|\[\](){{}}#:–—-]*(?:\d|(?:{_MONTH_NAMES})\b)", re.I)


def _stamp(text: str, within: int = 24) -> _Stamp | None:
    """The date and time an entry starts with: both must begin within `within` characters of its start."""
    start = _LEAD.match(text).end()  # type: ignore[union-attr]
    head = text[: start + 80]
    day = _DATE.search(head, start)
    clock = _CLOCK.search(head, start)
    if day and day.start() - start > within:
        day = None
    if clock and clock.start() - start > (within if day is None else max(within, day.end() - start + 12)):
        clock = None
    if not day and not clock:
        return None
    parsed, ambiguous = _date_of(day) if day else (None, None)
    return _Stamp(
        parsed,
        ambiguous,
        _clock_of(clock) if clock else None,
        (clock.group(5) or "") if clock else "",
    )


_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45,
    "fifty": 50, "sixty": 60, "ninety": 90,
}  # fmt: skip
_WORD = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_UNIT = r"(?:(?i:days?|hours?|hrs?|minutes?|mins?|seconds?|secs?)|(?-i:[dhms]))(?![a-zA-Z])"  # 2M is a count
_LONG_UNIT = r"(?:days?|hours?|hrs?|minutes?|mins?|seconds?|secs?)(?![a-z])"
_PART = rf"(?:\d+(?:\.\d+)?\s*-?\s*{_UNIT}|\b(?:{_WORD})[\s-]+{_LONG_UNIT})"
_DURATION = _lazy(rf"(?<![\d.:])(?:{_PART})(?:(?:\s*,\s*|\s+and\s+|\s*)(?:{_PART}))*", re.I)
_PARTS = _lazy(rf"(\d+(?:\.\d+)?|\b(?:{_WORD})\b)[\s-]*({_UNIT})", re.I)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _seconds(duration: str) -> float:
    return sum(
        (float(number) if number[0].isdigit() else _NUMBER_WORDS[number.lower()]) * _SECONDS[unit[0].lower()]
        for number, unit in _PARTS.findall(duration)
    )


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes)
    return " ".join(parts + [f"{seconds} s"] * bool(seconds or not parts))


# Markdown: lines, headings, sections and their items.

_FENCE = _lazy(r"^\s{0,3}(`{3,}|~{3,})")
_COMMENT = _lazy(r"<!--.*?(?:-->|\Z)", re.S)
_BREAK_TAG = _lazy(r"<br\s*/?>", re.I)
_HEADING = _lazy(r"^\s{0,3}(#{1,6})[ \t]+(\S.*)$")  # the text's closing #s are dropped by _title
_UNDERLINE = _lazy(r"^\s{0,3}(=+|-+)\s*$")
_BOLD_LINE = _lazy(r"^\s*(\*\*|__)(?!\s)([^*_]{1,80}?)\1\s*:?\s*$")
_LABEL = _lazy(
    r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?([A-Za-z][\w /&'’()-]{0,48}?)\s*(?:\*\*|__)?\s*:\s*(?:\*\*|__)?\s*(\S.*)$"
)
_BULLET = _lazy(r"^(\s*)(?:[-*+]|\d{1,3}[.)])\s+(.*)$")
_ROW = _lazy(r"^\s*\|")
_SEPARATOR = _lazy(r"^\s*(?:\|\s*)?:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*(?:\|\s*)?$")
_REFERENCE = _lazy(r"^\s{0,3}\[([^\]]+)\]:\s*\S+")


class _Line(NamedTuple):
    number: int
    text: str
    level: int = 0  # a heading's level (7: a line in bold, or a bare section name), 0 for any other line
    title: str = ""
    start: bool = False  # begins a paragraph of its own: it followed a <br>


class _Block(NamedTuple):
    """A section's body (subheadings included), or a labelled line ("**Detection**: Borgmon paged…")."""

    title: str
    heading: int  # its heading's line number
    lines: tuple[_Line, ...]


class _Item(NamedTuple):
    line: int
    text: str
    cells: tuple[tuple[str, str], ...] = ()  # (lower-cased header, cell) of a table row
    context: str = ""  # the subheadings it is under, within its section
    prose: bool = False  # a paragraph, not a list item or a table row
    numbers: tuple[int, ...] = ()


class _Paragraph(NamedTuple):
    """Wrapped lines joined, so that a phrase broken by a line break is still found."""

    text: str
    numbers: tuple[int, ...]  # its lines' numbers
    starts: tuple[int, ...]  # where each line starts in the text

    def line_at(self, offset: int) -> int:
        return self.numbers[bisect_right(self.starts, offset) - 1]


class _Doc(NamedTuple):
    lines: tuple[_Line, ...]  # outside fenced code and comments
    blocks: Mapping[str, tuple[_Block, ...]]  # each section's blocks, by key
    paragraphs: tuple[_Paragraph, ...]
    scanned: tuple[_Paragraph, ...]  # the paragraphs of its first MAX_SCANNED characters
    references: frozenset[str]  # labels of reference-style links ([hook]: https://…)
    coded: frozenset[int]  # lines followed by a fenced block (a log excerpt backs them)
    strict: bool
    template: str  # why it is a template or placeholder document, or ""

    def body(self, key: str) -> tuple[_Line, ...]:
        return tuple(line for block in self.blocks.get(key, ()) for line in block.lines)

    def text(self, key: str) -> str:
        return " ".join(line.text for line in self.body(key) if not line.level)


def _title(text: str) -> str:
    return text.rstrip().rstrip("#").rstrip().strip("*_ ").rstrip(":").strip()


def _raw_lines(markdown: str) -> tuple[list[tuple[int, str, bool]], set[int]]:
    """(number, text, after a <br>) outside fenced code, comments and front matter; and the lines a fenced block
    follows."""
    text = _COMMENT.sub(lambda comment: "\n" * comment.group().count("\n"), markdown[:MAX_CHARS])
    raw = text.splitlines()
    if raw and raw[0].strip() == "---":  # front matter: --- … ---
        end = next((index for index in range(1, min(len(raw), 60)) if raw[index].strip() == "---"), 0)
        raw[: end + 1] = [""] * (end + 1)
    lines: list[tuple[int, str, bool]] = []
    coded: set[int] = set()
    fence = ""
    for number, line in enumerate(raw, 1):
        if opened := _FENCE.match(line):
            if not fence:
                coded.update(next(([n] for n, text, _ in reversed(lines[-4:]) if text.strip()), []))
            fence = "" if fence and opened.group(1)[0] == fence[0] else fence or opened.group(1)
        elif not fence:
            for index, part in enumerate(_BREAK_TAG.split(line[:MAX_LINE])):
                if index == 0 or part.strip():
                    lines.append((number, part, index > 0))
    return lines, coded


_ANY_NAME = {strict: _lazy("|".join(pattern.pattern for pattern in _OPENS[strict].values()), re.I) for strict in _OPENS}


@lru_cache(maxsize=1024)  # a long document repeats its headings and labels
def _names(title: str, strict: bool) -> tuple[str, ...]:
    if not _ANY_NAME[strict].search(title):  # one look first: most lines name no section
        return ()
    return tuple(key for key, pattern in _OPENS[strict].items() if pattern.search(title))


def _headings(raw: list[tuple[int, str, bool]], strict: bool) -> list[_Line]:
    """Each line, with its heading level and title if it is one: ATX (#), Setext (underlined), and in the lenient
    reading a line in bold or a bare section name ("Action Items") on its own."""
    lines: list[_Line] = []
    skip = False
    for index, (number, text, start) in enumerate(raw):
        if skip:
            skip = False
            continue
        following = raw[index + 1][1] if index + 1 < len(raw) else ""
        previous = raw[index - 1][1] if index else ""
        if heading := _HEADING.match(text):
            lines.append(_Line(number, text, len(heading.group(1)), _title(heading.group(2)), start))
        elif (
            text.strip()
            and not previous.strip()
            and (underline := _UNDERLINE.match(following))
            and not _BULLET.match(text)
            and not _ROW.match(text)
        ):
            lines.append(_Line(number, text, 1 if underline.group(1)[0] == "=" else 2, _title(text), start))
            skip = True
        elif not strict and (bold := _BOLD_LINE.match(text)) and len(bold.group(2).split()) <= 8:
            lines.append(_Line(number, text, 7, _title(bold.group(2)), start))
        elif (
            not strict
            and not previous.strip()
            and len(name := _title(text)) <= 40
            and not re.search(r"[.!?|]|\d", name)
            and _names(name, strict)
            and not _BULLET.match(text)
        ):
            lines.append(_Line(number, text, 7, name, start))
        else:
            lines.append(_Line(number, text, 0, "", start))
    return lines


def _blocks(lines: list[_Line], strict: bool) -> dict[str, list[_Block]]:
    """A section runs to the next heading of the same or a higher level. Headings under an action-items section
    group its items ("### Detection" there is not the detection analysis). The lenient reading also takes a
    labelled line ("**Impact**: 23% of requests", "Duration: 19 hours") as a section of its own."""
    found: dict[str, list[_Block]] = {}
    stack: list[tuple[int, int, str, Sequence[str], bool]] = []  # (level, index, title, keys, under action items)

    def close(end: int) -> None:
        level, start, title, keys, _ = stack.pop()
        for key in keys:
            found.setdefault(key, []).append(_Block(title, lines[start].number, tuple(lines[start + 1 : end])))

    for index, line in enumerate(lines):
        if line.level:
            while stack and stack[-1][0] >= line.level:
                close(index)
            grouped = any(keys and "action_items" in keys or under for _, _, _, keys, under in stack)
            keys = () if grouped else _names(line.title, strict)
            stack.append((line.level, index, line.title, keys, grouped))
        elif (
            not strict and ":" in line.text and (label := _LABEL.match(line.text)) and len(label.group(1).split()) <= 6
        ):
            names: Sequence[str] = _names(label.group(1), strict)
            if _BULLET.match(line.text):  # "- **Effective customer remediation**: …" is no action item
                names = [key for key in names if _OPENS[strict][key].match(label.group(1))]
            if not names or any("action_items" in keys or under for _, _, _, keys, under in stack):
                continue
            body = [_Line(line.number, label.group(2))]
            for following in lines[index + 1 : index + 20]:
                if following.level or not following.text.strip() or following.start or _BULLET.match(following.text):
                    break
                if _LABEL.match(following.text):
                    break
                body.append(following)
            for key in names:
                found.setdefault(key, []).append(_Block(_title(label.group(1)), line.number, tuple(body)))
    while stack:
        close(len(lines))
    return found


# A blank line, a heading, a list item or a table row starts a paragraph.
_BREAK = _lazy(r"\s*$|\s{0,3}#{1,6}[ \t]|\s*(?:[-*+]|\d{1,3}[.)])\s|\s*\|")


def _paragraphs(lines: Iterable[_Line]) -> Iterator[_Paragraph]:
    parts: list[str] = []
    numbers: list[int] = []
    starts: list[int] = []
    size = 0
    for line in lines:
        if numbers and (
            line.level or line.start or _BREAK.match(line.text) or len(numbers) >= 50 or line.number > numbers[-1] + 1
        ):
            yield _Paragraph(" ".join(parts), tuple(numbers), tuple(starts))
            parts, numbers, starts, size = [], [], [], 0
        if (text := line.text.strip()) and not line.level:
            parts.append(text)
            numbers.append(line.number)
            starts.append(size)
            size += len(text) + 1
    if numbers:
        yield _Paragraph(" ".join(parts), tuple(numbers), tuple(starts))


def _parse(markdown: str, strict: bool) -> _Doc:
    raw, coded = _raw_lines(markdown)
    lines = _headings(raw, strict)
    references = frozenset(
        match.group(1).lower() for line in lines if (match := _REFERENCE.match(line.text)) is not None
    )
    paragraphs = tuple(_paragraphs(lines))
    size, scanned = 0, 0
    while scanned < len(paragraphs) and size < MAX_SCANNED:
        size += len(paragraphs[scanned].text)
        scanned += 1
    return _Doc(
        tuple(lines),
        {key: tuple(blocks) for key, blocks in _blocks(lines, strict).items()},
        paragraphs,
        paragraphs[:scanned],
        references,
        frozenset(coded),
        strict,
        _template(lines, references),
    )


def _cells(text: str) -> list[str]:
    return [cell.strip() for cell in text.strip().strip("|").split("|")]


_REFERENCE_ONLY = _lazy(r"^\s*(?:see\b.{0,120}?)?(?:!?\[[^\]]*\]\([^)]*\)|https?://\S+|<img\b[^>]*>)\W*$", re.I)


def _continues(kind: str, line: _Line, text: str, indent: int, blank: bool) -> bool:
    """Whether a line that is no list item nor table row continues the item before it."""
    if line.start:
        return False
    if kind == "list":
        return indent >= 0 and (text[:1].isspace() or not blank)  # indented, or a lazy continuation
    # a wrapped line, unless an entry starts (a digit or a month first: a cheap look before the real one)
    return kind == "prose" and not blank and not (_STAMP_START.match(text) and _stamp(text, 4) is not None)


def _items(lines: Iterable[_Line]) -> tuple[list[_Item], list[_Item]]:
    """A section's list items (nested bullets, indented and lazily continued lines join their item) and table rows,
    and its paragraphs (wrapped lines joined; a paragraph that is only a link or an image joins the item before)."""
    found: list[list[Any]] = []  # [number, parts, cells, context, kind, numbers]
    header: list[str] | None = None
    context: list[tuple[int, str]] = []
    indent, blank = -1, True
    lines = list(lines)
    for position, line in enumerate(lines):
        text = line.text
        if line.level:
            while context and context[-1][0] >= line.level:
                context.pop()
            context.append((line.level, line.title))
            header, indent, blank = None, -1, True
            continue
        where = " / ".join(title for _, title in context)
        last = found[-1] if found else None
        if not text.strip():
            header, blank = None, True
            continue
        if _ROW.match(text):
            indent = -1
            if _SEPARATOR.match(text):
                continue
            cells = _cells(text)
            following = lines[position + 1].text if position + 1 < len(lines) else ""
            if _SEPARATOR.match(following):
                header = [cell.lower() for cell in cells]
                found.append([line.number, [" | ".join(cells)], (), where, "header", [line.number]])
            else:
                pairs = tuple(zip(header or (), cells, strict=False))
                found.append([line.number, [" | ".join(cells)], pairs, where, "row", [line.number]])
        elif bullet := _BULLET.match(text):
            if last and last[4] == "list" and indent >= 0 and len(bullet.group(1)) > indent:
                last[1].append(bullet.group(2))
                last[5].append(line.number)
            else:
                indent = len(bullet.group(1))
                found.append([line.number, [bullet.group(2)], (), where, "list", [line.number]])
        elif last and _continues(last[4], line, text, indent, blank):
            last[1].append(text.strip())
            last[5].append(line.number)
        else:
            indent = -1
            found.append([line.number, [text.strip()], (), where, "prose", [line.number]])
        blank = False
    merged: list[list[Any]] = []
    for record in found:  # a paragraph that is only a link or an image ("See the diff [here](…)") backs the item before
        previous = merged[-1] if merged else None
        if (
            record[4] == "prose"
            and previous
            and previous[4] != "header"
            and previous[3] == record[3]
            and _REFERENCE_ONLY.match(" ".join(record[1]))
        ):
            previous[1].extend(record[1])
            previous[5].extend(record[5])
        else:
            merged.append(record)
    found = merged
    # A header row with no row below it was a one-row table: keep its text as an item.
    items = [
        _Item(number, "; ".join(parts), cells, where, kind == "prose", tuple(numbers))
        for number, parts, cells, where, kind, numbers in found[:MAX_ITEMS]
        if kind != "header" or not any(other[4] == "row" and other[3] == where for other in found)
    ]
    return [item for item in items if not item.prose], [item for item in items if item.prose]


def _cell(item: _Item, header: re.Pattern[str]) -> str | None:
    return next((cell for name, cell in item.cells if header.search(name)), None)


def _missing_section(key: str) -> _Verdict:
    name = SECTIONS[key].name
    return _Verdict(ABSENT, f"no {name} section (no heading such as “## {name}”)")


# Templates and placeholder documents: mostly headings, prompts in brackets, empty tables.

_PROMPTS = _lazy(
    r"\{[^{}]*\}|(?<!\\)<(?=[A-Z])[^<>]*(?:>|$)|\[[^\]\n\d]*[A-Za-z]{2}[^\]\n\d]*\](?!\s*[(\[:])"
    r"|\b(?:YYYY|YY|MM|DD|HH|SS|mm|X{2,}|Y{3,}|Z{3,}|[12]0xx|TBD|TBA|TODO|N/A)\b|…|\.\.\.",
    re.M,
)
_PROMPT_LINE = _lazy(
    r"\s*(?:[-*+]|\d+[.)])?\s*(?:\[\s?[xX]?\s?\]\s*)?"  # an empty list item or checkbox
    r"|\s*>.*\?\s*"  # a question in a quote
    r"|\s*([_*])(?!\1)[^_*].*[^_*\s]\1\s*"  # a line in italics
    r"|\s*[-*+]\s*\[\s?\].*"  # an unchecked checklist item: an instruction
)


def _prompt(text: str) -> bool:
    """A line that only prompts: an empty item, a question in a quote, an instruction in italics, an empty row."""
    if _PROMPT_LINE.fullmatch(text):
        return True
    return bool(_ROW.match(text)) and not _SEPARATOR.match(text) and all(_placeholder(cell) for cell in _cells(text))


def _template(lines: list[_Line], references: frozenset[str]) -> str:
    """Why the document is a template or a placeholder, or "" when it says something to grade: nothing outside its
    headings, or prompts and placeholders ({…}, <…>, [Name], YYYY-MM-DD, TBD, an empty row) with fewer than
    TEMPLATE_WORDS words outside them, or one for every five words of fewer than five times that. A short note
    without prompts is graded. Read line by line until it is clearly a postmortem."""
    words = prompts = 0

    def drop(match: re.Match[str]) -> str:
        nonlocal prompts
        if match.group().startswith("[") and match.group()[1:-1].lower() in references:
            return match.group()
        prompts += 1
        return " "

    text = [line.text for line in lines if not line.level]
    for start in range(0, len(text), 50):
        chunk = [line for line in text[start : start + 50] if line.strip()]
        kept = [line for line in chunk if not _prompt(line)]
        prompts += len(chunk) - len(kept)
        # chunks joined: an angle-bracket prompt may run over several lines
        words += len(re.findall(r"[A-Za-z][A-Za-z'’]+", _PROMPTS.sub(drop, "\n".join(kept))))
        if words >= 5 * TEMPLATE_WORDS:
            return ""
    if words and (not prompts or (words >= TEMPLATE_WORDS and prompts * 5 < words)):
        return ""
    if not words and not prompts:
        headings = any(line.level for line in lines)
        return ("nothing but headings" if headings else "an empty document") + ": nothing to grade"
    return (
        f"a template or placeholder document: {words} words outside headings, prompts and placeholders"
        f" ({prompts} prompt{'s' * (prompts != 1)} or placeholder{'s' * (prompts != 1)}), nothing to grade"
    )


# Result fields: anything of the wrong type counts as not stated.


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value[:MAX_ITEMS] if isinstance(value, list | tuple) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):  # Decimal: as DynamoDB keeps numbers
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer JSON number of hundreds of digits
        return None
    return number if math.isfinite(number) else None


# Evidence: a link, a backticked reference, an id as PagerDuty writes them, an issue or pull request, a commit.

_EVIDENCE = _lazy(
    r"`[^`]+`|!?\[[^\[\]]*\]\([^()\s]+\)|https?://\S+|<img\b[^>]*>"
    r"|\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{6,}\b"
    r"|(?<![\w#&])#\d{2,}\b|\b[A-Z][A-Z0-9]+-\d+\b"
    r"|\b(?i:pr|pull request|issue|bug|ticket|change|cl|internal id|id)\s?[#:]?\s?\d{3,}\b"
    r"|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"
)
_REFERENCE_USE = _lazy(r"\[([^\[\]]+)\](?!\()(?:\[([^\[\]]*)\])?")


_NAME_SPAN = _lazy(r"`(?![^`]*(?:\d|[@#]|\.[A-Za-z]{1,5}\b))[^`]*`")  # `hakawai-gateway`, `/reports`


def _evidence(text: str, doc: _Doc) -> bool:
    """A link, an id, an issue, a commit, or a reference-style link the document defines. In the lenient reading a
    backticked name (`checkout-api`) is not evidence; a backticked id, version or file (`api@4f2c9e1`) is."""
    if not doc.strict:
        text = _NAME_SPAN.sub(" ", text)
    if _EVIDENCE.search(text):
        return True
    return any((used.group(2) or used.group(1)).lower() in doc.references for used in _REFERENCE_USE.finditer(text))


# 1. An evidence-linked timeline in UTC.


class _Entry(NamedTuple):
    line: int
    text: str
    moment: datetime | None  # in UTC when its zone is known, else as written
    zoned: bool
    utc: bool
    evidence: bool
    block: int
    clock: time | None = None  # as written, before any zone


_DECLARED = _lazy(
    r"\b(?:all\s+)?times?\b(?:[^.\n|]{0,40}?\b(?:in|are|as|shown in)\b[^.\n|]{0,25}?|\s+)(?P<zone>" + _ZONE_TEXT + ")",
    re.I,
)
_TIME_HEADER = _lazy(r"\b(?:time|when|date|timestamp)\b.*?\(?\b(?P<zone>" + _ZONE_TEXT + r")\)?", re.I)
_UTC_WORD = _lazy(r"\butc\b", re.I)
_YEAR = _lazy(r"\b(?:19|20)\d{2}\b")


def _declared(texts: Iterable[str]) -> str:
    for text in texts:
        if found := _DECLARED.search(text) or _TIME_HEADER.search(text):
            return found.group("zone")
    return ""


_NARRATED = _lazy(r"^\W*(?:at|by|on|around|shortly (?:after|before))\s+(?=\d|[A-Z][a-z]{2})", re.I)


def _timeline_blocks(doc: _Doc) -> list[tuple[_Block, list[_Item], list[_Item]]]:
    """Each timeline section, with its items and paragraphs; a timeline inside another keeps its own entries. Without
    one, the lenient reading takes three or more paragraphs or items that start with a time ("At 3:28 PM UTC, …") for
    a timeline told in prose."""
    blocks = sorted(doc.blocks.get("timeline", ()), key=lambda block: block.heading)
    if not blocks and not doc.strict:
        last = doc.scanned[-1].numbers[-1] if doc.scanned else 0
        items, prose = _items(line for line in doc.lines if line.number <= last)
        told = [
            item
            for item in sorted([*items, *prose], key=lambda item: item.line)
            if (stamp := _stamp(_NARRATED.sub("", item.text))) is not None and stamp.clock is not None
        ]
        if len(told) >= 3:
            return [(_Block("", told[0].line, ()), told, [])]
        return []
    owner: dict[int, int] = {}
    for index, block in enumerate(blocks):
        owner.update((line.number, index) for line in block.lines)
    found = []
    count = 0
    for index, block in enumerate(blocks):
        if count >= MAX_ITEMS:  # a document of many timelines: the first MAX_ITEMS entries are judged
            break
        items, prose = _items(block.lines)
        mine = [item for item in items if owner.get(item.line) == index]
        found.append((block, mine, [item for item in prose if owner.get(item.line) == index]))
        count += len(mine) + len(found[-1][2])
    return found


def _resolve_days(stamps: list[_Stamp | None]) -> list[tuple[int, int, int] | None]:
    """Dates as written, with "11-01-2026" read day first or month first, whichever keeps the entries in order."""
    days = [stamp.day if stamp else None for stamp in stamps]
    if not any(stamp and stamp.ambiguous for stamp in stamps):
        return days
    other = [(stamp.ambiguous or stamp.day) if stamp else None for stamp in stamps]

    def ordered(candidate: list[tuple[int, int, int] | None]) -> tuple[bool, int]:
        known = [day for day in candidate if day and day[0]]
        try:
            span = (date(*known[-1]) - date(*known[0])).days if known else 0
        except ValueError:
            return False, 0
        return known == sorted(known), span

    first, second = ordered(days), ordered(other)
    return other if (second[0], -second[1]) > (first[0], -first[1]) else days


def _timeline(doc: _Doc, blocks: list[tuple[_Block, list[_Item], list[_Item]]]) -> list[_Entry]:
    """The timeline's entries, each with its moment: a date from the entry, a date heading or line above it, or the
    previous entry (the next day past midnight); a zone from the entry, its timeline, or the document."""
    entries: list[_Entry] = []
    if not blocks:
        return entries
    document_zone = "" if doc.strict else _declared(paragraph.text for paragraph in doc.scanned)
    year = next((int(match.group()) for paragraph in doc.scanned if (match := _YEAR.search(paragraph.text))), 1970)
    for number, (block, items, prose) in enumerate(blocks):
        if len(entries) >= MAX_ITEMS:
            break
        if doc.strict:
            candidates = items or [item for item in prose if _stamp(item.text, 80)]
            declared = (
                "UTC"
                if _UTC_WORD.search(block.title)
                or any(_UTC_WORD.search(item.text) for item in prose)
                or any(_UTC_WORD.search(name) for item in items for name, _ in item.cells)
                else ""
            )
        else:
            candidates = sorted([*items, *prose], key=lambda item: item.line)
            in_title = _ZONE.search(block.title)
            declared = in_title.group() if in_title else _declared(name for item in items for name, _ in item.cells)
            declared = declared or _declared(item.text for item in prose if not _stamp(item.text))
            declared = declared or document_zone
        stamps = [
            _stamp(item.cells[0][1] if item.cells else item.text, 80)
            if doc.strict
            else _stamp(_NARRATED.sub("", item.cells[0][1] if item.cells else item.text))
            for item in candidates
        ]
        days = _resolve_days(stamps)
        current: date | None = None
        previous: datetime | None = None
        context = told = ""  # told: the last zone an entry gave, which the next ones without a zone keep
        for item, stamp, day in zip(candidates, stamps, days, strict=True):
            if day is None and item.context != context and (heading_day := _DATE.search(item.context)):
                day = _date_of(heading_day)[0]
            context = item.context
            if day is not None:
                try:
                    current = date(day[0] or year, day[1], day[2])
                except ValueError:
                    current = None
            if stamp is None or stamp.clock is None:
                if not doc.strict and stamp is not None and len(item.text.split()) <= 6:
                    continue  # a date on its own line dates what follows
                if doc.strict or stamp is not None:
                    evidence = _evidence(item.text, doc)
                    entries.append(_Entry(item.line, item.text, None, False, False, evidence, number))
                continue
            zone = stamp.zone or declared or (told if not doc.strict else "")
            told = stamp.zone or told
            offset = _offset(zone, current) if zone else None
            evidence = _evidence(item.text, doc) or any(n in doc.coded for n in item.numbers)
            try:
                local = datetime.combine(current or date(year, 1, 1), stamp.clock)
                if previous and stamp.day is None and previous - timedelta(days=1) < local < previous:
                    local += timedelta(days=1)  # past midnight
                moment = local - timedelta(minutes=offset or 0)
            except OverflowError:  # past the year 9999
                entries.append(_Entry(item.line, item.text, None, False, False, evidence, number))
                continue
            previous, current = local, local.date()
            entries.append(
                _Entry(item.line, item.text, moment, offset is not None, offset == 0, evidence, number, local.time())
            )
    return entries[:MAX_ITEMS]


def _timeline_md(doc: _Doc, reference: _Reference) -> _Verdict:
    if not reference.timeline:
        return _missing_section("timeline")
    entries = reference.entries
    lines = tuple(entry.line for entry in entries)
    if doc.strict:
        without_time = [f"line {entry.line}" for entry in entries if not entry.utc]
        without_evidence = [f"line {entry.line}" for entry in entries if not entry.evidence]
        verdict = _timeline_verdict(len(entries), without_time, without_evidence, lines)
        if verdict.state == PASS and not doc.text("resolution").strip():
            # The bridge's template asks for what ended the incident in a section of its own.
            return _Verdict(FAIL, verdict.why + "; but no Resolution section says what ended it", lines)
        return verdict
    timed = [entry for entry in entries if entry.moment]
    if len(entries) < 2:
        return _Verdict(FAIL, f"the timeline has {len(entries)} dated entr{'y' if len(entries) == 1 else 'ies'}")
    where = f"timeline ({_at(lines)}) has {len(entries)} entries"
    unzoned = [f"line {entry.line}" for entry in timed if not entry.zoned]
    backed = sum(entry.evidence for entry in entries)
    problems = []
    if unzoned:
        problems.append(f"{len(unzoned)} times without a zone or offset ({_listed(unzoned, ', ')})")
    if backed * 5 < len(entries) or not backed:
        problems.append(f"only {backed} carr{'y' if backed != 1 else 'ies'} evidence (a link, id, commit or log)")
    if problems:
        return _Verdict(FAIL, f"{where}: " + "; ".join(problems), lines)
    return _Verdict(PASS, f"{where}, with zoned times, {backed} of them with evidence", lines)


def _timeline_verdict(
    count: int, without_time: list[str], without_evidence: list[str], lines: tuple[int, ...] = ()
) -> _Verdict:
    if count < 2:
        return _Verdict(FAIL, f"the timeline has {count} entr{'y' if count == 1 else 'ies'}, fewer than 2", lines)
    problems = [
        f"{len(found)} {what} ({_listed(found, ', ')})"
        for found, what in ((without_time, "without a UTC time"), (without_evidence, "without evidence"))
        if found
    ]
    if problems:
        return _Verdict(FAIL, f"timeline has {count} entries: " + "; ".join(problems), lines)
    return _Verdict(PASS, f"timeline has {count} entries, each with a UTC time and evidence", lines)


_UTC_AT = _lazy(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z")


def _timeline_result(result: Mapping[str, Any], _: Mapping[str, Any]) -> _Verdict:
    entries = [_map(entry) for entry in _list(result.get("timeline"))]
    if not entries:
        return _Verdict(ABSENT, "the result has no timeline")
    without_time = [
        f"timeline[{i}]" for i, entry in enumerate(entries) if not _UTC_AT.fullmatch(_text(entry.get("at")))
    ]
    without_evidence = [
        f"timeline[{i}]" for i, entry in enumerate(entries) if not any(map(_text, _list(entry.get("evidence"))))
    ]
    verdict = _timeline_verdict(len(entries), without_time, without_evidence)
    if verdict.state == PASS and not _text(_map(result.get("resolution")).get("what")):
        return _Verdict(FAIL, verdict.why + "; but no resolution.what says what ended it")
    return verdict


# 2. Response times: every stated figure agrees with the record (or the document's own timeline).

_ACK, _RESOLVE = "seconds_to_first_ack", "seconds_to_resolve"
_MEASURES = {
    _ACK: "time to acknowledge",
    _RESOLVE: "time to resolve",
    "detect": "time to detect",
    "duration": "duration",
}
_STATED = {
    _ACK: _lazy(r"\btime[ -]to[ -](?:first[ -])?ack\w*|\bm?tta\b|\backnowledged\s+(?:after|in|within)\b", re.I),
    _RESOLVE: _lazy(r"\btime[ -]to[ -]resol\w*|\bm?ttr\b|\bresolved\s+(?:after|in|within)\b", re.I),
}
# What the lenient reading also takes for a stated figure, and which measure it is.
_PHRASES = {
    "detect": _lazy(
        r"\btime[ -]to[ -]detect\w*|\bm?ttd\b|\bdetection (?:delay|time)\b|\bundetected\b(?: by \w+)?"
        r"|\b(?:detected|noticed|discovered|identified)\s+(?:after|in|within)\b",
        re.I,
    ),
    _RESOLVE: _lazy(
        r"\btime[ -]to[ -](?:recover\w*|restor\w*|mitigat\w*|repair|fix)\b|\bm?ttm\b"
        r"|\b(?:mitigated|restored|recovered|fixed)\s+(?:after|in|within)\b",
        re.I,
    ),
    "duration": _lazy(
        r"\b(?:outage|incident|impact|downtime|disruption)\s+duration\b|\bduration\b|\bdowntime\b|\boutage\b"
        r"|\b(?:was|were|been|went|is)\s+(?:down|offline|unavailable|broken|degraded)\b|\bdown for\b"
        r"|\blast(?:ed|ing|s)\b|\bpersist(?:ed|s)?\b|\bfailed for\b"
        r"|\b(?:could(?:n[o'’]t| not)|can(?:no|')t|unable to)\b[^.;]{0,50}?\bfor\b",
        re.I,
    ),
}
_DELAY = _lazy(r"\s*(?:-\s*)?delay\b", re.I)  # "a ~2 hour delay between the report and …"
_VERB_AFTER = _lazy(  # "was discovered 3 hours after the bug was filed"
    r"\b(?:(?P<detect>detected|noticed|discovered|identified|found|reported|spotted)"
    r"|(?P<ack>acknowledged|responded to)|(?P<resolve>resolved|fixed|mitigated|restored|recovered))"
    rf"\s+(?:[\w-]+\s+){{0,2}}?(?P<duration>{_DURATION.pattern})\s+(?:after|later|from)\b",
    re.I,
)
_NAMED_SPAN = _lazy(  # "a 47 minute period during which …", "7 hours of downtime"; not "a 75-second stall"
    r"\s*(?:-\s*)?(?:long\s+)?(?:period (?:during which|of (?:the )?(?:outage|downtime|impact))|outage|window"
    r"|disruption|of downtime|of (?:the )?outage)\b",
    re.I,
)
_HEDGES = _lazy(
    r"(?P<approx>about|around|approximately|approx\.?|roughly|~|≈|circa|some|close to)"
    r"|(?P<over>just over|over|more than|at least|upwards of)"
    r"|(?P<under>just under|under|less than|at most|at maximum|a maximum of|maximum of|almost|nearly)"
    r"|(?P<within>within|up to)",
    re.I,
)
_HEDGE_BEFORE = _lazy(rf"(?:{_HEDGES.pattern})\s*(?:of\s+)?$", re.I)
_RANGE = _lazy(r"(\d+(?:\.\d+)?)\s*(?:-|–|to)\s*$")
_CLOCKISH = rf"(?:(?:{_DATE.pattern})[\sT,]*)?{_CLOCK.pattern}"
_WINDOW = _lazy(
    rf"\b(?:from|between)\s+(?P<a>{_CLOCKISH})\s*(?:to|and|until|till|-|–)\s*(?P<b>{_CLOCKISH})"
    rf"|\((?P<c>{_CLOCKISH})\s*(?:-|–|to)\s*(?P<d>{_CLOCKISH})\)",
    re.I,
)


class _Figure(NamedTuple):
    measure: str
    seconds: float
    high: float  # the upper end of "4-5 hours"; else the same as seconds
    hedge: str  # "", approx, over, under, within
    line: int
    quote: str
    window: bool = False  # "from 15:30 to 18:10": the document's own times, a reference for its other figures
    ends: tuple[time, time] | None = None  # a window's start and end as written
    loose: bool = False  # "from ±01:00 to ±10:00": ends given roughly


def _agrees(figure: _Figure, actual: float) -> bool:
    low, high, slack = figure.seconds, figure.high, TOLERANCE_SECONDS
    if figure.hedge == "within":
        return actual <= high + slack
    if figure.hedge or high != low:
        low_ok = actual >= low * (1 - HEDGE) - slack if figure.hedge != "over" else actual >= low - slack
        high_ok = actual <= high * (1 + HEDGE) + slack if figure.hedge != "under" else actual <= high + slack
        return low_ok and high_ok
    return abs(actual - low) <= slack


def _moment(text: str) -> tuple[datetime, int | None] | None:
    """A moment written in a stated window ("from 14:02 to 15:20 PST"), and its offset when it gives a zone."""
    clock = _CLOCK.search(text)
    if not clock or (at := _clock_of(clock)) is None:
        return None
    day = _DATE.search(text)
    parsed = _date_of(day)[0] if day else (1970, 1, 1)
    try:
        moment = datetime.combine(date(parsed[0] or 1970, parsed[1], parsed[2]), at)
    except ValueError:
        return None
    return moment, _offset(clock.group(5), moment.date()) if clock.group(5) else None


_TWO_CLOCKS = _lazy(r"\d:\d\d.*?\d:\d\d")
_DIGIT_OR_WORD = _lazy(rf"\d|\b(?:{_WORD})[\s-]+{_LONG_UNIT}", re.I)  # a paragraph that may state a figure


def _figures(doc: _Doc, skip: frozenset[int]) -> list[_Figure]:
    """Each response figure the Markdown states outside its timeline's entries: after a phrase or label ("lasted",
    "Duration:", "time to detect"), as a window ("from 14:02 to 15:20"), or in a table column so named."""
    found: list[_Figure] = []
    columns: list[str | None] = []  # the measure each column of the current table states, if any
    for index, line in enumerate(doc.lines):
        if not _ROW.match(line.text) or line.number in skip:
            columns = columns if _ROW.match(line.text) else []
            continue
        following = doc.lines[index + 1].text if index + 1 < len(doc.lines) else ""
        if _SEPARATOR.match(following):
            phrases = (*_STATED.items(), *_PHRASES.items())
            columns = [
                next((key for key, phrase in phrases if phrase.search(name)), None) for name in _cells(line.text)
            ]
            continue
        for measure, cell in zip(columns, _cells(line.text), strict=False) if any(columns) else ():
            if measure and (duration := _DURATION.search(cell)):
                found.extend(_figure(_Paragraph(cell, (line.number,), (0,)), duration, measure, []))
    for paragraph in doc.scanned:
        if len(found) >= MAX_FIGURES:
            break
        if paragraph.numbers[0] in skip or not _DIGIT_OR_WORD.search(paragraph.text):
            continue
        if not _DURATION.search(paragraph.text) and not _TWO_CLOCKS.search(paragraph.text):
            continue  # no duration, no window: nothing to read (and a big document stays fast)
        text = paragraph.text
        taken: list[tuple[int, int]] = []
        for window in _WINDOW.finditer(text):
            first, second = (window.group("a"), window.group("b")) if window.group("a") else window.group("c", "d")
            start, end = _moment(first), _moment(second)
            if not start or not end:
                continue
            # "from 15:30 to 18:10 UTC": one zone for both ends; two zones are converted
            offsets = (start[1], end[1]) if start[1] is not None and end[1] is not None else (0, 0)
            seconds = (end[0] - start[0]).total_seconds() - (offsets[1] - offsets[0]) * 60
            if seconds < 0:
                seconds += 86400
            where = paragraph.line_at(window.start())
            loose = bool(re.search(r"[~±≈]|\babout\b|\baround\b|\bapprox", window.group(), re.I))
            ends = (start[0].time(), end[0].time())
            found.append(
                _Figure("duration", seconds, seconds, "", where, window.group().strip(" ()"), True, ends, loose)
            )
            taken.append(window.span())
        for measure, phrase in (*_STATED.items(), *_PHRASES.items()):
            for match in phrase.finditer(text):
                found.extend(_after(paragraph, match, measure, taken))
        for duration in _DURATION.finditer(text):
            if any(start <= duration.start() < end for start, end in taken):
                continue
            if _NAMED_SPAN.match(text, duration.end()):
                found.extend(_figure(paragraph, duration, "duration", taken))
            elif _DELAY.match(text, duration.end()):
                found.extend(_figure(paragraph, duration, "detect", taken))
        for stated in _VERB_AFTER.finditer(text):
            measure = next(name for name in ("detect", "ack", "resolve") if stated.group(name))
            inner = _DURATION.search(text, stated.start("duration"))
            if inner:
                found.extend(_figure(paragraph, inner, {"ack": _ACK, "resolve": _RESOLVE}.get(measure, measure), taken))
    return found[:MAX_ITEMS]


def _after(paragraph: _Paragraph, match: re.Match[str], measure: str, taken: list[tuple[int, int]]) -> list[_Figure]:
    """The duration a phrase introduces: within 60 characters after it, in the same sentence."""
    text = paragraph.text
    window = text[match.end() : match.end() + 80]
    duration = _DURATION.search(window)
    if not duration or duration.start() > 60 or re.search(r"[.;!?]\s|\)\s*[.;]", window[: duration.start()] + " "):
        return []
    between = window[: duration.start()]
    if any(other.search(between) for other in (*_STATED.values(), *_PHRASES.values())):
        return []
    if re.search(r"\b(?:ago|after the|later|earlier|before|sooner)\b", window[duration.end() : duration.end() + 12]):
        return []
    absolute = _DURATION.search(text, match.end() + duration.start())
    return _figure(paragraph, absolute, measure, taken) if absolute else []


def _figure(
    paragraph: _Paragraph, duration: re.Match[str], measure: str, taken: list[tuple[int, int]]
) -> list[_Figure]:
    """A stated duration, with its hedge ("about", "over", "within") and the lower end of a range ("4-5 hours")."""
    if any(start <= duration.start() < end for start, end in taken):
        return []
    taken.append(duration.span())
    before = paragraph.text[max(0, duration.start() - 24) : duration.start()]
    high = _seconds(duration.group())
    low = high
    quote = duration.group()
    if spread := _RANGE.search(before):
        first = _PARTS.match(duration.group())
        low = float(spread.group(1)) * _SECONDS[first.group(2)[0].lower()] if first else high
        before, quote = before[: spread.start()], f"{spread.group().strip()} {quote}"
    hedge = ""
    if hedged := _HEDGE_BEFORE.search(before.rstrip()):
        hedge = next(name for name, value in hedged.groupdict().items() if value)
        quote = f"{hedged.group().strip()} {quote}"
    if measure == "duration" and hedge == "within":
        hedge = "under"
    return [_Figure(measure, min(low, high), high, hedge, paragraph.line_at(duration.start()), quote)]


# The document's own timeline as a reference: from where the outage (or the page) started to where it was noticed,
# acknowledged, resolved or ended. Entries marked "START OF OUTAGE" / "OUTAGE ENDS" are taken when there are any.

_START_MARK = _lazy(
    r"\b(?:start|beginning) of (?:the )?(?:outage|incident|impact)\b"
    r"|\b(?:outage|incident|impact|downtime)\s+(?:begins|began|starts|started)\b",
    re.I,
)
_END_MARK = _lazy(
    r"\bend of (?:the )?(?:outage|incident|impact)\b|\b(?:outage|incident|impact|downtime)\s+(?:ends|ended|over)\b",
    re.I,
)
_CHANGED = _lazy(
    r"\b(?:deploy\w*|releas\w*|merged?|roll(?:ed|s)? ?out|rollout|upgrad\w*|bump\w*|pushed|applied|commenced"
    r"|migrat\w*|chang(?:e|ed|es)|enabled|disabled|submit\w*|committed|introduc\w*|t[ao]ke?s? effect|took effect)\b",
    re.I,
)
_BROKE = _lazy(
    r"\b(?:begins?|began|starts?|started)\s+(?:to\s+)?(?:fail|error|return|experienc|crash|degrad|impact|serv|melt"
    r"|restart)\w*|\b(?:\d{3}s?|5xx|errors?|failures?|responses?|requests?)\s+(?:start|begin|began)\w*"
    r"|\btriggered\b|\bwent down\b|\b(?:is|was) down\b|\b(?:failures?|errors?) (?:began|begin|start)\w*",
    re.I,
)
_ENDED = _lazy(
    r"\b(?:resolv\w*|restor\w*|recover\w*|mitigat\w*|back (?:online|up|to normal)|healthy|fixed|fix (?:lands|deployed)"
    r"|operational|resumed|functional)\b",
    re.I,
)
_NOTICED = _lazy(
    r"\b(?:detect\w*|notic\w*|report\w*|alert\w*|pag(?:ed|es|ing)|aware|inform\w*|discover\w*|witness\w*|declared"
    r"|acknowledg\w*|escalat\w*|ping(?:s|ed)|found|identified|flagged|spotted|fired|warn\w*)\b",
    re.I,
)
_EVENTS = {
    "triggered": _lazy(r"\btriggered\b|\bincident\s+(?:opened|created)\b", re.I),
    "acknowledged": _lazy(r"\backnowledged\b", re.I),
    "resolved": _lazy(r"\bresolved\b", re.I),
}


def _spans(entries: Iterable[_Entry], measure: str) -> list[tuple[float, _Entry, _Entry]]:
    """(seconds, from, to) for each pair of entries that could measure `measure`, within each timeline."""
    by_block: dict[int, list[_Entry]] = {}
    for entry in entries:
        if entry.moment is not None:
            by_block.setdefault(entry.block, []).append(entry)
    spans = []
    for timed in by_block.values():
        marked = [entry for entry in timed if _START_MARK.search(entry.text)]
        noticed = next((entry.moment for entry in timed if _NOTICED.search(entry.text)), None)
        starts = marked or [
            timed[0],
            *(
                entry
                for entry in timed[1:]
                if (_CHANGED.search(entry.text) or _BROKE.search(entry.text))
                and (noticed is None or entry.moment <= noticed)  # type: ignore[operator]
            ),
        ]
        if measure in (_ACK, _RESOLVE):
            starts = [*starts, *(entry for entry in timed if _EVENTS["triggered"].search(entry.text))]
        if measure == _ACK:
            ends = [entry for entry in timed if _EVENTS["acknowledged"].search(entry.text)]
        elif measure == "detect":
            ends = [entry for entry in timed if _NOTICED.search(entry.text)]
        else:
            ends = [entry for entry in timed if _END_MARK.search(entry.text)]
            ends = ends or [entry for entry in timed if _ENDED.search(entry.text)] or [timed[-1]]
        for start in starts[:50]:
            for end in ends[:50]:
                if start.zoned == end.zoned and end.moment and start.moment and end.moment > start.moment:
                    spans.append(((end.moment - start.moment).total_seconds(), start, end))
    return spans


def _from_timeline(entries: list[tuple[str, datetime | None]]) -> dict[str, tuple[float, str]]:
    """Response times from the timeline's own UTC times: first "triggered" to first "acknowledged" and last
    "resolved" (the strict reading, and the result's timeline)."""
    found: dict[str, datetime] = {}
    for text, moment in entries:
        for event, pattern in _EVENTS.items():
            if moment and pattern.search(text) and (event == "resolved" or event not in found):
                found[event] = moment
    reference = {}
    start = found.get("triggered")
    for measure, event in ((_ACK, "acknowledged"), (_RESOLVE, "resolved")):
        if start and (end := found.get(event)) and end >= start:
            span = f"{start:%H:%M:%S}Z triggered → {end:%H:%M:%S}Z {event}"
            reference[measure] = ((end - start).total_seconds(), f"the timeline's ({span}; no computed figures)")
    return reference


_RESULT_AT = _lazy(  # as the result's timeline has been read since the rubric began: an offset is not read
    r"(?:(\d{4})-(\d{2})-(\d{2})[T ]|\b)([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d+)?)?"
)


def _result_moments(result: Mapping[str, Any]) -> list[tuple[str, datetime | None]]:
    """The result's timeline as (what, moment); a time without a date takes the previous one's day."""
    moments: list[tuple[str, datetime | None]] = []
    previous: datetime | None = None
    for entry in map(_map, _list(result.get("timeline"))):
        stamp = _RESULT_AT.search(_text(entry.get("at")))
        moment = None
        if stamp:
            try:
                clock = time(int(stamp.group(4)), int(stamp.group(5)), int(stamp.group(6) or 0))
                if stamp.group(1):
                    moment = datetime.combine(date(*map(int, stamp.group(1, 2, 3))), clock)
                else:
                    moment = datetime.combine(previous.date() if previous else date(1970, 1, 1), clock)
                    if previous and moment < previous:
                        moment += timedelta(days=1)
            except (ValueError, OverflowError):  # no such date, or past the year 9999
                moment = None
        previous = moment or previous
        moments.append((_text(entry.get("what")), moment))
    return moments


class _Reference(NamedTuple):
    """What stated response times are compared with."""

    figures: Mapping[str, tuple[float, str]]  # the record's (PagerDuty's, authoritative), else the timeline's
    record: Mapping[str, float]
    entries: tuple[_Entry, ...]  # the Markdown's timeline
    timeline: frozenset[int] = frozenset()  # the lines of its timeline sections: a list or table there is no figure


def _reference(doc: _Doc | None, result: Mapping[str, Any] | None, computed: Mapping[str, Any]) -> _Reference:
    blocks = _timeline_blocks(doc) if doc is not None else []
    entries = tuple(_timeline(doc, blocks)) if doc is not None else ()
    if doc is not None:
        moments = [(entry.text, entry.moment if entry.utc else None) for entry in entries]
    else:
        moments = _result_moments(result or {})
    figures: dict[str, tuple[float, str]] = _from_timeline(moments)
    record = {
        measure: seconds for measure in (_ACK, _RESOLVE) if (seconds := _number(computed.get(measure))) is not None
    }
    for measure, seconds in record.items():
        figures[measure] = (seconds, "the record's")
    # The lines of its timelines' lists and tables, and the paragraphs that start with a time: entries, not figures.
    timeline = frozenset(
        line.number
        for block, _, _ in blocks
        for line in block.lines
        if _BULLET.match(line.text) or _ROW.match(line.text) or _stamp(line.text) is not None
    ) | frozenset(number for _, items, prose in blocks for item in (*items, *prose) for number in item.numbers[:1])
    if blocks and not timeline:
        timeline = frozenset({blocks[0][0].heading})  # a timeline with no entry is still a timeline
    return _Reference(figures, record, entries, timeline)


def _stated_md(doc: _Doc) -> list[tuple[str, float, str]]:
    """(measure, seconds, where) for each "time to acknowledge: 4m 12s" or "resolved after 1h 03m" outside the
    timeline: the duration must follow the phrase within 40 characters, in the same sentence (the strict reading)."""
    timeline = {line.number for line in doc.body("timeline")}
    stated = []
    for paragraph in doc.paragraphs:
        text, lowered = paragraph.text, paragraph.text.lower()
        if paragraph.numbers[0] in timeline or not any(stem in lowered for stem in ("ack", "tta", "resol", "ttr")):
            continue
        for measure, phrase in _STATED.items():
            for match in phrase.finditer(text):
                window = text[match.end() : match.end() + 80]
                duration = _DURATION.search(window)
                if not duration or duration.start() > 40 or re.search(r"[.;]\s", window[: duration.start()] + " "):
                    continue
                if any(other.search(window[: duration.start()]) for other in _STATED.values()):
                    continue
                where = f"“{duration.group()}” (line {paragraph.line_at(match.start())})"
                stated.append((measure, _seconds(duration.group()), where))
    return stated[:MAX_ITEMS]


def _compare(stated: list[tuple[str, float, str]], reference: _Reference, source: str) -> _Verdict:
    if not stated:
        return _Verdict(ABSENT, f"{source} states no time to acknowledge or resolve")
    matches, misses, unchecked = [], [], []
    for measure, seconds, where in stated:
        if measure not in reference.figures:
            unchecked.append(_MEASURES[measure])
            continue
        expected, whose = reference.figures[measure]
        off = abs(seconds - expected)
        said = f"{_MEASURES[measure]} {where} = {seconds:g} s"
        if off > TOLERANCE_SECONDS:
            misses.append(f"{said} is {off:g} s off {whose} {expected:g} s")
        else:
            matches.append(f"{said} matches {whose} {expected:g} s")
    if misses:
        return _Verdict(FAIL, _listed(misses) + f" (more than {TOLERANCE_SECONDS} s)")
    if not matches:
        return _Verdict(
            UNCHECKED,
            f"nothing to compare: {source} states the {' and '.join(dict.fromkeys(unchecked))}, but there are no"
            " computed figures and the timeline has no triggered/acknowledged/resolved times",
        )
    skipped = f"; not compared (nothing to compare with): {', '.join(dict.fromkeys(unchecked))}" if unchecked else ""
    return _Verdict(PASS, _listed(matches) + skipped)


def _when(entry: _Entry) -> str:
    if entry.moment is None:
        return f"line {entry.line}"
    return f"{entry.moment:%H:%M}{' UTC' if entry.zoned else ''} (line {entry.line})"


def _ends_in(figure: _Figure, entries: Sequence[_Entry]) -> tuple[_Entry, _Entry] | None:
    """The entries whose times, as written, a stated window starts and ends at (within the tolerance; ten minutes for
    a window given roughly), if both are there."""
    slack = 600 if figure.loose else TOLERANCE_SECONDS

    def seconds(clock: time) -> int:
        return clock.hour * 3600 + clock.minute * 60 + clock.second

    def near(clock: time) -> _Entry | None:
        for entry in entries:
            if entry.clock is not None:
                gap = abs(seconds(entry.clock) - seconds(clock))
                if min(gap, 86400 - gap) <= slack:
                    return entry
        return None

    if figure.ends is None:
        return None
    start, end = near(figure.ends[0]), near(figure.ends[1])
    return (start, end) if start and end else None


def _response_md(doc: _Doc, reference: _Reference) -> _Verdict:
    if doc.strict:
        return _compare(_stated_md(doc), reference, "the Markdown")
    figures = _figures(doc, reference.timeline)
    if not figures:
        return _Verdict(
            ABSENT,
            "the Markdown states no response figure (time to detect, acknowledge or resolve, or how long it lasted)",
        )
    matches, misses, unchecked = [], [], []
    measured: dict[str, list[tuple[float, _Entry, _Entry]]] = {}
    for figure in figures:
        said = f"{_MEASURES[figure.measure]} “{figure.quote}” (line {figure.line})"
        if figure.measure in reference.record:
            expected = reference.record[figure.measure]
            (matches if _agrees(figure, expected) else misses).append(
                f"{said}, the record's is {_clock_text(expected)}"
            )
            continue
        if figure.ends and (ends := _ends_in(figure, reference.entries)):
            matches.append(f"{said} agrees with the timeline's {_when(ends[0])} and {_when(ends[1])}")
            continue
        if figure.measure not in measured:
            measured[figure.measure] = _spans(reference.entries, figure.measure)[:MAX_SPANS]
        spans = measured[figure.measure]
        windows = [
            other for other in figures if other.window and other is not figure and abs(other.line - figure.line) <= 2
        ]
        if not spans and windows and figure.measure == "duration" and not figure.window:
            window = windows[0]
            if _agrees(figure, window.seconds):
                matches.append(f"{said} agrees with “{window.quote}” (line {window.line})")
            else:
                misses.append(
                    f"{said} disagrees with “{window.quote}” (line {window.line}), {_clock_text(window.seconds)}"
                )
            continue
        if not spans:
            unchecked.append(f"{said}: no timeline times to compare with")
            continue
        agreeing = [span for span in spans if _agrees(figure, span[0])]
        if agreeing:
            seconds, start, end = agreeing[0]
            matches.append(f"{said} agrees with the timeline's {_when(start)} → {_when(end)}")
        else:
            seconds, start, end = min(spans, key=lambda span: abs(span[0] - figure.seconds))
            misses.append(
                f"{said} disagrees with the timeline: {_when(start)} → {_when(end)} is {_clock_text(seconds)}"
            )
    lines = tuple(figure.line for figure in figures)
    if misses:
        return _Verdict(FAIL, _listed(misses), lines)
    if matches:
        return _Verdict(PASS, _listed(matches) + (f"; not checkable: {_listed(unchecked)}" if unchecked else ""), lines)
    return _Verdict(UNCHECKED, "not checkable: " + _listed(unchecked), lines)


def _response_result(result: Mapping[str, Any], reference: _Reference) -> _Verdict:
    response = _map(result.get("response"))
    stated = [
        (measure, seconds, f"(response.{measure})")
        for measure in (_ACK, _RESOLVE)
        if (seconds := _number(response.get(measure))) is not None
    ]
    return _compare(stated, reference, "the result")


# 3. Impact quantified, or a labelled estimate.

_NOT_QUANTITY = _lazy(
    r"`[^`]*`|\[[^\[\]]*\]\([^()\s]*\)|https?://\S+|\d{4}-\d{2}-\d{2}|#\d+|\b(?:p|sev)-?\d\b"
    r"|(?<![\w.])v?\d+(?:\.\d+){2,}\b|\b(?:https?|status(?: code)?|error|code)\s+\d{3}\b|\b\dxx\b"
    r"|\b[1-5]\d\d\s*(?:errors?|responses?|status(?:es)?|codes?|messages?|pages?|rate)\b|\b[1-5]\d\ds\b"
    r"|\b(?:return\w*|serv\w*|respond\w*(?: with)?|answer\w*|with|got|gives?)\s+(?:an?\s+)?[1-5]\d\d\b"
    rf"|{_CLOCK.pattern}|{_DURATION.pattern}|{_DATE.pattern}",
    re.I,
)
_QUANTITY = _lazy(r"(?:[$€£]\s?)?\d[\d,]*(?:\.\d+)?\s*(?:%|percent\b)?(?:\s*[A-Za-z-]+){0,2}")
_ESTIMATE = _lazy(r"\bestimat\w*|\bapprox\w*|\broughly\b|\baround\b|\babout\b|~|≈|\bat least\b|\bup to\b", re.I)
_AFFECTED = (
    r"(?:users|customers|clients|teams|accounts|tenants|organi[sz]ations|orgs|sites|websites|merchants|members|people"
    r"|developers|requests|queries|calls|jobs|builds|tests|PRs|pull requests|pods|orders|checkouts|payments"
    r"|transactions|purchases|sessions|visitors|visits|page ?views|events|messages|e-?mails|notifications|records"
    r"|rows|files|uploads|downloads|failures|errors|timeouts|evaluations|installs|devices|apps|applications|projects"
    r"|repositories|repos|workloads|deployments|services|instances|flags|bookings|IPs|IP addresses)"
)
_AMOUNT = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s?(?:[kKmMbB]\b|bn\b|million\b|billion\b|thousand\b))?"
_OF_AFFECTED = rf"\s+of\s+(?:the\s+|all\s+|our\s+)?(?:[\w-]+\s+){{0,3}}{_AFFECTED}\b"
_COUNT = _lazy(
    rf"(?<![\w.$€£-])({_AMOUNT})\s*\+?\s+(?:[\w-]+\s+){{0,2}}{_AFFECTED}\b"  # 1,240 failed checkouts
    rf"|(?<![\w.-])(\d+(?:\.\d+)?\s?(?:%|percent\b))(?:{_OF_AFFECTED})?"  # 23% (of checkout requests)
    rf"|\b(?:half|a third|a quarter|(?:one|two|three|four)[ -](?:thirds?|quarters?|fifths?|tenths?)){_OF_AFFECTED}"
    rf"|[$€£]\s?{_AMOUNT}",  # money, when lost
    re.I,
)
_NUMERAL = _lazy(r"\d|\b(?:half|third|quarter|fifths?|tenths?)\b", re.I)
_LOSS = _lazy(r"\b(?:lost|loss|revenue|refund\w*|credit\w*|cost|wiped|withdrawn|burn\w*|penalt\w*|fine[sd]?)\b", re.I)


def _impact_md(doc: _Doc, _: _Reference) -> _Verdict:
    if doc.strict:
        if "impact" not in doc.blocks:
            return _missing_section("impact")
        for line in doc.body("impact"):
            if line.level:
                continue
            if quantity := _QUANTITY.search(_NOT_QUANTITY.sub(" ", _BULLET.sub(r"\2", line.text))):
                label = _ESTIMATE.search(line.text)
                kind = f"labelled an estimate ({_quote(label.group())})" if label else "not labelled an estimate"
                return _Verdict(
                    PASS, f"impact quantified: {_quote(quantity.group().strip())} (line {line.number}), {kind}"
                )
        return _Verdict(
            FAIL, "the Impact section has no number of users, requests, orders or money (a duration alone is not one)"
        )
    impact = {line.number for line in doc.body("impact")}
    numbered = (
        paragraph for paragraph in doc.scanned if _NUMERAL.search(paragraph.text) and _COUNT.search(paragraph.text)
    )
    for paragraph in sorted(numbered, key=lambda paragraph: paragraph.numbers[0] not in impact):
        cleaned = _NOT_QUANTITY.sub(lambda match: " " * len(match.group()), paragraph.text)
        for found in _COUNT.finditer(cleaned):
            text = found.group().strip()
            share = found.group(2) and not re.search(r"\bof\b", text)
            money = text[:1] in "$€£" and not found.group(1)
            if share and paragraph.numbers[0] not in impact:
                continue  # "CPU above 90%" is not who was hurt
            if money and not (_LOSS.search(paragraph.text) or paragraph.numbers[0] in impact):
                continue
            line = paragraph.line_at(found.start())
            label = _ESTIMATE.search(paragraph.text[max(0, found.start() - 30) : found.end()])
            kind = f"labelled an estimate ({_quote(label.group())})" if label else "not labelled an estimate"
            return _Verdict(PASS, f"impact quantified: {_quote(text)} (line {line}), {kind}", (line,))
    return _Verdict(
        FAIL, "no number of users, requests, jobs, share or money affected was found (a duration alone is not impact)"
    )


def _impact_result(result: Mapping[str, Any], _: _Reference) -> _Verdict:
    quantity = _map(_map(result.get("impact")).get("quantity"))
    if not quantity:
        return _Verdict(ABSENT, "the result has no impact.quantity")
    value, unit, estimate = _number(quantity.get("value")), _text(quantity.get("unit")), quantity.get("estimate")
    if value is None or not unit or not isinstance(estimate, bool):
        return _Verdict(FAIL, "impact.quantity lacks a numeric value, a unit or estimate true/false")
    if estimate and not _text(quantity.get("basis")):
        return _Verdict(FAIL, f"impact.quantity {value:g} {unit} is an estimate without its basis")
    return _Verdict(
        PASS, f"impact quantified: {value:g} {unit}, " + ("an estimate with its basis" if estimate else "measured")
    )


# 4. Detection analysed: how, when, and whether it was fast enough or what could have noticed it sooner.

_GAP = _lazy(
    r"\b(?:sooner|earlier|faster|gap|missed|could have|would have|no alert|did ?n[o']t alert|blind spot|undetected"
    r"|not detected|delay(?:ed)?|late)\b",
    re.I,
)
_SIGNALS = (
    r"(?:alert\w*|alarm\w*|monitor\w*|notification\w*|pag(?:e|es|ing|er)|probes?|warnings?"
    r"|(?:synthetic|health|uptime|canary)\s+(?:checks?|tests?))"
)
_GAP_ANYWHERE = _lazy(
    rf"\b(?:no|missing|lack(?:ed|ing)?(?: of)?|without|absent|insufficient|inadequate|not (?:have|get)"
    rf"|(?:did|do|does) ?n[o'’]t (?:have|get|receive))\s+(?:[\w/-]+\s+){{0,2}}(?:{_SIGNALS}|tests?/alert\w*|visibility"
    rf"|observability)\b"
    rf"|\b{_SIGNALS}\b[^.;]{{0,60}}\b(?:does ?n[o'’]t exist|did ?n[o'’]t (?:fire|work|trigger)|does ?n[o'’]t work"
    rf"|not (?:configured|working|set up)|(?:was|were) (?:missing|absent)|only (?:e-?mailed|went to))"
    r"|\bundetected\b|\bnot detected\b|\bwent unnoticed\b|\bdetection (?:delay|gap)\b|\bdelay(?:ed)? (?:in )?detect\w*"
    r"|\b(?:detect\w*|notic\w*|alert\w*|caught|know|known|aware)\b[^.;]{0,40}\b(?:sooner|earlier|faster)\b"
    r"|\b(?:sooner|earlier)\b[^.;]{0,40}\b(?:detect\w*|notic\w*|alert\w*|caught)\b"
    r"|\b(?:would|could) have (?:been )?(?:caught|detected|noticed|alerted|paged|flagged)\b"
    rf"|\b(?:should|need to|needs to|must) (?:have|add|set up|create|improve|fix)\s+(?:[\w/-]+\s+){{0,3}}{_SIGNALS}\b"
    rf"|\b(?:add|adding|create|creating|set up|setting up|setup|implement|implementing|introduce|improve|improving"
    rf"|build|enable|fix)\s+(?:[\w/-]+\s+){{0,4}}{_SIGNALS}\b"
    rf"|\b(?:quickly|promptly|rapid(?:ly)?|immediately)\s+(?:\w+\s+){{0,2}}(?:detect\w*|alert\w*|notic\w*|paged|caught)\b"
    r"|\brapid detection\b|\bdetection was (?:fast|quick|prompt)\b"
    r"|\b(?:alert\w*|notification\w*|pages?)\b[^.;]{0,40}\b(?:go|goes|went|sent)\s+to\b[^.;]{0,60}"
    r"\b(?:not|never|nobody|no one)\b"  # alerts that go where nobody reads them
    r"|^\W*(?:alert|page|notify)\s+(?:the\s+\w+\s+)?(?:on|when|if|before)\b",  # a plan: "Alert when …"
    re.I,
)
_DETECTION_HINT = _lazy(  # a cheap look before the real ones
    r"detect|notic|report|alert|alarm|pag(?:e|ed|es|ing|er)\b|discover|found out|aware|inform|caught|spotted|fired|warn"
    r"|told us|telling us|red\b|monitor|notif|probe|check|sooner|earlier|faster|gap|visib|observ|delay",
    re.I,
)
_HOW = _lazy(
    r"\b(?:detect\w*|notic\w*|report\w*|alert\w*|pag(?:ed|es|ing)|discover\w*|found out|aware|inform\w*|caught"
    r"|spotted|fired|warn\w*|told us|telling us|(?:went|going|turned) red)\b",
    re.I,
)
_SOURCE = _lazy(
    r"\b(?:users?|customers?|clients?|support|tickets?|monitor\w*|alert\w*|alarms?|pager\w*|on-?call\w*|ci|tests?"
    r"|probes?|dashboards?|metrics?|logs?|e-?mails?|tweets?|slack|discord|github|borgmon|prometheus|datadog"
    r"|grafana|pingdom|uptime\w*|canar(?:y|ies)|qa|people|engineers?|members?|someone|team|aws)\b",
    re.I,
)


def _detection_md(doc: _Doc, _: _Reference) -> _Verdict:
    if doc.strict:
        if "detection" not in doc.blocks:
            return _missing_section("detection")
        text = doc.text("detection")
        missing = [
            what
            for what, found in (
                ("how (a sentence of 3 words or more)", len(text.split()) >= 3),
                ("when (a UTC time or a delay)", bool(_CLOCK.search(text) or _DURATION.search(text))),
                (
                    "what could have noticed it sooner (words such as “sooner”, “gap”, “missed”)",
                    bool(_GAP.search(text)),
                ),
            )
            if not found
        ]
        if missing:
            return _Verdict(FAIL, "the Detection section does not say " + ", nor ".join(missing))
        return _Verdict(PASS, "the Detection section says how, when, and what could have noticed it sooner")
    section = {line.number for line in doc.body("detection")}
    planned = {line.number for line in doc.body("action_items")}  # "Alert on …" there is a plan, not how it was found
    detection_text = doc.text("detection")
    how = when = gap = None
    if len(detection_text.split()) >= 3:
        how = min(section)
        if _CLOCK.search(detection_text) or _DURATION.search(detection_text):
            when = how
    for paragraph in doc.scanned:
        if how is not None and when is not None and gap is not None:
            break
        if paragraph.numbers[0] not in section and not _DETECTION_HINT.search(paragraph.text):
            continue
        inside = paragraph.numbers[0] in section
        if paragraph.numbers[0] in planned:
            found = _GAP_ANYWHERE.search(paragraph.text) if gap is None else None
            gap = paragraph.line_at(found.start()) if found else gap
            continue
        if how is None and (found := _HOW.search(paragraph.text)) and _SOURCE.search(paragraph.text):
            how = paragraph.line_at(found.start())
        if (
            when is None
            and _HOW.search(paragraph.text)
            and (_stamp(paragraph.text) or _DURATION.search(paragraph.text))
        ):
            when = paragraph.numbers[0]
        if gap is None and (
            found := (_GAP.search(paragraph.text) if inside else None) or _GAP_ANYWHERE.search(paragraph.text)
        ):
            gap = paragraph.line_at(found.start())
    if gap is None:  # detection listed under what went well: judged fast enough
        gap = next((line.number for line in doc.body("went_well") if not line.level and _HOW.search(line.text)), None)
    for block in doc.blocks.get("action_items", ()):
        for item in (item for found in _items(block.lines) for item in found):
            if gap is None and re.search(r"\bdetect", item.context, re.I) and not _placeholder(item.text):
                gap = item.line
    missing = [
        what
        for what, found in (
            ("how it was detected", how),
            ("when", when),
            ("whether that was fast enough or what would have caught it sooner", gap),
        )
        if found is None
    ]
    lines = tuple(number for number in (how, when, gap) if number is not None)
    if missing:
        return _Verdict(FAIL, "the Markdown does not say " + ", nor ".join(missing), lines)
    return _Verdict(
        PASS, f"detection: how (line {how}), when (line {when}), and the gap or its speed (line {gap})", lines
    )


def _detection_result(result: Mapping[str, Any], _: _Reference) -> _Verdict:
    detection = _map(result.get("detection"))
    at = _text(detection.get("detected_at"))
    if at and not _UTC_AT.fullmatch(at):
        return _Verdict(FAIL, f"detection.detected_at {_quote(at)} is not a UTC time")
    missing = [field for field in ("how", "detected_at", "gap") if not _text(detection.get(field))]
    if missing:
        return _Verdict(ABSENT, f"the result's detection has no {', no '.join(missing)}")
    return _Verdict(PASS, f"detection: how, detected_at {at}, and the gap")


# 5. The trigger apart from the contributing conditions, backed by evidence or flagged as uncertain.

_CONFIDENCE = _lazy(
    r"\b(?:confirmed|likely|unlikely|hypothes[ie]s|hypothesi[sz]ed|suspected|unconfirmed|probable|confidence)\b", re.I
)
_LEVELS = ("confirmed", "likely", "hypothesis")
_CONDITION = _lazy(
    r"\bbecause\b|\bdue to\b|\bsince\b|\bcombin\w*|\bcoincid\w*|\bcompound\w*|\bcontribut\w*|\bexacerbat\w*"
    r"|\blatent\b|\b(?:was|were) ?n[o'’]t (?:caught|noticed|detected|tested|applied|renewed)\b"
    r"|\bnot (?:caught|noticed|detected|tested|respected)\b|\ballow(?:ed|ing)\b|\bcondition\w*|\bunnoticed\b"
    r"|\black(?:ed|ing)?\b|\bno (?:test|check|validation|limit|staging)s?\b|\bvulnerable\b"
    r"|\bnever (?:tested|deployed)\b|\bwhile\b|\blimit(?:ed|s|ations?)\b|\bbut\b",
    re.I,
)
_UNCERTAIN = _lazy(
    r"\b(?:likely|probably|possibly|suspect\w*|hypothes\w*|unconfirmed|appears?|seems?|we believe|as best we can"
    r"|not (?:yet )?(?:fully )?understood|unclear|may have|might have)\b",
    re.I,
)
_CAUSE_WORDS = _lazy(r"\broot cause\b|\bcaused by\b|\bthe cause\b|\bbecause\b|\bdue to\b", re.I)


def _causes_md(doc: _Doc, _: _Reference) -> _Verdict:
    if doc.strict:
        if "root_cause" not in doc.blocks:
            return _missing_section("root_cause")
        if "contributing" not in doc.blocks:
            return _missing_section("contributing")
        cause = doc.text("root_cause")
        items, prose = _items(doc.body("contributing"))
        factors = items or prose
        problems = [] if _CONFIDENCE.search(cause) else ["the root cause states no confidence (confirmed, likely…)"]
        unsure = [f"line {factor.line}" for factor in factors if not _CONFIDENCE.search(factor.text)]
        if not factors:
            problems.append("no contributing factor is listed")
        elif unsure:
            problems.append(
                f"{len(unsure)} of {len(factors)} contributing factors state no confidence ({_listed(unsure, ', ')})"
            )
        if problems:
            return _Verdict(FAIL, "; ".join(problems))
        return _Verdict(PASS, f"a root cause and {len(factors)} contributing factor(s), each with a confidence")
    lines = [line for key in ("root_cause", "contributing") for line in doc.body(key) if not line.level]
    if not any(line.text.strip() for line in lines):
        lines = [
            _Line(number, paragraph.text)
            for paragraph in doc.scanned
            if _CAUSE_WORDS.search(paragraph.text)
            for number in paragraph.numbers[:1]
        ]
    text = " ".join(line.text for line in lines)
    if not text.strip():
        return _Verdict(ABSENT, "no cause is stated (no Root cause, Trigger or Contributing factors section)")
    numbers = tuple(sorted({line.number for line in lines}))
    both = all(doc.text(key).strip() for key in ("root_cause", "contributing"))
    items = sum(len(found) for key in ("root_cause", "contributing") for found in [_items(doc.body(key))[0]])
    condition = _CONDITION.search(text)
    sentences = len(re.findall(r"[.!?](?:\s|$)", text.strip() + " "))
    if not (both or items >= 2 or condition or sentences >= 3):
        return _Verdict(FAIL, f"the cause ({_at(numbers)}) is not told apart from any contributing condition", numbers)
    backed = next((line.number for line in doc.lines if _evidence(line.text, doc)), None)
    if backed is None and doc.coded:
        backed = min(doc.coded)
    unsure = _UNCERTAIN.search(text) if backed is None else None
    if backed is None and not unsure:
        return _Verdict(
            FAIL,
            f"trigger and conditions ({_at(numbers)}) with no evidence (link, id, log) nor a stated uncertainty",
            numbers,
        )
    how = f"evidence (line {backed})" if backed is not None else f"flagged as uncertain ({_quote(unsure.group())})"
    return _Verdict(
        PASS, f"the trigger is told apart from contributing conditions ({_at(numbers)}), backed by {how}", numbers
    )


def _causes_result(result: Mapping[str, Any], _: _Reference) -> _Verdict:
    cause = _map(result.get("root_cause"))
    problems = []
    if not _text(cause.get("statement")) or cause.get("confidence") not in _LEVELS:
        problems.append("root_cause lacks a statement or a confidence (confirmed, likely, hypothesis)")
    factors = [_map(factor) for factor in _list(result.get("contributing_factors"))]
    unsure = [
        f"contributing_factors[{i}]"
        for i, factor in enumerate(factors)
        if not _text(factor.get("statement")) or factor.get("confidence") not in _LEVELS
    ]
    if unsure:
        problems.append(f"{_listed(unsure)} lack a statement or a confidence")
    if problems:
        return _Verdict(FAIL, "; ".join(problems))
    if not factors:
        return _Verdict(ABSENT, f"root cause ({cause.get('confidence')}) but no contributing_factors")
    return _Verdict(PASS, f"root cause ({cause.get('confidence')}) and {len(factors)} contributing factor(s)")


# 6. Blameless language.

_WORD_EDGE = r"(?<![\w-])"  # "lazy-loaded" is no blame: a blaming word stands on its own
_BLAME = _lazy(
    r"\bhuman[ -]error\b|\boperator[ -]error\b|\b(?:his|her|their)\s+(?:own\s+)?(?:fault|mistake|negligence)\b"
    r"|\bfault\s+of\b|\bat\s+fault\b"
    rf"|{_WORD_EDGE}(?<!\bgit )(?<!\bsvn )(?<!\bhg )blam(?:e|ed|es|ing)\b(?![\w-])"
    rf"|{_WORD_EDGE}(?:careless(?:ly|ness)?|negligen(?:t|tly|ce)|reckless(?:ly|ness)?|sloppy|incompeten(?:t|ce)"
    r"|laz(?:y|iness)|stupid|idiot\w*|inexperienced|greedy)(?![\w-])(?!\s+(?:load|init|evaluat)\w*)"
    r"|\bshould\s+have\s+known\b|\bshould\s+have\s+been\s+more\s+careful\b|\bdropped\s+the\s+ball\b"
    r"|\bdid\s*n[o']t\s+bother\b|\bbad decision[- ]?making\b"
    r"|(?:@[\w.-]+|\b(?:he|she|engineer|developer|operator|reviewer|author))\s+(?:[\w,]+\s+){0,4}?"
    r"(?:without being|was ?n[o']t|was not)\s+(?:very\s+|more\s+)?(?:thorough|careful|diligent|attentive)\b"
    r"|(?:\b(?:he|she|someone|somebody|engineer|developer|operator|responder|on-?call(?:\s+engineer)?)|@[\w.-]+)"
    r"\s+(?:failed|neglected|forgot)\s+to\b",
    re.I,
)
# "No one is to blame", "this was not human error": a negation shortly before, in the same sentence.
_NEGATED = _lazy(r"(?:\bno|\bnot|\bnever|\bnobody|\bno one|\bwithout|n't)\b[^.;!?|]*$", re.I)
_CODE_SPAN = _lazy(r"`[^`]*`")
# Each phrase holds one of these words (or its start): phrases are looked for only around them, which keeps a big
# document fast. A phrase starts at most this many characters before its word, and ends within 25 after it.
_BLAME_STEMS = {
    "error": 12, "fault": 14, "mistake": 14, "negligen": 14, "blam": 6, "careless": 2, "reckless": 2, "sloppy": 2,
    "incompeten": 2, "lazy": 2, "lazi": 2, "stupid": 2, "idiot": 2, "inexperienced": 2, "greedy": 2, "should": 2,
    "dropped": 2, "bother": 12, "decision": 6, "failed": 60, "neglected": 60, "forgot": 60,  # "@handle failed to"
    "thorough": 130, "careful": 130, "diligent": 130, "attentive": 130,  # "the reviewer, …, was not careful"
}  # fmt: skip


def _occurrences(text: str, word: str) -> Iterator[int]:
    at = text.find(word)
    while at >= 0:
        yield at
        at = text.find(word, at + 1)


def _blame(text: str) -> list[tuple[int, str]]:
    """(offset, phrase) of each blaming phrase outside code spans."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter whose lower case is longer ("İ") stays as it is: offsets still map
        lowered = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    windows = sorted(
        (max(0, at - before), at + len(stem) + 25)
        for stem, before in _BLAME_STEMS.items()
        if stem in lowered
        for at in _occurrences(lowered, stem)
    )
    if not windows:
        return []
    text = _CODE_SPAN.sub(lambda span: " " * len(span.group()), text)  # same length: offsets still map to lines
    spans: list[list[int]] = []
    for start, end in windows:
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    found = {
        m.start(): " ".join(m.group().split())
        for start, end in spans
        for m in _BLAME.finditer(text, start, min(end, len(text)))
        if not _NEGATED.search(text[max(0, m.start() - 30) : m.start()])
    }
    return sorted(found.items())[:MAX_ITEMS]


def _blameless(found: list[str]) -> _Verdict:
    if found:
        return _Verdict(FAIL, f"blaming language: {_listed(found)}")
    return _Verdict(PASS, "no blaming phrase found")


def _blameless_md(doc: _Doc, _: _Reference) -> _Verdict:
    # The words are looked for in the whole document at once, then only the paragraphs that hold one are read.
    texts = [paragraph.text for paragraph in doc.paragraphs]
    whole = "\n".join(texts).lower()
    candidates = range(len(texts))
    if len(whole) == sum(map(len, texts)) + len(texts) - 1:  # else a longer lower case moved the offsets: read all
        starts = [0]
        for text in texts[:-1]:
            starts.append(starts[-1] + len(text) + 1)
        words = (at for stem in _BLAME_STEMS if stem in whole for at in _occurrences(whole, stem))
        candidates = sorted({bisect_right(starts, at) - 1 for at in words})
    found: list[tuple[int, str]] = []
    for paragraph in (doc.paragraphs[index] for index in candidates):
        if len(found) >= MAX_ITEMS:
            break
        found.extend((paragraph.line_at(at), phrase) for at, phrase in _blame(paragraph.text))
    verdict = _blameless([f"“{phrase}” (line {line})" for line, phrase in found])
    return _Verdict(verdict.state, verdict.why, tuple(line for line, _ in found))


def _blameless_result(result: Mapping[str, Any], _: _Reference) -> _Verdict:
    found, stack = [], [("", result)]
    for _ in range(MAX_ITEMS * 20):  # bounds the walk of a hostile result
        if not stack:
            break
        path, value = stack.pop()
        if isinstance(value, str):
            found.extend(f"“{phrase}” (at {path})" for _, phrase in _blame(value[:MAX_LINE]))
        elif isinstance(value, Mapping):
            skip = ("evidence", "related", "pull_request_url", "id")  # ids and links, not prose
            stack.extend((f"{path}.{k}".lstrip("."), v) for k, v in reversed(value.items()) if k not in skip)
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value[:MAX_ITEMS]))))
    return _blameless(found)


# 7. At least one preventive action item; every item owned and checkable.

_LABELS = _lazy(
    r"\b(?:(owner|verification|verify|acceptance|type|priority)\b[*_]*\s*:"
    r"|(owned by|assigned to|verified by|done when)\b)[*_]*\s*",
    re.I,
)
_FIELDS = {"owner": "owner", "owned by": "owner", "assigned to": "owner", "type": "type", "priority": "priority"}
_OWNER_HEADER = _lazy(r"owner|assignee|who|responsible|\bdri\b")
_VERIFY_HEADER = _lazy(r"verif|done when|acceptance|how to check")
_TRACKING_HEADER = _lazy(r"bug|issue|ticket|tracking|jira|link|\bpr\b|status")
_TYPE_HEADER = _lazy(r"type|kind|category|class")
_PREVENT = _lazy(r"\bprevent(?:ion|ive|ative)?\b", re.I)
_PREVENT_TAG = _lazy(r"^\W*prevent\w*\W*:|[\[(]\s*prevent\w*\s*[\])]", re.I)
_PREVENTS = _lazy(
    r"\bprevent\w*|\bavoid\w*"
    r"|\bso (?:that )?(?:\w+\s+){1,3}(?:can ?not|cannot|can'?t|won'?t|will not|never|no longer)\b"
    r"|\bensure\b|\bvalidat\w*|\breject\w*|\bpin(?:s|ned|ning)?\b|\bguard\w*|\bfix\w*|\bpatch\w*|\blint\w*"
    r"|\b(?:add|build|write|run)\s+(?:[\w-]+\s+){0,3}tests?\b|\btests? (?:for|that|to|covering)\b|\brate limit\w*"
    r"|\bcircuit breaker\w*|\bautomat\w*|\bisolat\w*|\bright-?siz\w*|\bincreas\w*|\bupgrad\w*|\bremov\w*|\bblock\w*"
    r"|\bcheck\w* in ci\b|\bbump\w*|\bversioned\b|\brefus\w*|\brais(?:e|es|ed|ing)\b|\breduc\w*|\brestrict\w*"
    r"|\brequir\w*|\benforc\w*|\bden(?:y|ies|ied)\b|\bdisabl\w*",
    re.I,
)
_PLANNED = _lazy(
    r"\bplann\w*|\bin[- ]progress\b|\bto ?do\b|\bfuture\b|\bnext\b|\b(?:short|medium|long)[- ]term\b", re.I
)
_DONE_VERB = _lazy(  # "We've tightened …", "Switched to pnpm 10": done; "Improved runbooks": a plan's title
    r"^\W*(?:(?:we|i)(?:'ve|\s+have)?\s+(?:\w+ly\s+)?(?:(?:re-?)?[a-z]{2,}ed|made|set|put|kept|ran|built|wrote|took"
    r"|cut|shut|split|sent|spent|did)\b"
    r"|(?:re-?)?[a-z]{2,}ed\s+(?:the|our|a|an|all|to|its|their|every|each)\b)",
    re.I,
)
_DONE = _lazy(
    r"✅|✔|☑|\[x\]|\bdone\b|\bcompleted?\b|\b(?:fixed|added|filed|resolved) (?:by|in|with|an?|the)\b"
    r"|^\W*(?:we\s+(?:have\s+)?)?(?:added|fixed|reverted|issued|sent|deployed|created|updated|moved|increased|implemented|removed|bumped"
    r"|installed|enabled|disabled|migrated|rolled back|filed|merged|released)\b",
    re.I,
)
_OWNER_TEXT = _lazy(r"\b(?:owners?|owned by|assigned to|assignee|dri|responsible)\b\W{0,3}\s*(\S[^;|,)]*)", re.I)
_LEAD_IN = _lazy(r":\s*$")
_ITEM_LABEL = _lazy(r"\b(?:action items?|owners?|todo)\b[*_]*\s*:", re.I)


def _labels(text: str) -> dict[str, str]:
    """A list item's labelled values ("owner: payments on-call; verify: …"), each up to the next label, ; or |."""
    marks = list(_LABELS.finditer(text))
    values: dict[str, str] = {}
    for index, mark in enumerate(marks):
        name = (mark.group(1) or mark.group(2)).lower()
        value = text[mark.end() : marks[index + 1].start() if index + 1 < len(marks) else len(text)]
        values.setdefault(_FIELDS.get(name, "verification"), re.split(r"[;|]", value)[0].strip(" —–-,."))
    return values


def _actions_verdict(items: list[tuple[str, str, str, bool]], lines: tuple[int, ...] = ()) -> _Verdict:
    """items: (where, owner, verification, preventive)."""
    if not items:
        return _Verdict(FAIL, "no action items")
    problems = []
    for where, owner, check, _ in items:
        lacking = [what for what, value in (("owner", owner), ("verification", check)) if _placeholder(value)]
        if lacking:
            problems.append(f"{where} has no {' and no '.join(lacking)}")
    preventive = sum(prevent for *_, prevent in items)
    if not preventive:
        problems.insert(0, "none is of type prevent")
    if problems:
        return _Verdict(FAIL, f"{len(items)} action item{'s' if len(items) > 1 else ''}: {_listed(problems)}", lines)
    return _Verdict(
        PASS, f"{len(items)} action items, {preventive} preventive, each with an owner and a verification", lines
    )


def _actions_md(doc: _Doc, _: _Reference) -> _Verdict:
    if "action_items" not in doc.blocks:
        return _missing_section("action_items")
    found = []
    for block in doc.blocks["action_items"]:
        if sum(len(items) + len(prose) for items, prose in found) >= MAX_ITEMS:
            break  # a document of many action-item sections: the first MAX_ITEMS items are judged
        found.append(_items(block.lines))
    if doc.strict:
        judged = []
        for items, prose in found:
            for item in items or prose:
                labels = _labels(item.text) if not item.cells else {}
                kind = _cell(item, _TYPE_HEADER) if item.cells else labels.get("type")
                preventive = bool(
                    (_PREVENT.search(kind) if kind is not None else _PREVENT_TAG.search(item.text))
                    or _PREVENT.search(item.context)
                )
                owner = _cell(item, _OWNER_HEADER) if item.cells else labels.get("owner")
                check = _cell(item, _VERIFY_HEADER) if item.cells else labels.get("verification")
                name = item.cells[0][1] if item.cells else item.text
                judged.append((f"line {item.line} {_quote(name, 50)}", owner or "", check or "", preventive))
        return _actions_verdict(judged)
    listed = {item.context for items, _ in found for item in items}
    items = sorted(
        (
            item
            for items, prose in found
            for item in (
                *items,
                # a paragraph beside a list introduces or comments it, unless it is labelled as an item itself
                *(item for item in prose if item.context not in listed or _ITEM_LABEL.search(item.text)),
            )
        ),
        key=lambda item: item.line,
    )
    items = [item for item in items if not _placeholder(item.text, lenient=False) and not _LEAD_IN.search(item.text)]
    if not items:
        return _Verdict(FAIL, "the action items section lists nothing")
    unowned, preventive = [], []
    for item in items:
        owner = _cell(item, _OWNER_HEADER) if item.cells else None
        tracked = _cell(item, _TRACKING_HEADER) if item.cells else None
        owned = (owner and not _placeholder(owner)) or (
            (found_owner := _OWNER_TEXT.search(item.text)) and not _placeholder(found_owner.group(1).split(" ")[0])
        )
        tracking = (
            (tracked and not _placeholder(tracked) and _evidence(tracked, doc))
            or _evidence(item.text if not item.cells else item.cells[0][1], doc)
            or _evidence(item.context, doc)
        )
        done = (
            _DONE.search(item.text)
            or _DONE.search(item.context)
            or (_DONE_VERB.match(item.text) and not _PLANNED.search(item.context))
        )
        if not (owned or tracking or done):
            unowned.append(f"line {item.line} {_quote(item.cells[0][1] if item.cells else item.text, 50)}")
        kind = _cell(item, _TYPE_HEADER) if item.cells else None
        if (kind and _PREVENT.search(kind)) or _PREVENT.search(item.context) or _PREVENTS.search(item.text):
            preventive.append(item.line)
    lines = tuple(item.line for item in items)
    problems = [] if preventive else ["none would prevent the trigger or its class"]
    if unowned:
        problems.append(f"{len(unowned)} without an owner, a tracking issue or done: {_listed(unowned)}")
    if problems:
        return _Verdict(FAIL, f"{len(items)} action item{'s' * (len(items) > 1)}: " + "; ".join(problems), lines)
    return _Verdict(
        PASS,
        f"{len(items)} action item{'s' * (len(items) > 1)} ({_at(lines)}), {len(preventive)} preventive, each owned,"
        " tracked or done",
        lines,
    )


def _actions_result(result: Mapping[str, Any], _: _Reference) -> _Verdict:
    items = [_map(item) for item in _list(result.get("action_items"))]
    return _actions_verdict(
        [
            (
                f"action_items[{i}] {_quote(_text(item.get('title')), 40)}",
                _text(item.get("owner")),
                _text(item.get("verification")),
                item.get("type") == "prevent",
            )
            for i, item in enumerate(items)
        ]
    )


# 8. What went well, what went poorly, where we got lucky.

_REFLECTION = ("went_well", "went_poorly", "got_lucky")  # the section keys and the result's fields


def _reflection_md(doc: _Doc, _: _Reference) -> _Verdict:
    found: dict[str, int] = {}
    for key in _REFLECTION:
        for line in doc.body(key):
            if not line.level and not _placeholder(_BULLET.sub(r"\2", line.text), lenient=not doc.strict):
                found[key] = line.number
                break
    empty = [SECTIONS[key].name for key in _REFLECTION if key not in found]
    if empty:
        return _Verdict(FAIL, f"no (or an empty) section: {', '.join(empty)}", tuple(found.values()))
    lines = tuple(found.values())
    return _Verdict(PASS, f"went well, went poorly and got lucky each have content ({_at(lines)})", lines)


def _reflection_result(result: Mapping[str, Any], _: _Reference) -> _Verdict:
    counts = {field: sum(1 for text in _list(result.get(field)) if _text(text)) for field in _REFLECTION}
    empty = [field for field, count in counts.items() if not count]
    if empty:
        return _Verdict(ABSENT, f"the result has no {', no '.join(empty)}")
    return _Verdict(PASS, ", ".join(f"{field}: {count}" for field, count in counts.items()))


# 9. Recurrence checked: the incident related to earlier ones, or a search for them reported.

_RELATED = _lazy(_EVIDENCE.pattern + r"|\bincident\s+#?\d+|(?<!\S)\S+\.md\b")
_NONE_FOUND = _lazy(
    r"\bno\s+(?:similar|related|previous|prior|earlier|past|other|matching)\b|\bnone\s+found\b|\bfirst\s+(?:time|occurrence)\b"
    r"|\bnot\s+happened\s+before\b|\bno\s+recurrence\b",
    re.I,
)
_SEARCHED = _lazy(
    r"\bno\s+(?:similar|related|previous|prior|earlier|past|other|matching)\s+(?:\w+\s+){0,2}(?:incidents?|outages?"
    r"|postmortems?|issues?|reports?)\b|\bnone\s+found\b|\bfound\s+(?:no|none|nothing)\b"
    r"|\b(?:checked|searched|looked (?:at|through|for)|reviewed)\b",
    re.I,
)
_NOT_CHECKED = _lazy(r"\bnot\s+(?:yet\s+)?(?:been\s+)?checked\b|\bdid\s*n[o']t\s+(?:check|look)\b|\bunchecked\b", re.I)
_RECURRENCE = _lazy(
    r"\b(?:second|third|another|repeat(?:ed)?)\s+(?:occurr?ence|time this|instance of|outage caused|incident caused)\b"
    r"|\bsame (?:root )?(?:cause|issue|problem|failure|bug|error)s? (?:as|that|we)\b"
    r"|\b(?:similar|same) (?:issue|incident|outage|problem|failure|bug) (?:in|as|to|before|earlier|previously|here"
    r"|happened|occurred)\b"
    r"|\bnot the first time\b|\b(?:seen|had|hit) (?:this|the same) (?:issue|problem|failure|bug|error) before\b"
    r"|\b(?:occurred|happened) (?:again|twice)\b"
    r"|\b(?:previous|prior|earlier|last) post-?mortem\b",
    re.I,
)


def _recurrence_md(doc: _Doc, _: _Reference) -> _Verdict:
    body = [line for line in doc.body("recurrence") if not line.level]
    text = " ".join(line.text for line in body)
    lines = tuple(line.number for line in body if line.text.strip())
    if doc.strict:
        if "recurrence" not in doc.blocks:
            return _missing_section("recurrence")
        if unchecked := _NOT_CHECKED.search(text):
            return _Verdict(FAIL, f"the Recurrence section says it was not checked ({_quote(unchecked.group())})")
        if found := _RELATED.search(text) or _NONE_FOUND.search(text):
            return _Verdict(PASS, f"the Recurrence section cites what was checked ({_quote(found.group())})")
        return _Verdict(FAIL, "the Recurrence section names no past incident or postmortem, nor says none was found")
    if text.strip():
        if unchecked := _NOT_CHECKED.search(text):
            return _Verdict(
                FAIL, f"the Recurrence section says it was not checked ({_quote(unchecked.group())})", lines
            )
        if found := _RELATED.search(text) or _SEARCHED.search(text):
            return _Verdict(PASS, f"recurrence ({_at(lines)}) cites what was checked ({_quote(found.group())})", lines)
    for paragraph in doc.scanned:
        if found := _RECURRENCE.search(paragraph.text):
            if _NONE_FOUND.search(paragraph.text[max(0, found.start() - 40) : found.end() + 40]):
                continue
            line = paragraph.line_at(found.start())
            return _Verdict(
                PASS, f"the incident is related to an earlier one ({_quote(found.group())}, line {line})", (line,)
            )
    if text.strip():
        return _Verdict(
            FAIL,
            f"the recurrence section ({_at(lines)}) names no earlier incident and reports no search for one",
            lines,
        )
    return _Verdict(ABSENT, "no earlier incident is related, and no search for one is reported")


def _recurrence_result(result: Mapping[str, Any], _: _Reference) -> _Verdict:
    recurrence = _map(result.get("recurrence"))
    checked = recurrence.get("checked")
    if not isinstance(checked, bool):
        return _Verdict(ABSENT, "the result has no recurrence.checked")
    if not checked:
        return _Verdict(FAIL, "recurrence.checked is false")
    related = [_text(item) for item in _list(recurrence.get("related")) if _text(item)]
    return _Verdict(PASS, f"recurrence checked; related: {', '.join(related[:MAX_SHOWN]) or 'none'}")


# The criteria, with the sections each reads.

_MarkdownJudge = Callable[[_Doc, _Reference], _Verdict]
_ResultJudge = Callable[[Mapping[str, Any], _Reference], _Verdict]


class Rule(NamedTuple):
    key: str
    title: str
    sections: tuple[Section, ...]  # what the bridge's template calls its parts (issue 23's prompt reads them)
    markdown: _MarkdownJudge
    result: _ResultJudge


CRITERIA: tuple[Rule, ...] = tuple(
    Rule(key, title, tuple(SECTIONS[name] for name in sections), markdown, result)
    for key, title, sections, markdown, result in (
        ("timeline", "Evidence-linked timeline in UTC", ("timeline", "resolution"), _timeline_md, _timeline_result),
        (
            "response_times",
            "Response times match the record (within 60 s)",
            ("response",),
            _response_md,
            _response_result,
        ),
        ("impact", "Impact quantified or a labelled estimate", ("impact",), _impact_md, _impact_result),
        ("detection", "Detection analysed", ("detection",), _detection_md, _detection_result),
        (
            "causes",
            "Trigger vs contributing factors, with confidence",
            ("root_cause", "contributing"),
            _causes_md,
            _causes_result,
        ),
        ("blameless", "Blameless language", (), _blameless_md, _blameless_result),
        (
            "action_items",
            "Preventive action item; every item owned and verifiable",
            ("action_items",),
            _actions_md,
            _actions_result,
        ),
        ("reflection", "What went well / poorly / where we got lucky", _REFLECTION, _reflection_md, _reflection_result),
        ("recurrence", "Recurrence checked", ("recurrence",), _recurrence_md, _recurrence_result),
    )
)


def not_covered(grade: Grade) -> tuple[str, ...]:
    """What a graded postmortem does not cover yet, in words: the names of the sections of each criterion it misses
    (a criterion that reads no section of its own, by its title)."""
    rules = {rule.key: rule for rule in CRITERIA}
    words: list[str] = []
    for criterion in grade.criteria:
        rule = rules.get(criterion.key)
        if criterion.passed or rule is None:
            continue
        words += [section.name.lower() for section in rule.sections] or [rule.title.lower()]
    return tuple(dict.fromkeys(words))


def _combine(markdown: _Verdict | None, result: _Verdict | None, strict: bool) -> tuple[bool, str, str]:
    """(passed, state, why). The Markdown must meet the criterion; the result, when given, must not contradict it
    (a field it lacks leaves the judgement to the Markdown). Either one alone must meet it. What the Markdown
    states but cannot be checked passes with a warning, unless the reading is strict; the result alone keeps its
    exactness (the bridge's summary note grades it so)."""
    if markdown is None or result is None:
        only = markdown or result
        if only is None:
            return False, FAIL, "nothing to grade"
        if only.state == UNCHECKED:
            return only is markdown and not strict, UNCHECKED, only.why
        return only.state == PASS, PASS if only.state == PASS else FAIL, only.why
    checked = markdown.state == PASS or (markdown.state == UNCHECKED and not strict)
    if not checked:
        return False, FAIL, f"Markdown: {markdown.why} | result: {result.why}"
    if result.state == FAIL:
        return False, FAIL, f"the result contradicts the Markdown: {result.why} | Markdown: {markdown.why}"
    if markdown.state == UNCHECKED:
        if result.state == PASS:
            return True, PASS, f"{result.why} (the result; Markdown: {markdown.why})"
        return True, UNCHECKED, markdown.why + " (the result does not say)"
    return True, PASS, markdown.why + (" (the result agrees)" if result.state == PASS else " (the result does not say)")


def grade(
    markdown: str | None = None,
    result: Mapping[str, Any] | None = None,
    computed: Mapping[str, Any] | None = None,
    *,
    strict: bool = False,
) -> Grade:
    """Grade a postmortem from its Markdown, its structured result, or both; `computed` holds PagerDuty's response
    figures (seconds_to_first_ack, seconds_to_resolve) when known. `strict` reads the Markdown as the bridge's own
    template: its sections, every timeline time in UTC, and nothing left unchecked."""
    doc = _parse(markdown, strict) if isinstance(markdown, str) else None
    answers = None if result is None else _map(result)
    reference = _reference(doc, answers, _map(computed))
    criteria = []
    for rule in CRITERIA:
        judged = None
        if doc is not None:
            judged = _Verdict(FAIL, doc.template) if doc.template else rule.markdown(doc, reference)
        passed, state, why = _combine(judged, rule.result(answers, reference) if answers is not None else None, strict)
        criteria.append(Criterion(rule.key, rule.title, passed, why, state, judged.lines if judged else ()))
    notes = ()
    if isinstance(markdown, str) and len(markdown) > MAX_CHARS:
        notes = (f"only the first {MAX_CHARS:,} of {len(markdown):,} characters were read",)
    return Grade(tuple(criteria), notes, strict)


def format_grade(grade: Grade) -> str:
    """One line per criterion (✓ met, ✗ not met, ⚠ not checkable), any notes, then the score."""
    marks = {PASS: "✓", FAIL: "✗", UNCHECKED: "⚠"}
    lines = [f"{marks[c.state]} {c.title}: {c.why}" for c in grade.criteria]
    lines.extend(f"note: {note}" for note in grade.notes)
    score = f"score: {grade.score}"
    if grade.unchecked:
        counted = "failed by --strict" if grade.strict else "counted as passed"
        score += f" ({grade.unchecked} not checkable, {counted})"
    lines.append(score)
    return "\n".join(lines)
