"""The postmortem rubric: nine checkable criteria, graded from a postmortem's Markdown, its structured result, or both.

Pure, stdlib-only and free of imports from the rest of the bridge, so that this one file can be copied into a
postmortems repository's CI. docs/postmortem-rubric.md says how each criterion is judged and why it matters;
scripts/check-postmortem prints a grade. Deterministic, and it never raises on content: odd types count as missing,
and only the first MAX_CHARS characters of a document are read.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

TOLERANCE_SECONDS = 60
MAX_CHARS = 1_000_000  # a postmortem is tens of KB; a bigger file is graded on its start
MAX_LINE = 4_000  # characters of one line that are searched
MAX_ITEMS = 500  # entries of one list (Markdown or result) that are judged
MAX_SHOWN = 3  # problems quoted in a `why`, then "and N more"

PASS, FAIL, ABSENT = "pass", "fail", "absent"


@dataclass(frozen=True)
class Criterion:
    key: str
    title: str
    passed: bool
    why: str


@dataclass(frozen=True)
class Grade:
    criteria: tuple[Criterion, ...]
    notes: tuple[str, ...] = ()  # about the grading itself (a truncated document)

    @property
    def passed(self) -> int:
        return sum(criterion.passed for criterion in self.criteria)

    @property
    def total(self) -> int:
        return len(self.criteria)

    @property
    def score(self) -> str:
        return f"{self.passed}/{self.total}"


@dataclass(frozen=True)
class _Verdict:
    state: str  # PASS; FAIL: something stated falls short; ABSENT: nothing wrong, but something needed is not stated
    why: str


# Markdown: headings, sections and their items.

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})[ \t]+(\S.*)$")  # the text's closing #s are dropped by _title
_BULLET = re.compile(r"^(\s*)(?:[-*+]|\d{1,3}[.)])\s+(.*)$")
_ROW = re.compile(r"^\s*\|")
_SEPARATOR = re.compile(r"^\s*(?:\|\s*)?:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*(?:\|\s*)?$")
_SECTIONS = {  # key: the name a `why` gives it, and the words of a heading that opens it
    "timeline": ("Timeline", r"\b(?:timeline|chronology|sequence of events)\b"),
    "impact": ("Impact", r"\bimpact\b"),
    "detection": ("Detection", r"\bdetect(?:ion|ed)?\b|\bdiscovery\b"),
    "root_cause": ("Root cause (or Trigger)", r"\broot cause|\btrigger\b|(?<!contributing )\bcauses?\b"),
    "contributing": ("Contributing factors", r"\bcontributing\b"),
    "action_items": (
        "Action items",
        r"\baction items?\b|\bfollow[- ]ups?\b|\bremediation\b|\bcorrective actions?\b|\bnext steps\b",
    ),
    "went_well": ("What went well", r"\bwent well\b"),
    "went_poorly": (
        "What went poorly",
        r"\bwent (?:poorly|wrong|badly)\b|\bdid ?n[o']t go well\b|\bcould have gone better\b",
    ),
    "got_lucky": ("Where we got lucky", r"\blucky\b|\bluck\b"),
    "recurrence": (
        "Recurrence (or Related incidents)",
        r"\brecurren|\brelated incidents\b|\bhappened before\b"
        r"|\b(?:previous|prior|past|similar|earlier) (?:incidents|postmortems)\b",
    ),
}
_OPENS = {key: re.compile(words, re.I) for key, (_, words) in _SECTIONS.items()}


@dataclass(frozen=True)
class _Line:
    number: int
    text: str


@dataclass(frozen=True)
class _Item:
    line: int
    text: str
    cells: tuple[tuple[str, str], ...] = ()  # (lower-cased header, cell) of a table row
    context: str = ""  # the subheading it is under


@dataclass(frozen=True)
class _Paragraph:
    """Wrapped lines joined, so that a phrase broken by a line break is still found."""

    text: str
    numbers: tuple[int, ...]  # its lines' numbers
    starts: tuple[int, ...]  # where each line starts in the text

    def line_at(self, offset: int) -> int:
        return self.numbers[bisect_right(self.starts, offset) - 1]


@dataclass(frozen=True)
class _Doc:
    lines: tuple[_Line, ...]  # outside fenced code
    sections: Mapping[str, tuple[_Line, ...]]  # each section's body (subheadings included), by key
    headings: Mapping[str, tuple[str, ...]]
    paragraphs: tuple[_Paragraph, ...]


def _title(heading: re.Match[str]) -> str:
    return heading.group(2).rstrip().rstrip("#").rstrip()


def _parse(markdown: str) -> _Doc:
    lines: list[_Line] = []
    fence = ""
    for number, raw in enumerate(markdown[:MAX_CHARS].splitlines(), 1):
        if opened := _FENCE.match(raw):
            fence = "" if fence and opened.group(1) == fence else fence or opened.group(1)
        elif not fence:
            lines.append(_Line(number, raw[:MAX_LINE]))
    # A section runs to the next heading of the same or a higher level: one pass with a stack of open headings.
    spans: list[tuple[int, int, str]] = []
    stack: list[tuple[int, int, str]] = []
    for index, line in enumerate(lines):
        if heading := _HEADING.match(line.text):
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                _, start, title = stack.pop()
                spans.append((start, index, title))
            stack.append((level, index, _title(heading)))
    spans.extend((start, len(lines), title) for _, start, title in stack)
    bodies: dict[str, set[int]] = {}
    headings: dict[str, list[str]] = {}
    for start, end, title in sorted(spans):
        for key, pattern in _OPENS.items():
            if pattern.search(title):
                bodies.setdefault(key, set()).update(range(start + 1, end))
                headings.setdefault(key, []).append(title)
    return _Doc(
        tuple(lines),
        {key: tuple(lines[index] for index in sorted(body)) for key, body in bodies.items()},
        {key: tuple(titles) for key, titles in headings.items()},
        tuple(_paragraphs(lines)),
    )


# A blank line, a heading, a list item or a table row starts a paragraph.
_BREAK = re.compile(r"\s*$|\s{0,3}#{1,6}[ \t]|\s*(?:[-*+]|\d{1,3}[.)])\s|\s*\|")


def _paragraphs(lines: list[_Line]) -> Iterator[_Paragraph]:
    parts: list[str] = []
    numbers: list[int] = []
    starts: list[int] = []
    size = 0
    for line in lines:
        if numbers and (_BREAK.match(line.text) or len(numbers) >= 50 or line.number != numbers[-1] + 1):
            yield _Paragraph(" ".join(parts), tuple(numbers), tuple(starts))
            parts, numbers, starts, size = [], [], [], 0
        if text := line.text.strip():
            parts.append(text)
            numbers.append(line.number)
            starts.append(size)
            size += len(text) + 1
    if numbers:
        yield _Paragraph(" ".join(parts), tuple(numbers), tuple(starts))


def _cells(text: str) -> list[str]:
    return [cell.strip() for cell in text.strip().strip("|").split("|")]


def _items(lines: tuple[_Line, ...]) -> tuple[list[_Item], list[_Line]]:
    """A section's list items (nested bullets and indented lines join their item) and table rows, and its other
    non-blank lines."""
    found: list[tuple[int, list[str], tuple[tuple[str, str], ...], str]] = []
    prose: list[_Line] = []
    header: list[str] | None = None
    context, indent = "", -1
    for position, line in enumerate(lines):
        text = line.text
        if heading := _HEADING.match(text):
            context, header, indent = _title(heading), None, -1
        elif not text.strip():
            header = None
        elif _ROW.match(text):
            indent = -1
            following = lines[position + 1].text if position + 1 < len(lines) else ""
            if _SEPARATOR.match(text):
                continue
            if _SEPARATOR.match(following):
                header = [cell.lower() for cell in _cells(text)]
            else:
                cells = _cells(text)
                found.append((line.number, [" | ".join(cells)], tuple(zip(header or (), cells, strict=False)), context))
        elif bullet := _BULLET.match(text):
            if found and indent >= 0 and len(bullet.group(1)) > indent:
                found[-1][1].append(bullet.group(2))
            else:
                indent = len(bullet.group(1))
                found.append((line.number, [bullet.group(2)], (), context))
        elif found and indent >= 0 and text[:1].isspace():
            found[-1][1].append(text.strip())
        else:
            indent = -1
            prose.append(line)
    items = [_Item(number, "; ".join(parts), cells, ctx) for number, parts, cells, ctx in found[:MAX_ITEMS]]
    return items, prose


def _cell(item: _Item, header: re.Pattern[str]) -> str | None:
    return next((cell for name, cell in item.cells if header.search(name)), None)


def _missing_section(key: str) -> _Verdict:
    name = _SECTIONS[key][0]
    return _Verdict(FAIL, f"no {name} section (no heading such as “## {name.split(' (')[0]}”)")


def _quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return f"“{text if len(text) <= limit else text[: limit - 1] + '…'}”"


def _listed(problems: list[str], separator: str = "; ") -> str:
    shown = separator.join(problems[:MAX_SHOWN])
    return shown + (f"{separator}and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else "")


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


_PLACEHOLDER = re.compile(r"(?:tbd|tba|todo|n/?a|none|nobody|unassigned|unknown|owner|someone|\?+|-+|—|–|…)?", re.I)


def _placeholder(value: str) -> bool:
    return _PLACEHOLDER.fullmatch(value.strip(" \t*_`.:;,()[]<>\"'")) is not None


# 1. An evidence-linked timeline in UTC.

_STAMP = re.compile(
    r"(?:(\d{4})-(\d{2})-(\d{2})[T ]|\b)([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d+)?)?"
    r"(?:\s*(Z\b|UTC\b|utc\b|\+00:?00\b))?"
)
_UTC_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z")
_EVIDENCE = re.compile(
    r"`[^`]+`|\[[^\[\]]*\]\([^()\s]+\)|https?://\S+|\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{6,}\b"
)
_UTC_WORD = re.compile(r"\butc\b", re.I)


def _timeline(doc: _Doc) -> list[tuple[_Item, re.Match[str] | None, bool]]:
    """The timeline's entries: each with its first time stamp, and whether that stamp is in UTC."""
    items, prose = _items(doc.sections.get("timeline", ()))
    if not items:  # a timeline written as paragraphs: the lines that hold a time
        items = [_Item(line.number, line.text) for line in prose if _STAMP.search(line.text)][:MAX_ITEMS]
    declared = (
        any(_UTC_WORD.search(title) for title in doc.headings.get("timeline", ()))
        or any(_UTC_WORD.search(line.text) for line in prose)
        or any(_UTC_WORD.search(name) for item in items for name, _ in item.cells)
    )
    entries = []
    for item in items:
        stamp = _STAMP.search(item.text)
        entries.append((item, stamp, bool(stamp and (stamp.group(7) or declared))))
    return entries


