"""A copy of the repository as a fresh clone has it, for running the README's commands as a newcomer would.

What git tracks, and what it would track once committed (untracked files that .gitignore does not exclude): no
`.local-stacks/`, no `.aws-sam/`, no caches. One thing is not fresh: `.venv`. Building it takes about a minute
(pip, from PyPI), and `scripts/test`, which CI runs on a fresh clone, has just built it with the same
`ensure_venv` every script calls; so the copy gets a `.venv` of its own whose packages are the checkout's (its
`lib/` and interpreter are links, its `pyvenv.cfg` and stamp are copies). `ensure_venv` in the copy sees the same
stamp and reuses it; were the stamp stale, it would rebuild the copy's `.venv` and never touch the checkout's.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"


def _files() -> list[str]:
    listed = subprocess.run(  # noqa: S603
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in listed.decode().split("\0") if name]


def _link_venv(into: Path) -> None:
    venv = into / ".venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("pyvenv.cfg", ".requirements.sha256"):
        shutil.copy2(VENV / name, venv / name)
    # Python finds the venv by the pyvenv.cfg next to the interpreter's path as invoked, links included.
    for name in ("python", "python3"):
        (venv / "bin" / name).symlink_to(VENV / "bin" / name)
    for name in ("lib", "lib64", "include"):
        if (VENV / name).exists():
            (venv / name).symlink_to((VENV / name).resolve(), target_is_directory=True)


@functools.cache
def fresh_clone() -> Path:
    """The copy (made once per test run, removed at exit)."""
    into = Path(tempfile.mkdtemp(prefix="fresh-clone-"))
    atexit.register(shutil.rmtree, into, ignore_errors=True)
    for name in _files():
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree: a clone of the next commit will not have it either
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    _link_venv(into)
    return into
