"""A Lambda-like Python 3.13 for the built functions, and the functions run in it.

What a python3.13 Lambda function sees on sys.path, and nothing else (bench/lambda_env.py says which is which): its
package (/var/task: the zip sam package uploaded, its compiled wheels swapped for this machine's), the Powertools
layer (/opt/python: `pip install aws-lambda-powertools[all]==<release>` less what the runtime has, as Powertools'
layer_v3/docker/Dockerfile builds it) and the runtime's boto3. The layer and the runtime are installed once, into
.venv-lambda; the interpreter is the base Python 3.13 started with -I -S -B, so not even the venv it came from is
importable.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_VENV = ROOT / ".venv-lambda"
BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
CONTEXT = ROOT / "local" / "lambda_worker.py"
GUARD = ROOT / "scripts" / "loopback_guard.py"
TIMER = ROOT / "bench" / "worker.py"
REQUIREMENTS = ROOT / "requirements-dev.txt"
# What Powertools' layer build removes because the runtime has it (layer_v3/docker/Dockerfile, "Removing
# nonessential files"). UNCONFIRMED: that file as it was when 3.23.0's layer was built; the versions of the extras'
# dependencies pip resolved then (they are resolved today here); and whether the published layer keeps the bytecode
# pip compiles (that Dockerfile deletes it; the layer canary's bytecode_monitor.py expects it).
RUNTIME_PROVIDED = ("boto*", "s3transfer*", "*dateutil*", "urllib3*", "six*", "jmespath*")
TIMEOUT_SECONDS = 300


class NotLambdaLike(Exception):
    """The Lambda-like interpreter cannot be had; str() says why."""


@dataclass(frozen=True)
class Runtime:
    python: Path  # a Python 3.13 outside any venv
    layer: Path  # /opt/python
    sdk: Path  # the runtime's boto3
    boto3: str  # its version

    def paths(self, task: Path) -> list[str]:
        return [str(task), str(self.layer), str(self.sdk)]


def _pin(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}(?:\[[^\]]*\])?==([^\s;#]+)", REQUIREMENTS.read_text(encoding="utf-8"), re.M)
    if match is None:
        raise NotLambdaLike(f"requirements-dev.txt pins no {name}")
    return match.group(1)


def _pip(*args: str) -> None:
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)  # noqa: S603
    if result.returncode != 0:
        raise NotLambdaLike(f"pip install {' '.join(args)} failed:\n{result.stderr.strip()[-2000:]}")


def runtime(release: str, write: Callable[[str], None]) -> Runtime:
    """The layer holding Powertools `release` and the runtime's boto3 (requirements-dev.txt's pin), installed into
    .venv-lambda the first time (or when either changes), with the Python 3.13 to run them."""
    python = Path(getattr(sys, "_base_executable", sys.executable))
    if sys.version_info[:2] != (3, 13):
        raise NotLambdaLike(f"the functions run python3.13; .venv runs {sys.version.split()[0]}: set it up with 3.13")
    boto3 = _pin("boto3")
    wanted = {"layer": f"aws-lambda-powertools[all]=={release}", "runtime": f"boto3=={boto3}", "python": sys.version}
    stamp = LAMBDA_VENV / "stamp.json"
    found = Runtime(python, LAMBDA_VENV / "layer" / "python", LAMBDA_VENV / "runtime", boto3)
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
        return found
    write(
        f"  installing .venv-lambda from PyPI, once (about half a minute): the Powertools layer as Powertools builds it"
        f" ({wanted['layer']}, less what the runtime has) and the runtime's {wanted['runtime']}"
    )
    shutil.rmtree(LAMBDA_VENV, ignore_errors=True)
    _pip("--target", str(found.layer), wanted["layer"])
    for pattern in RUNTIME_PROVIDED:
        for path in found.layer.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    _pip("--target", str(found.sdk), wanted["runtime"])
    stamp.write_text(json.dumps(wanted), encoding="utf-8")
    return found


def _wheel_tags(dist_info: Path) -> list[str]:
    lines = (dist_info / "WHEEL").read_text(encoding="utf-8").splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]


def _metadata(dist_info: Path, field: str) -> str:
    for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{field}:"):
            return line.split(":", 1)[1].strip()
    return "?"


def unpack(package: zipfile.ZipFile, task: Path) -> list[str]:
    """The function's package unpacked into `task`, each compiled wheel swapped for this machine's build of the same
    release (the functions are arm64, this machine may not be); returns what was swapped, and for what."""
    package.extractall(task)
    swapped = []
    for dist_info in sorted(task.glob("*.dist-info")):
        tags = _wheel_tags(dist_info)
        if not tags or all(tag.endswith("-any") for tag in tags):
            continue
        name, version = _metadata(dist_info, "Name"), _metadata(dist_info, "Version")
        host = LAMBDA_VENV / "host" / f"{name}-{version}"
        if not host.is_dir():
            _pip("--no-deps", "--only-binary=:all:", "--target", str(host), f"{name}=={version}")
        record = (dist_info / "RECORD").read_text(encoding="utf-8").splitlines()
        for top in {line.split(",", 1)[0].split("/", 1)[0] for line in record if line}:
            target = task / top
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        shutil.copytree(host, task, dirs_exist_ok=True)
        here = next(iter(_wheel_tags(next(host.glob("*.dist-info")))), "?")
        swapped.append(f"{name} {version} (ships {tags[0].rsplit('-', 1)[-1]}, runs here as {here.rsplit('-', 1)[-1]})")
    return swapped


@dataclass(frozen=True)
class Run:
    """What one container did with a list of events."""

    init_error: str | None
    answers: list[dict[str, Any]]
    reads: list[tuple[str, str]]  # (variable, file of the code that read it)
    log: str  # stdout and stderr, as CloudWatch would get them


def invoke(
    lambda_: Runtime,
    task: Path,
    environ: Mapping[str, str],
    handler: str,
    events: list[Any],
    *,
    timeout_ms: int,
    arn: str,
) -> Run:
    """Start one container of the function (a fresh interpreter), hand it `events` one after the other, stop it."""
    with tempfile.TemporaryDirectory(prefix="rehearsal-invoke-") as scratch:
        request, result = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "handler": handler,
                    "paths": lambda_.paths(task),
                    "events": events,
                    "timeout_ms": timeout_ms,
                    "arn": arn,
                    "context": str(CONTEXT),
                    "guard": str(GUARD),
                }
            ),
            encoding="utf-8",
        )
        process = subprocess.run(  # noqa: S603 - the base Python with our own bootstrap
            [str(lambda_.python), "-I", "-S", "-B", str(BOOTSTRAP), str(request), str(result)],
            env=dict(environ),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        log = process.stdout + process.stderr
        if process.returncode != 0 or not result.is_file():
            return Run(f"the runtime exited with status {process.returncode}", [], [], log)
        answer = json.loads(result.read_text(encoding="utf-8"))
    return Run(answer["init_error"], answer["answers"], [tuple(read) for read in answer["reads"]], log)


def import_seconds(lambda_: Runtime, task: Path, environ: Mapping[str, str], target: str) -> tuple[float, float]:
    """bench/worker.py's init measurement in the Lambda-like interpreter, (wall clock, CPU time): importing the
    Handler's module ("app") or a bare boto3 ("boto3"), in a fresh interpreter."""
    with tempfile.TemporaryDirectory(prefix="rehearsal-init-") as scratch:
        out = Path(scratch) / "init.json"
        paths = {"task": str(task), "layer": str(lambda_.layer), "runtime": str(lambda_.sdk)}
        subprocess.run(  # noqa: S603 - the base Python with the benchmark's own worker
            [str(lambda_.python), "-I", "-S", "-B", str(TIMER), "init", str(out), target],
            env={**environ, "BENCH_LAMBDA_PATH": json.dumps(paths)},
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            check=True,
        )
        measured = json.loads(out.read_text(encoding="utf-8"))
        return float(measured["seconds"]), float(measured["cpu"])