def _timeline_md(doc: _Doc, _: Mapping[str, Any]) -> _Verdict:
    if "timeline" not in doc.sections:
        return _missing_section("timeline")
    entries = _timeline(doc)
    without_time = [f"line {item.line}" for item, _, utc in entries if not utc]
    without_evidence = [
        f"line {item.line}" for item, _, _ in entries if not _EVIDENCE.search(_STAMP.sub(" ", item.text))
    ]
    return _timeline_verdict(len(entries), without_time, without_evidence)


def _timeline_verdict(count: int, without_time: list[str], without_evidence: list[str]) -> _Verdict:
    if count < 2:
        return _Verdict(FAIL, f"the timeline has {count} entr{'y' if count == 1 else 'ies'}, fewer than 2")
    problems = [
        f"{len(found)} {what} ({_listed(found, ', ')})"
        for found, what in ((without_time, "without a UTC time"), (without_evidence, "without evidence"))
        if found
    ]
    if problems:
        return _Verdict(FAIL, f"timeline has {count} entries: " + "; ".join(problems))
    return _Verdict(PASS, f"timeline has {count} entries, each with a UTC time and evidence")


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
    return _timeline_verdict(len(entries), without_time, without_evidence)


# 2. Response times matching the record within TOLERANCE_SECONDS.

