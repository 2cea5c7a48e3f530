"""Runs inside the rehearsal's Lambda-like interpreter what Lambda's Python runtime runs: the Handler imported once,
then each event handed to it in the same warm container, with every environment variable noted as it is read.

    python3.13 -I -S -B scripts/rehearsal/bootstrap.py REQUEST.json RESULT.json

REQUEST: {"handler", "paths" (sys.path before the standard library: the function's code, the layer, the runtime),
"events", "timeout_ms", "arn", "context" (local/lambda_worker.py, whose LambdaContext is the runtime's), "guard"
(scripts/loopback_guard.py)}. RESULT: {"init_error" (as Lambda words it), "answers" ([{"result"} or {"error"}]),
"reads" ([variable, file that read it])}. The function's logs go to stdout and stderr, as in Lambda. Standard
library only, and nothing imported from this repository but by path: only REQUEST's paths are importable.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
import uuid
from types import ModuleType
from typing import Any

# Where os.getenv and Mapping.get run: a read is charged to the code that called them.
_PASSING_THROUGH = ("<frozen os>", "<frozen _collections_abc>", "/os.py", "/_collections_abc.py")
# What they run to go through every variable: items(), values(), copy().
_EVERY_VARIABLE = ("__iter__", "copy")


class _NotedEnviron(type(os.environ)):  # type: ignore[misc]
    """os.environ that notes each variable read (os.getenv, .get, `in`, []) and the file of the code reading it."""

    reads: set[tuple[str, str]]

    def __getitem__(self, key: str) -> str:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.endswith(_PASSING_THROUGH):
            if frame.f_code.co_name in _EVERY_VARIABLE:
                # Going through all of them (requests looks for proxies so) is no read of this one.
                return super().__getitem__(key)
            frame = frame.f_back
        self.reads.add((key, frame.f_code.co_filename if frame is not None else "?"))
        return super().__getitem__(key)


def _noted_environ() -> _NotedEnviron:
    noted = _NotedEnviron.__new__(_NotedEnviron)
    noted.__dict__.update(os.environ.__dict__)
    noted.reads = set()
    # The same variables, read through the noting class: os.getenv and every `from os import environ` to come see it.
    os.environ = noted  # noqa: B003 - replaced, not cleared
    return noted


def _by_path(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trace_id() -> str:
    """What Lambda sets for each invocation when the function traces (the X-Ray SDK reads it)."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=1"


def _invoke(handler: Any, request: dict[str, Any], context_class: Any) -> list[dict[str, Any]]:
    answers = []
    for event in request["events"]:
        os.environ["_X_AMZN_TRACE_ID"] = _trace_id()
        deadline = int(time.time() * 1000) + int(request["timeout_ms"])
        context = context_class(str(uuid.uuid4()), deadline, request["arn"])
        try:
            # Lambda serialises the result: one that is not JSON is the function's error.
            answers.append({"result": json.loads(json.dumps(handler(event, context)))})
        except Exception as error:
            traceback.print_exc()
            answers.append({"error": f"{type(error).__name__}: {error}"})
        sys.stdout.flush()
    return answers


def main(request_file: str, result_file: str) -> int:
    with open(request_file, encoding="utf-8") as file:
        request = json.load(file)
    noted = _noted_environ()
    _by_path("loopback_guard", request["guard"]).install()
    context_class = _by_path("lambda_worker", request["context"]).LambdaContext
    sys.path[:0] = request["paths"]
    os.chdir(request["paths"][0])
    module_name, _, function_name = request["handler"].rpartition(".")
    result: dict[str, Any] = {"init_error": None, "answers": []}
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        traceback.print_exc()
        result["init_error"] = f"Runtime.ImportModuleError: Unable to import module '{module_name}': {error}"
    else:
        handler = getattr(module, function_name, None)
        if not callable(handler):
            result["init_error"] = (
                f"Runtime.HandlerNotFound: Handler '{function_name}' missing on module '{module_name}'"
            )
        else:
            result["answers"] = _invoke(handler, request, context_class)
    result["reads"] = sorted(noted.reads)
    with open(result_file, "w", encoding="utf-8") as file:
        json.dump(result, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
