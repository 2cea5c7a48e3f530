"""Compile a built function's Python files to bytecode, so that Lambda does not compile them at every cold start.

    python3.13 scripts/bytecode.py .aws-sam/build

`sam build` ships sources only (its Python builder drops `__pycache__`), and `/var/task` is read-only, so
without this every cold start compiles app.py, bridge/ and the bundled requests, urllib3, idna and
charset_normalizer before the first request (50-100 ms on the benchmark machine: docs/performance.md).
Run it with the runtime's Python (the bytecode is version-specific; scripts/build does).

The bytecode is checked against a hash of its source, not the file's time stamp: zip archives and Lambda's
unpacking do not keep time stamps faithfully, and a file edited afterwards (in the console, say) is compiled
afresh instead of running stale bytecode.
"""

from __future__ import annotations

import compileall
import py_compile
import sys
from pathlib import Path


def compile_tree(folder: Path) -> bool:
    """Write `__pycache__/*.cpython-3XX.pyc` next to every .py file under `folder`; False if one failed."""
    return bool(
        compileall.compile_dir(
            str(folder),
            quiet=1,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
    )


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    return 0 if all(compile_tree(Path(folder)) for folder in argv) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