_ACK, _RESOLVE = "seconds_to_first_ack", "seconds_to_resolve"
_MEASURES = {_ACK: "time to acknowledge", _RESOLVE: "time to resolve"}
_UNIT = r"(?:days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)(?![a-z])"
_DURATION = re.compile(rf"(?<![\d.])\d+(?:\.\d+)?\s*{_UNIT}(?:(?:\s*,\s*|\s+and\s+|\s*)\d+(?:\.\d+)?\s*{_UNIT})*", re.I)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z])", re.I)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_STATED = {
    _ACK: re.compile(r"\btime[ -]to[ -](?:first[ -])?ack\w*|\bm?tta\b|\backnowledged\s+(?:after|in|within)\b", re.I),
    _RESOLVE: re.compile(r"\btime[ -]to[ -]resol\w*|\bm?ttr\b|\bresolved\s+(?:after|in|within)\b", re.I),
}
_EVENTS = {
    "triggered": re.compile(r"\btriggered\b|\bincident\s+(?:opened|created)\b", re.I),
    "acknowledged": re.compile(r"\backnowledged\b", re.I),
    "resolved": re.compile(r"\bresolved\b", re.I),
}


def _stated_md(doc: _Doc) -> list[tuple[str, float, str]]:
    """(measure, seconds, where) for each "time to acknowledge: 4m 12s" or "resolved after 1h 03m" outside the
    timeline: the duration must follow the phrase within 40 characters, in the same sentence."""
    timeline = {line.number for line in doc.sections.get("timeline", ())}
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
                seconds = sum(float(n) * _SECONDS[unit[0].lower()] for n, unit in _PART.findall(duration.group()))
                where = f"“{duration.group()}” (line {paragraph.line_at(match.start())})"
                stated.append((measure, seconds, where))
    return stated[:MAX_ITEMS]


