"""One warm Lambda container for the local stack: imports the function once, then runs one invocation at a time.

local/runtime.py starts it as `python local/lambda_worker.py FD` with exactly the function's environment and a
socket on FD. Like Lambda's Python bootstrap it puts LAMBDA_TASK_ROOT first on sys.path, imports `_HANDLER`
once (the cold start), and hands each event to the handler with a context whose deadline is the function's
timeout. Invocations arrive one at a time: Lambda never runs two in one container, and Powertools' resolver
keeps per-request state that would be shared if it did.

Frames on the socket are a 4-byte big-endian length and UTF-8 JSON. The parent sends
{"event", "request_id", "deadline_ms", "invoked_function_arn"}; the worker answers {"result": ...} or
{"error": {"errorType", "errorMessage"}}. Before the first invocation it sends {"ready": true}, or
{"init_error": ...} and exits. The standard library only, so that the function's imports are the only ones.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import struct
import sys
import time
import traceback
from typing import Any

_LENGTH = struct.Struct(">I")


def send_frame(sock: socket.socket, message: Any) -> None:
    send_json(sock, json.dumps(message))


def send_json(sock: socket.socket, text: str) -> None:
    data = text.encode("utf-8")
    sock.sendall(_LENGTH.pack(len(data)) + data)


def recv_frame(sock: socket.socket) -> Any | None:
    """The next message, or None when the other side closed the socket."""
    header = _recv_exactly(sock, _LENGTH.size)
    if header is None:
        return None
    data = _recv_exactly(sock, _LENGTH.unpack(header)[0])
    if data is None:
        return None
    return json.loads(data)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class LambdaContext:
    """What Lambda's Python runtime (awslambdaric) passes as `context`; values from the same environment variables."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        # A string, as in the real runtime (it reads the environment variable as is).
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.client_context = None
        self.identity = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


def main(argv: list[str]) -> int:
    # The stack stops workers with SIGTERM; make sure an inherited signal mask cannot block it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    sock = socket.socket(fileno=int(argv[1]))
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    # Like Lambda: the function's code first; this script's own folder is not the function's business.
    sys.path[0] = task_root
    os.chdir(task_root)
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:
        traceback.print_exc()
        send_frame(sock, {"init_error": f"{type(error).__name__}: {error}"})
        return 1
    send_frame(sock, {"ready": True})

    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    while (invocation := recv_frame(sock)) is not None:
        request_id = invocation["request_id"]
        context = LambdaContext(request_id, invocation["deadline_ms"], invocation["invoked_function_arn"])
        started = time.monotonic()
        # The same START/END/REPORT lines Lambda writes around each invocation, so the log reads the same.
        print(f"START RequestId: {request_id} Version: {version}", flush=True)
        try:
            # Lambda serialises the result too: a result that is not JSON is the function's error.
            answer = json.dumps({"result": handler(invocation["event"], context)})
        except Exception as error:
            traceback.print_exc()
            answer = json.dumps({"error": {"errorType": type(error).__name__, "errorMessage": str(error)}})
        elapsed_ms = (time.monotonic() - started) * 1000
        print(f"END RequestId: {request_id}", flush=True)
        print(f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms", flush=True)
        sys.stderr.flush()
        send_json(sock, answer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
