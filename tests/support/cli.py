"""Running a checker script's `main` in this process, and the files it reads, for the tests of scripts/check-*."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest


def run_main(
    main: Callable[[Sequence[str]], int], capsys: pytest.CaptureFixture[str], *argv: str | Path
) -> tuple[int, str, str]:
    """`main(argv)`'s exit status, and what it printed to stdout and stderr."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path: Path, name: str, content: Any) -> Path:
    """A file of `content`: bytes as they are, a string as UTF-8, anything else as JSON."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path