def _moments(stamps: list[re.Match[str] | None]) -> list[datetime | None]:
    """Each stamp as a time; a time without a date takes the previous one's day (the next day past midnight)."""
    moments: list[datetime | None] = []
    previous: datetime | None = None
    for stamp in stamps:
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
        moments.append(moment)
    return moments


def _from_timeline(entries: list[tuple[str, re.Match[str] | None]]) -> dict[str, tuple[float, str]]:
    """Response times from the timeline's own times: first "triggered" to first "acknowledged" and last "resolved"."""
    found: dict[str, datetime] = {}
    for (text, _), moment in zip(entries, _moments([stamp for _, stamp in entries]), strict=True):
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


def _reference(doc: _Doc | None, result: Mapping[str, Any] | None, computed: Mapping[str, Any]) -> dict[str, Any]:
    """What stated response times are compared with: `computed` (PagerDuty's record), else the timeline."""
    if doc is not None:
        entries = [(item.text, stamp if utc else None) for item, stamp, utc in _timeline(doc)]
    else:
        entries = [
            (_text(entry.get("what")), _STAMP.search(_text(entry.get("at"))))
            for entry in map(_map, _list((result or {}).get("timeline")))
        ]
    reference: dict[str, Any] = _from_timeline(entries)
    for measure in _MEASURES:
        if (seconds := _number(computed.get(measure))) is not None:
            reference[measure] = (seconds, "the record's")
    return reference


def _compare(stated: list[tuple[str, float, str]], reference: Mapping[str, Any], source: str) -> _Verdict:
    if not stated:
        return _Verdict(ABSENT, f"{source} states no time to acknowledge or resolve")
    matches, misses, unchecked = [], [], []
    for measure, seconds, where in stated:
        if measure not in reference:
            unchecked.append(_MEASURES[measure])
            continue
        expected, whose = reference[measure]
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
            ABSENT,
            f"nothing to compare: {source} states the {' and '.join(dict.fromkeys(unchecked))}, but there are no"
            " computed figures and the timeline has no triggered/acknowledged/resolved times",
        )
    skipped = f"; not compared (nothing to compare with): {', '.join(dict.fromkeys(unchecked))}" if unchecked else ""
    return _Verdict(PASS, _listed(matches) + skipped)


