"""What a Lambda python3.13 sandbox looks like to the handler, rebuilt locally for fresh benchmark interpreters
(and its variables, sandbox_environ, for the rehearsal's run of the built functions: scripts/rehearsal/).

Lambda puts three things on `sys.path`: the function's package (`/var/task`: handler/ plus what
`handler/requirements.txt` pulls in), the layers (`/opt/python`: Powertools and the X-Ray SDK) and the
runtime's own boto3. The test venv holds the same pinned versions but also pytest, moto and friends, and the
X-Ray SDK patches every supported library it can import; so the benchmark's interpreters start with `-S`
(no site-packages) and see only folders holding what Lambda would have.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from local.template import function_environment
from scripts.bytecode import compile_tree

ROOT = Path(__file__).resolve().parents[1]
HANDLER = ROOT / "handler"

# What Lambda provides besides the function's own package: the runtime's SDK and the Powertools layer.
RUNTIME_DISTRIBUTIONS = ("boto3",)
LAYER_DISTRIBUTIONS = ("aws-lambda-powertools", "aws-xray-sdk")


def _requirements_file(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line).name for line in lines if line and not line.startswith("-")]


def _key(dist: metadata.Distribution) -> str:
    return dist.metadata["Name"].lower().replace("_", "-")


def _closure(roots: Iterable[str]) -> list[metadata.Distribution]:
    """The distributions `roots` need at run time (no extras), as installed in this interpreter."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        dist = metadata.distribution(name)
        key = _key(dist)
        if key in seen:
            continue
        seen[key] = dist
        for spec in dist.requires or ():
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(seen.values())


def _top_level(dist: metadata.Distribution) -> set[str]:
    """The names a distribution installs at the top of site-packages (packages and modules)."""
    names = set()
    for file in dist.files or ():
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith((".dist-info", ".data")) or first.endswith(".pth"):
            continue
        names.add(first)
    return names


def _copy_sources(dist: metadata.Distribution, target: Path) -> None:
    base = Path(str(dist.locate_file("")))
    for name in _top_level(dist):
        source = base / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            shutil.copy2(source, target / name)


def _link(dist: metadata.Distribution, target: Path) -> None:
    base = Path(str(dist.locate_file("")))
    for name in _top_level(dist):
        if not (target / name).exists():
            (target / name).symlink_to(base / name)
        if name.endswith(".py"):
            # A single-file module (typing_extensions, six) keeps its bytecode in site-packages/__pycache__, and
            # Python looks for it next to the link: without this link it would be compiled at every import, which
            # neither the layer (pip compiles what it installs) nor the runtime does.
            compiled = Path(importlib.util.cache_from_source(str(base / name)))
            linked = target / "__pycache__" / compiled.name
            if compiled.is_file() and not linked.exists():
                linked.parent.mkdir(exist_ok=True)
                linked.symlink_to(compiled)


def lambda_path(scratch: Path, handler: Path = HANDLER) -> dict[str, str]:
    """The folders a Lambda-like interpreter puts on `sys.path`, built under `scratch`.

    - "task" (`/var/task`): what `scripts/build` ships: `handler` and its bundled requirements, compiled to
      bytecode by scripts/bytecode.py as scripts/build does after `sam build`;
    - "task_source": the same as plain `sam build` ships it, sources only: `/var/task` is read-only, so Lambda
      compiles these at every cold start (the benchmark runs with `-B` so that nothing is cached either);
    - "layer" (`/opt/python`): Powertools and the X-Ray SDK, linked from the venv with their bytecode;
    - "runtime": boto3 and its dependencies, linked likewise (its urllib3 is shadowed by the task's copy).
    """
    folders = {name: scratch / name for name in ("task_source", "task", "layer", "runtime")}
    for folder in folders.values():
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    source = folders["task_source"]
    shutil.copytree(handler, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    for dist in _closure(_requirements_file(handler / "requirements.txt")):
        _copy_sources(dist, source)
    shutil.copytree(source, folders["task"], dirs_exist_ok=True)
    if not compile_tree(folders["task"]):
        raise RuntimeError("scripts/bytecode.py could not compile the function's package")
    # The runtime has its own copy of everything boto3 needs; the layer leaves out what the runtime has.
    provided = set()
    for dist in _closure(RUNTIME_DISTRIBUTIONS):
        _link(dist, folders["runtime"])
        provided.add(_key(dist))
    for dist in _closure(LAYER_DISTRIBUTIONS):
        if _key(dist) not in provided:
            _link(dist, folders["layer"])
    return {name: str(folder) for name, folder in folders.items()}


def sandbox_environ(
    task_root: str = str(HANDLER),
    *,
    function: str = "pagerduty-postmortem-PagerDutyPostmortemFunction",
    handler: str = "app.lambda_handler",
    memory_mb: int = 256,
    log_group: str = "/aws/lambda/pagerduty-postmortem/PagerDutyPostmortemFunction",
    region: str = "us-east-1",
) -> dict[str, str]:
    """The variables a python3.13 Lambda sandbox sets itself before init, for the function described.

    `LAMBDA_TASK_ROOT` is what makes Powertools' Tracer (and the X-Ray SDK) believe they run in Lambda: the
    Tracer is enabled, patches the libraries it supports at import, and the SDK switches to its Lambda context.
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONHASHSEED": "0",
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[$LATEST]bench",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        # Lambda hands the function role's credentials over as variables; these reach nothing.
        "AWS_ACCESS_KEY_ID": "benchmark",
        "AWS_SECRET_ACCESS_KEY": "benchmark",  # noqa: S105 - not a secret
        "AWS_SESSION_TOKEN": "benchmark",  # noqa: S105 - not a secret
        # Read by the X-Ray SDK only: with Tracing Active (the template's default) Lambda runs the daemon there.
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1",
        "_AWS_XRAY_DAEMON_PORT": "2000",
    }


def lambda_environ(extra: dict[str, str] | None = None, parameters: dict[str, str] | None = None) -> dict[str, str]:
    """The sandbox's variables plus the template's for this function as deployed with `parameters` (template
    parameters, the others at their default; e.g. {"Tracing": "PassThrough"}).

    With the `Tracing` parameter at PassThrough the template sets TRACING=PassThrough, and the function makes no
    Tracer: the X-Ray SDK is never imported, whatever the AWS_XRAY_* variables say.
    """
    environ = {
        **sandbox_environ(),
        # template.yaml's Environment.Variables with their defaults, read from the template so they cannot drift.
        **function_environment("pagerduty-postmortem-LedgerTable", parameters=parameters),
    }
    environ.update(extra or {})
    return environ


def python_command() -> list[str]:
    """This interpreter without site-packages: only the paths `lambda_path` gives are importable."""
    return [sys.executable, "-S", "-B"]
