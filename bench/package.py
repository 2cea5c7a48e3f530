"""Sizes of what Lambda loads from disk: the function's package (what `scripts/build` ships) and the layer."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.lambda_env import LAYER_DISTRIBUTIONS, ROOT, RUNTIME_DISTRIBUTIONS, _closure, _key

BUILT_FUNCTION = ROOT / ".aws-sam" / "build" / "PagerDutyPostmortemFunction"


@dataclass(frozen=True)
class Size:
    zipped: int
    unzipped: int
    files: int


def measure(folder: Path, bytecode: bool = True) -> Size:
    """Zip `folder` the way `sam package` does (deflate, every file, links followed) and count both sizes.

    With bytecode=False, `__pycache__` folders are left out (what plain `sam build` ships).
    """
    buffer = io.BytesIO()
    unzipped = files = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for root, folders, names in os.walk(folder, followlinks=True):
            if not bytecode:
                folders[:] = [name for name in folders if name != "__pycache__"]
            for name in sorted(names):
                path = Path(root) / name
                archive.write(path, path.relative_to(folder))
                unzipped += path.stat().st_size
                files += 1
    return Size(zipped=len(buffer.getvalue()), unzipped=unzipped, files=files)


def build_function() -> Path:
    """Run scripts/build (sam build, Python 3.13, arm64) and return the function's build folder."""
    subprocess.run([str(ROOT / "scripts" / "build")], cwd=ROOT, check=True, stdout=sys.stderr)  # noqa: S603
    return BUILT_FUNCTION


def layer_requirements() -> list[str]:
    """Powertools and the X-Ray SDK with what they need, minus what the runtime already has (boto3's tree)."""
    runtime = {_key(dist) for dist in _closure(RUNTIME_DISTRIBUTIONS)}
    return sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in _closure(LAYER_DISTRIBUTIONS)
        if _key(dist) not in runtime or dist.metadata["Name"].lower() == "jmespath"
    )


def install_layer(target: Path) -> Path:
    """pip-install the layer's distributions for Lambda (arm64, CPython 3.13) into `target`."""
    subprocess.run(  # noqa: S603 - a fixed argv of our own
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_aarch64",
            "--implementation",
            "cp",
            "--python-version",
            "3.13",
            "--target",
            str(target),
            *layer_requirements(),
        ],
        check=True,
        stdout=sys.stderr,
    )
    return target


def layer_size() -> Size:
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as folder:
        return measure(install_layer(Path(folder)))


def version(name: str) -> str:
    return metadata.version(name)