def _response_md(doc: _Doc, reference: Mapping[str, Any]) -> _Verdict:
    return _compare(_stated_md(doc), reference, "the Markdown")


def _response_result(result: Mapping[str, Any], reference: Mapping[str, Any]) -> _Verdict:
    response = _map(result.get("response"))
    stated = [
        (measure, seconds, f"(response.{measure})")
        for measure in _MEASURES
        if (seconds := _number(response.get(measure))) is not None
    ]
    return _compare(stated, reference, "the result")


# 3. Impact quantified, or a labelled estimate.

_NOT_QUANTITY = re.compile(
    r"`[^`]*`|\[[^\[\]]*\]\([^()\s]*\)|https?://\S+|\d{4}-\d{2}-\d{2}|#\d+|\b(?:p|sev)-?\d\b"
    r"|(?<![\w.])v?\d+(?:\.\d+){2,}\b|\b(?:https?|status(?: code)?|error|code)\s+\d{3}\b|\b\dxx\b"
    rf"|{_STAMP.pattern}|{_DURATION.pattern}",
    re.I,
)
_QUANTITY = re.compile(r"(?:[$€£]\s?)?\d[\d,]*(?:\.\d+)?\s*(?:%|percent\b)?(?:\s*[A-Za-z-]+){0,2}")
_ESTIMATE = re.compile(r"\bestimat\w*|\bapprox\w*|\broughly\b|\baround\b|\babout\b|~|≈", re.I)


def _impact_md(doc: _Doc, _: Mapping[str, Any]) -> _Verdict:
    if "impact" not in doc.sections:
        return _missing_section("impact")
    for line in doc.sections["impact"]:
        if _HEADING.match(line.text):
            continue
        if quantity := _QUANTITY.search(_NOT_QUANTITY.sub(" ", _BULLET.sub(r"\2", line.text))):
            label = _ESTIMATE.search(line.text)
            kind = f"labelled an estimate ({_quote(label.group())})" if label else "not labelled an estimate"
            return _Verdict(PASS, f"impact quantified: {_quote(quantity.group().strip())} (line {line.number}), {kind}")
    return _Verdict(
        FAIL, "the Impact section has no number of users, requests, orders or money (a duration alone is not one)"
    )


def _impact_result(result: Mapping[str, Any], _: Mapping[str, Any]) -> _Verdict:
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


# 4. Detection analysed: how, when, and what could have noticed it sooner.

_GAP = re.compile(
    r"\b(?:sooner|earlier|faster|gap|missed|could have|would have|no alert|did ?n[o']t alert|blind spot|undetected"
    r"|not detected|delay(?:ed)?|late)\b",
    re.I,
)


def _detection_md(doc: _Doc, _: Mapping[str, Any]) -> _Verdict:
    if "detection" not in doc.sections:
        return _missing_section("detection")
    text = " ".join(line.text for line in doc.sections["detection"] if not _HEADING.match(line.text))
    missing = [
        what
        for what, found in (
            ("how (a sentence of 3 words or more)", len(text.split()) >= 3),
            ("when (a UTC time or a delay)", bool(_STAMP.search(text) or _DURATION.search(text))),
            ("what could have noticed it sooner (words such as “sooner”, “gap”, “missed”)", bool(_GAP.search(text))),
        )
        if not found
    ]
    if missing:
        return _Verdict(FAIL, "the Detection section does not say " + ", nor ".join(missing))
    return _Verdict(PASS, "the Detection section says how, when, and what could have noticed it sooner")


def _detection_result(result: Mapping[str, Any], _: Mapping[str, Any]) -> _Verdict:
    detection = _map(result.get("detection"))
    at = _text(detection.get("detected_at"))
    if at and not _UTC_AT.fullmatch(at):
        return _Verdict(FAIL, f"detection.detected_at {_quote(at)} is not a UTC time")
    missing = [field for field in ("how", "detected_at", "gap") if not _text(detection.get(field))]
    if missing:
        return _Verdict(ABSENT, f"the result's detection has no {', no '.join(missing)}")
    return _Verdict(PASS, f"detection: how, detected_at {at}, and the gap")


