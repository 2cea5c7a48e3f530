"""How well the rubric agrees with a reviewer's ratings of postmortems (docs/postmortem-rubric.md, "Evaluation").

    .venv/bin/python -m local.rubric_agreement RATINGS.csv DOCUMENTS/ [--strict]

RATINGS.csv has one row per document: its `name`, its `kind` (`incident` or `template`), and one column per
criterion key holding the reviewer's 1 (pass) or 0 (fail), written before the grader ran on it. DOCUMENTS/NAME.md is
the document. It prints the agreement per criterion, the passes where the rating fails, the Spearman rank
correlation of the totals, and whether every blank template scores below every document rated good (6 or more of
9). tests/samples/rubric/ratings.csv rates the repository's own fixtures (tests/test_rubric_agreement.py holds its
figures to issue 22's bar); docs/rubric/*.csv rate public postmortems, to fetch at the commits they name.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from scripts.check_postmortem import load_rubric

GOOD = 6  # a total the reviewer rates good: two thirds of the criteria


@dataclass(frozen=True)
class Rating:
    name: str
    kind: str  # incident or template
    passes: dict[str, bool]  # by criterion key

    @property
    def total(self) -> int:
        return sum(self.passes.values())


@dataclass(frozen=True)
class Agreement:
    documents: int
    agreed: dict[str, int]  # by criterion key: documents where the grader and the rating agree
    false_passes: int  # criteria the grader passes where the rating fails them
    rated_fails: int
    spearman: float  # of the totals, every document
    spearman_incidents: float  # of the totals, templates left out
    templates_below_good: bool
    lowest_good: int | None  # the grader's lowest total for a document rated good
    highest_template: int | None

    @property
    def false_pass_share(self) -> float:
        return self.false_passes / self.rated_fails if self.rated_fails else 0.0


def read_ratings(path: Path, keys: Sequence[str]) -> list[Rating]:
    with path.open(encoding="utf-8", newline="") as file:
        return [
            Rating(row["name"], row["kind"], {key: row[key].strip() == "1" for key in keys})
            for row in csv.DictReader(file)
        ]


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(first: Sequence[float], second: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged); 0 when either is constant."""
    a, b = _ranks(first), _ranks(second)
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    covariance = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    spread = (sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b)) ** 0.5
    return covariance / spread if spread else 0.0


def measure(ratings: Sequence[Rating], graded: Sequence[dict[str, bool]]) -> Agreement:
    """The agreement of grades (each a criterion key -> passed) with the ratings of the same documents."""
    keys = list(ratings[0].passes)
    agreed = {
        key: sum(rating.passes[key] == grade[key] for rating, grade in zip(ratings, graded, strict=True))
        for key in keys
    }
    false_passes = sum(
        grade[key] and not rating.passes[key] for rating, grade in zip(ratings, graded, strict=True) for key in keys
    )
    rated_fails = sum(not passed for rating in ratings for passed in rating.passes.values())
    totals = [sum(grade.values()) for grade in graded]
    incidents = [index for index, rating in enumerate(ratings) if rating.kind != "template"]
    good = [totals[index] for index in incidents if ratings[index].total >= GOOD]
    templates = [totals[index] for index, rating in enumerate(ratings) if rating.kind == "template"]
    return Agreement(
        len(ratings),
        agreed,
        false_passes,
        rated_fails,
        spearman([rating.total for rating in ratings], totals),
        spearman([ratings[index].total for index in incidents], [totals[index] for index in incidents]),
        not good or not templates or max(templates) < min(good),
        min(good) if good else None,
        max(templates) if templates else None,
    )


def grade_documents(
    rubric: ModuleType, ratings: Sequence[Rating], folder: Path, strict: bool = False
) -> list[dict[str, bool]]:
    graded = []
    for rating in ratings:
        markdown = (folder / f"{rating.name}.md").read_text(encoding="utf-8", errors="replace")
        graded.append({found.key: found.passed for found in rubric.grade(markdown, strict=strict).criteria})
    return graded


def report(agreement: Agreement, ratings: Sequence[Rating], graded: Sequence[dict[str, bool]]) -> str:
    rows = ["| document | rated | graded | differs on |", "|---|---|---|---|"]
    for rating, grade in zip(ratings, graded, strict=True):
        differs = [f"{key} ({'+' if grade[key] else '-'})" for key in rating.passes if grade[key] != rating.passes[key]]
        rows.append(f"| {rating.name} | {rating.total} | {sum(grade.values())} | {', '.join(differs) or '-'} |")
    documents = agreement.documents
    rows += [
        "",
        "| criterion | agreement |",
        "|---|---|",
        *(f"| {key} | {count}/{documents} |" for key, count in agreement.agreed.items()),
        "",
        f"overall agreement: {sum(agreement.agreed.values())}/{documents * len(agreement.agreed)}",
        f"passes where the rating fails: {agreement.false_passes} of {agreement.rated_fails}"
        f" ({agreement.false_pass_share:.1%})",
        f"Spearman rank correlation of totals: {agreement.spearman:.3f}"
        f" (incidents only: {agreement.spearman_incidents:.3f})",
        f"every blank template below every document rated good ({GOOD}+): {agreement.templates_below_good}"
        f" (lowest good: {agreement.lowest_good}, highest template: {agreement.highest_template})",
    ]
    return "\n".join(rows)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.rubric_agreement", description=__doc__.splitlines()[0])
    parser.add_argument("ratings", type=Path, help="RATINGS.csv")
    parser.add_argument("documents", type=Path, help="the folder holding NAME.md for each rated document")
    parser.add_argument("--strict", action="store_true", help="grade with the strict reading")
    args = parser.parse_args(argv)
    rubric = load_rubric()
    ratings = read_ratings(args.ratings, [rule.key for rule in rubric.CRITERIA])
    try:
        graded = grade_documents(rubric, ratings, args.documents, args.strict)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report(measure(ratings, graded), ratings, graded))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
