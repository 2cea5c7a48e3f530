"""bandit finds nothing in the code that ships or runs beside it (handler/, local/, scripts/, fuzz/).

Checks skipped in pyproject.toml's [tool.bandit] are enforced by ruff's flake8-bandit rules, whose per-line
exceptions carry their reasons. pip-audit is not run: from this network PyPI's per-release JSON API answers 404
and neither OSV nor ecosyste.ms resolves, so it would audit nothing and still exit 0 (docs/reliability.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bandit_reports_no_issue() -> None:
    bandit = Path(sys.executable).parent / "bandit"

    result = subprocess.run(  # noqa: S603 - the venv's own bandit
        [str(bandit), "-q", "-r", "handler", "local", "scripts", "fuzz", "-c", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, f"bandit rc={result.returncode}\n{result.stdout}{result.stderr}"