# 5. The trigger apart from the contributing factors, each with a confidence.

_CONFIDENCE = re.compile(
    r"\b(?:confirmed|likely|unlikely|hypothes[ie]s|hypothesi[sz]ed|suspected|unconfirmed|probable|confidence)\b", re.I
)
_LEVELS = ("confirmed", "likely", "hypothesis")


def _causes_md(doc: _Doc, _: Mapping[str, Any]) -> _Verdict:
    if "root_cause" not in doc.sections:
        return _missing_section("root_cause")
    if "contributing" not in doc.sections:
        return _missing_section("contributing")
    cause = " ".join(line.text for line in doc.sections["root_cause"])
    items, prose = _items(doc.sections["contributing"])
    factors = items or [_Item(line.number, line.text) for line in prose]
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


def _causes_result(result: Mapping[str, Any], _: Mapping[str, Any]) -> _Verdict:
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

_BLAME = re.compile(
    r"\bhuman[ -]error\b|\boperator[ -]error\b|\b(?:his|her|their)\s+(?:own\s+)?(?:fault|mistake|negligence)\b"
    r"|\bfault\s+of\b|\bat\s+fault\b|\bblam(?:e|ed|es|ing)\b(?!-)|\bcareless(?:ly|ness)?\b|\bnegligen(?:t|tly|ce)\b"
    r"|\breckless(?:ly|ness)?\b|\bsloppy\b|\bincompeten(?:t|ce)\b|\blaz(?:y|iness)\b|\bstupid\b|\bidiot\w*"
    r"|\bshould\s+have\s+known\b|\bshould\s+have\s+been\s+more\s+careful\b|\bdropped\s+the\s+ball\b"
    r"|\bdid\s*n[o']t\s+bother\b"
    r"|(?:\b(?:he|she|someone|somebody|engineer|developer|operator|responder|on-?call(?:\s+engineer)?)|@[\w.-]+)"
    r"\s+(?:failed|neglected|forgot)\s+to\b",
    re.I,
)
# "No one is to blame", "this was not human error": a negation shortly before, in the same sentence.
_NEGATED = re.compile(r"(?:\bno|\bnot|\bnever|\bnobody|\bno one|\bwithout|n't)\b[^.;!?|]*$", re.I)
_CODE_SPAN = re.compile(r"`[^`]*`")


# Each phrase holds one of these: a cheap test first keeps a big document fast.
_BLAME_STEMS = ("error", "fault", "blam", "careless", "negligen", "reckless", "sloppy", "incompeten", "lazy", "lazi")
_BLAME_STEMS += ("stupid", "idiot", "should", "dropped", "bother", "failed", "neglected", "forgot")


def _blame(text: str) -> list[tuple[int, str]]:
    """(offset, phrase) of each blaming phrase outside code spans."""
    lowered = text.lower()
    if not any(stem in lowered for stem in _BLAME_STEMS):
        return []
    text = _CODE_SPAN.sub(lambda span: " " * len(span.group()), text)  # same length: offsets still map to lines
    return [
        (m.start(), " ".join(m.group().split()))
        for m in _BLAME.finditer(text)
        if not _NEGATED.search(text[max(0, m.start() - 30) : m.start()])
    ]


def _blameless(found: list[str]) -> _Verdict:
    if found:
        return _Verdict(FAIL, f"blaming language: {_listed(found)}")
    return _Verdict(PASS, "no blaming phrase found")


def _blameless_md(doc: _Doc, _: Mapping[str, Any]) -> _Verdict:
    return _blameless(
        [
            f"“{phrase}” (line {paragraph.line_at(at)})"
            for paragraph in doc.paragraphs
            for at, phrase in _blame(paragraph.text)
        ]
    )


def _blameless_result(result: Mapping[str, Any], _: Mapping[str, Any]) -> _Verdict:
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


# 7. At least one preventive action item; every item owned and verifiable.

