"""Grade a postmortem against the rubric in docs/postmortem-rubric.md: one ✓/✗/⚠ line per criterion, then the score.

    scripts/check-postmortem FILE.md [--result RESULT.json] [--computed COMPUTED.json] [--min-score N] [--strict]

The default reading is lenient, for postmortems people write: it finds each criterion's substance wherever it stands,
and a figure it cannot check (no zone, no record to compare with) passes with a warning (⚠). --strict reads the
bridge's own template (what Devin is asked to write): its sections, every timeline time in UTC, and anything not
checkable fails.

RESULT.json is the structured result Devin filled (handler/bridge/result/postmortem.schema.json), or a whole Devin
session as its API returns it (its `structured_output` is taken). COMPUTED.json holds PagerDuty's response figures as
the bridge computes them (`seconds_to_first_ack`, `seconds_to_resolve`); without it, the response times the
postmortem states are checked against its own timeline.

Exit status: 0 when the score reaches --min-score (default: every criterion), 1 when it does not, 2 on a usage error,
a file that cannot be read, or JSON that is not valid.

Only the standard library and rubric.py are needed: rubric.py is looked for beside this file (both copied into a
postmortems repository's CI), then at handler/bridge/result/rubric.py of this repository. `python3 check_postmortem.py`
runs it with any Python from 3.10.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

MAX_BYTES = 8 * 1024 * 1024  # read at most this much of a file: the rubric grades the start of a bigger one
HERE = Path(__file__).resolve().parent


class UsageError(Exception):
    """Exit status 2: wrong arguments, a file that cannot be read, or JSON that is not valid."""


def load_rubric() -> ModuleType:
    """rubric.py by its path: handler/bridge holds modules named like the standard library's (http.py), so that
    folder must not go on sys.path, and importing the `bridge` package would need its dependencies."""
    for path in (HERE / "rubric.py", HERE.parent / "handler" / "bridge" / "result" / "rubric.py"):
        spec = importlib.util.spec_from_file_location("postmortem_rubric", path) if path.is_file() else None
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
            spec.loader.exec_module(module)
            return module
    raise UsageError(f"rubric.py is neither beside {HERE / Path(__file__).name} nor in ../handler/bridge/result/")


def _parser(criteria: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/check-postmortem",
        usage="%(prog)s FILE.md [--result RESULT.json] [--computed COMPUTED.json] [--min-score N] [--strict]",
        allow_abbrev=False,
        description="Grade a postmortem against the rubric (docs/postmortem-rubric.md).",
    )
    parser.add_argument("markdown", metavar="FILE.md", help="the postmortem in Markdown")
    parser.add_argument("--result", metavar="RESULT.json", help="its structured result, or the Devin session's JSON")
    parser.add_argument(
        "--computed", metavar="COMPUTED.json", help="PagerDuty's response figures, as the bridge computes"
    )
    parser.add_argument(
        "--min-score",
        type=int,
        default=criteria,
        metavar="N",
        help=f"the criteria that must pass for exit status 0 (default {criteria}: all)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="read the bridge's own template exactly; a figure that cannot be checked fails",
    )
    return parser


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(MAX_BYTES)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None


def _object(path: str, what: str) -> Mapping[str, Any]:
    raw = _read(path)
    if len(raw) == MAX_BYTES:
        raise UsageError(f"{path}: larger than {MAX_BYTES} bytes, too large for {what}")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise UsageError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path}: {what} must be a JSON object, not {type(value).__name__}")
    return value


def read_result(path: str) -> Mapping[str, Any]:
    """The structured result, from the file itself or from a Devin session's `structured_output`."""
    value = _object(path, "the result")
    if "structured_output" in value and "root_cause" not in value:
        output = value["structured_output"]
        if not isinstance(output, dict):
            raise UsageError(f"{path}: the session's structured_output is not an object (is the session finished?)")
        return output
    return value


def main(argv: list[str]) -> int:
    try:
        rubric = load_rubric()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    total = len(rubric.CRITERIA)
    parser = _parser(total)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage; --help exits 0
        return 0 if exit_.code in (0, None) else 2
    try:
        if not 0 <= args.min_score <= total:
            raise UsageError(f"--min-score must be between 0 and {total}, not {args.min_score}")
        markdown = _read(args.markdown).decode("utf-8", errors="replace")
        result = read_result(args.result) if args.result else None
        computed = _object(args.computed, "the computed figures") if args.computed else None
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    grade = rubric.grade(markdown, result, computed, strict=args.strict)
    print(rubric.format_grade(grade))
    return 0 if grade.passed >= args.min_score else 1


if __name__ == "__main__":
    if sys.version_info < (3, 10):  # noqa: UP036 - a copy in another repository may meet an older python3
        sys.exit("error: Python 3.10 or newer is needed")
    sys.stdout.reconfigure(errors="replace")  # ✓ and ✗ on a terminal that cannot show them
    sys.exit(main(sys.argv[1:]))