_LABEL = re.compile(
    r"\b(?:(owner|verification|verify|acceptance|type|priority)\b[*_]*\s*:"
    r"|(owned by|assigned to|verified by|done when)\b)[*_]*\s*",
    re.I,
)
_FIELDS = {"owner": "owner", "owned by": "owner", "assigned to": "owner", "type": "type", "priority": "priority"}
_OWNER_HEADER = re.compile(r"owner|assignee|who|responsible")
_VERIFY_HEADER = re.compile(r"verif|done when|acceptance|how to check")
_TYPE_HEADER = re.compile(r"type|kind|category|class")
_PREVENT = re.compile(r"\bprevent(?:ion|ive|ative)?\b", re.I)
_PREVENT_TAG = re.compile(r"^\W*prevent\w*\W*:|[\[(]\s*prevent\w*\s*[\])]", re.I)


def _labels(text: str) -> dict[str, str]:
    """A list item's labelled values ("owner: payments on-call; verify: …"), each up to the next label, ; or |."""
    marks = list(_LABEL.finditer(text))
    values: dict[str, str] = {}
    for index, mark in enumerate(marks):
        name = (mark.group(1) or mark.group(2)).lower()
        value = text[mark.end() : marks[index + 1].start() if index + 1 < len(marks) else len(text)]
        values.setdefault(_FIELDS.get(name, "verification"), re.split(r"[;|]", value)[0].strip(" —–-,."))
    return values


def _actions_verdict(items: list[tuple[str, str, str, bool]]) -> _Verdict:
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
        return _Verdict(FAIL, f"{len(items)} action item{'s' if len(items) > 1 else ''}: {_listed(problems)}")
    return _Verdict(PASS, f"{len(items)} action items, {preventive} preventive, each with an owner and a verification")


def _actions_md(doc: _Doc, _: Mapping[str, Any]) -> _Verdict:
    if "action_items" not in doc.sections:
        return _missing_section("action_items")
    items, prose = _items(doc.sections["action_items"])
    judged = []
    for item in items or [_Item(line.number, line.text) for line in prose]:
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


def _actions_result(result: Mapping[str, Any], _: Mapping[str, Any]) -> _Verdict:
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


def _reflection_md(doc: _Doc, _: Mapping[str, Any]) -> _Verdict:
    empty = [
        _SECTIONS[key][0]
        for key in _REFLECTION
        if not any(
            not _HEADING.match(line.text) and not _placeholder(_BULLET.sub(r"\2", line.text))
            for line in doc.sections.get(key, ())
        )
    ]
    if empty:
        return _Verdict(FAIL, f"no (or an empty) section: {', '.join(empty)}")
    return _Verdict(PASS, "went well, went poorly and got lucky each have content")


def _reflection_result(result: Mapping[str, Any], _: Mapping[str, Any]) -> _Verdict:
    counts = {field: sum(1 for text in _list(result.get(field)) if _text(text)) for field in _REFLECTION}
    empty = [field for field, count in counts.items() if not count]
    if empty:
        return _Verdict(ABSENT, f"the result has no {', no '.join(empty)}")
    return _Verdict(PASS, ", ".join(f"{field}: {count}" for field, count in counts.items()))


# 9. Recurrence checked.

_REFERENCE = re.compile(
    _EVIDENCE.pattern + r"|#\d+|\bincident\s+#?\d+|(?<!\S)\S+\.md\b",
)
_NONE_FOUND = re.compile(
    r"\bno\s+(?:similar|related|previous|prior|earlier|past|other|matching)\b|\bnone\s+found\b|\bfirst\s+(?:time|occurrence)\b"
    r"|\bnot\s+happened\s+before\b|\bno\s+recurrence\b",
    re.I,
)
_NOT_CHECKED = re.compile(
    r"\bnot\s+(?:yet\s+)?(?:been\s+)?checked\b|\bdid\s*n[o']t\s+(?:check|look)\b|\bunchecked\b", re.I
)


def _recurrence_md(doc: _Doc, _: Mapping[str, Any]) -> _Verdict:
    if "recurrence" not in doc.sections:
        return _missing_section("recurrence")
    body = [line for line in doc.sections["recurrence"] if not _HEADING.match(line.text)]
    text = " ".join(line.text for line in body)
    if unchecked := _NOT_CHECKED.search(text):
        return _Verdict(FAIL, f"the Recurrence section says it was not checked ({_quote(unchecked.group())})")
    if found := _REFERENCE.search(text) or _NONE_FOUND.search(text):
        return _Verdict(PASS, f"the Recurrence section cites what was checked ({_quote(found.group())})")
    return _Verdict(FAIL, "the Recurrence section names no past incident or postmortem, nor says none was found")


def _recurrence_result(result: Mapping[str, Any], _: Mapping[str, Any]) -> _Verdict:
    recurrence = _map(result.get("recurrence"))
    checked = recurrence.get("checked")
    if not isinstance(checked, bool):
        return _Verdict(ABSENT, "the result has no recurrence.checked")
    if not checked:
        return _Verdict(FAIL, "recurrence.checked is false")
    related = [_text(item) for item in _list(recurrence.get("related")) if _text(item)]
    return _Verdict(PASS, f"recurrence checked; related: {', '.join(related[:MAX_SHOWN]) or 'none'}")


_Judge = Callable[[Any, Mapping[str, Any]], _Verdict]
CRITERIA: tuple[tuple[str, str, _Judge, _Judge], ...] = (
    ("timeline", "Evidence-linked timeline in UTC", _timeline_md, _timeline_result),
    ("response_times", "Response times match the record (within 60 s)", _response_md, _response_result),
    ("impact", "Impact quantified or a labelled estimate", _impact_md, _impact_result),
    ("detection", "Detection analysed", _detection_md, _detection_result),
    ("causes", "Trigger vs contributing factors, with confidence", _causes_md, _causes_result),
    ("blameless", "Blameless language", _blameless_md, _blameless_result),
    ("action_items", "Preventive action item; every item owned and verifiable", _actions_md, _actions_result),
    ("reflection", "What went well / poorly / where we got lucky", _reflection_md, _reflection_result),
    ("recurrence", "Recurrence checked", _recurrence_md, _recurrence_result),
)


def _combine(markdown: _Verdict | None, result: _Verdict | None) -> tuple[bool, str]:
    """The Markdown must meet the criterion; the result, when given, must not contradict it (a field it lacks leaves
    the judgement to the Markdown). Either one alone must meet it."""
    if markdown is None or result is None:
        only = markdown or result
        return (only.state == PASS, only.why) if only else (False, "nothing to grade")
    if markdown.state != PASS:
        return False, f"Markdown: {markdown.why} | result: {result.why}"
    if result.state == FAIL:
        return False, f"the result contradicts the Markdown: {result.why} | Markdown: {markdown.why}"
    return True, markdown.why + (" (the result agrees)" if result.state == PASS else " (the result does not say)")


def grade(
    markdown: str | None = None, result: Mapping[str, Any] | None = None, computed: Mapping[str, Any] | None = None
) -> Grade:
    """Grade a postmortem from its Markdown, its structured result, or both; `computed` holds PagerDuty's response
    figures (seconds_to_first_ack, seconds_to_resolve) when known."""
    doc = _parse(markdown) if isinstance(markdown, str) else None
    answers = None if result is None else _map(result)
    reference = _reference(doc, answers, _map(computed))
    criteria = []
    for key, title, judge_markdown, judge_result in CRITERIA:
        passed, why = _combine(
            judge_markdown(doc, reference) if doc is not None else None,
            judge_result(answers, reference) if answers is not None else None,
        )
        criteria.append(Criterion(key, title, passed, why))
    notes = ()
    if isinstance(markdown, str) and len(markdown) > MAX_CHARS:
        notes = (f"only the first {MAX_CHARS:,} of {len(markdown):,} characters were read",)
    return Grade(tuple(criteria), notes)


def format_grade(grade: Grade) -> str:
    """One ✓/✗ line per criterion, any notes, then the score."""
    lines = [f"{'✓' if c.passed else '✗'} {c.title}: {c.why}" for c in grade.criteria]
    lines.extend(f"note: {note}" for note in grade.notes)
    lines.append(f"score: {grade.score}")
    return "\n".join(lines)
