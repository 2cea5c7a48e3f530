"""The local stack's Lambda service: warm containers (worker processes), each running one invocation at a time.

Lambda never runs two invocations in one container; it scales by adding containers. Here a fixed number of
workers stand for the warm containers, and an invocation waits for a free one. A container whose invocation
timed out or whose process died is replaced, as Lambda replaces a sandbox after a timeout or a crash.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from local.lambda_worker import recv_frame, send_frame
from local.processes import stop_process

WORKER_SCRIPT = Path(__file__).resolve().with_name("lambda_worker.py")
# Lambda gives the init phase 10 s; two cores importing boto3 and Powertools in several workers at once need
# more than a real sandbox does, so be generous rather than flaky.
INIT_TIMEOUT_SECONDS = 60.0
# Extra time granted over the function's timeout before its container is declared stuck.
TIMEOUT_GRACE_SECONDS = 1.0


class RuntimeStartError(RuntimeError):
    """A container could not start (the function failed to import, or its process died); one line for a person."""


@dataclass(frozen=True)
class Invocation:
    """What the Lambda service tells API Gateway: the function's result, or that there is none."""

    result: Any = None
    error: str | None = None  # the function raised, crashed or timed out
    throttled: bool = False  # no container became free in time

    @property
    def ok(self) -> bool:
        return self.error is None and not self.throttled


class Container(Protocol):
    """One warm execution environment."""

    broken: bool

    def start(self) -> None: ...

    def invoke(self, event: dict[str, Any], request_id: str, timeout_seconds: float) -> Invocation: ...

    def stop(self) -> None: ...


class ProcessContainer:
    """A worker process (local/lambda_worker.py) with exactly the function's environment."""

    def __init__(
        self, name: str, env: Mapping[str, str], code_dir: Path, invoked_function_arn: str, log: IO[Any] | int | None
    ) -> None:
        self.name = name
        self.broken = False
        self._env = dict(env)
        self._code_dir = code_dir
        self._arn = invoked_function_arn
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def start(self) -> None:
        parent, child = socket.socketpair()
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own worker script, with our own interpreter
                [sys.executable, str(WORKER_SCRIPT), str(child.fileno())],
                env=self._env,
                cwd=self._code_dir,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                pass_fds=(child.fileno(),),
                # Its own session: the terminal's Ctrl-C goes to the stack, which stops its workers itself.
                start_new_session=True,
            )
        finally:
            child.close()
        self._sock = parent
        parent.settimeout(INIT_TIMEOUT_SECONDS)
        try:
            hello = recv_frame(parent)
        except (OSError, ValueError):
            hello = None
        if not isinstance(hello, dict) or not hello.get("ready"):
            self.stop()
            detail = hello.get("init_error") if isinstance(hello, dict) else None
            raise RuntimeStartError(
                f"the function failed to start in {self.name}: {detail or 'the worker process exited'}"
            )

    def invoke(self, event: dict[str, Any], request_id: str, timeout_seconds: float) -> Invocation:
        sock = self._sock
        if sock is None or self.broken:
            return Invocation(error="the container is gone")
        deadline_ms = int(time.time() * 1000 + timeout_seconds * 1000)
        message = {
            "event": event,
            "request_id": request_id,
            "deadline_ms": deadline_ms,
            "invoked_function_arn": self._arn,
        }
        try:
            sock.settimeout(timeout_seconds + TIMEOUT_GRACE_SECONDS)
            send_frame(sock, message)
            answer = recv_frame(sock)
        except TimeoutError:
            self._discard()
            return Invocation(error=f"Task timed out after {timeout_seconds:.2f} seconds")
        except (OSError, ValueError):
            answer = None
        if not isinstance(answer, dict):
            self._discard()
            return Invocation(error="Runtime exited without providing a reason")
        if "error" in answer:
            # Like Lambda's Python runtime, a raised exception leaves the container warm.
            error = answer["error"]
            return Invocation(error=f"{error.get('errorType')}: {error.get('errorMessage')}")
        return Invocation(result=answer.get("result"))

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        process, self._process = self._process, None
        if process is None:
            return
        stop_process(process)

    def _discard(self) -> None:
        self.broken = True
        self.stop()


def find_rie(root: Path) -> Path | None:
    """The Runtime Interface Emulator shipped inside the aws-sam-cli wheel (in .venv-sam), for this machine."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    if arch is None:
        return None
    found = sorted(root.glob(f".venv-sam/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-{arch}"))
    return found[-1] if found else None


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class RieContainer:
    """The real Lambda runtime stack without Docker: aws-lambda-rie running awslambdaric, which imports the handler.

    The emulator enforces the timeout and hands the handler a real LambdaContext; we only POST the event to its
    invoke endpoint. It initialises the function on the first invocation, as an on-demand sandbox does.
    """

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        code_dir: Path,
        rie: Path,
        handler: str,
        timeout_seconds: int,
        log: IO[Any] | int | None,
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.broken = False
        self._env = {**env, "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_seconds)}
        self._code_dir = code_dir
        self._rie = rie
        self._handler = handler
        self._log = log
        self._host = host
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._port = _free_port(self._host)
        command = [
            str(self._rie),
            # Always both addresses: by default the emulator listens on 0.0.0.0:8080.
            "--runtime-interface-emulator-address",
            f"{self._host}:{self._port}",
            "--runtime-api-address",
            f"{self._host}:{_free_port(self._host)}",
            sys.executable,
            "-m",
            "awslambdaric",
            self._handler,
        ]
        self._process = subprocess.Popen(  # noqa: S603 - the emulator from the SAM CLI wheel, our interpreter
            command,
            env=self._env,
            cwd=self._code_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            # Its own process group, so that stop() ends the emulator and the runtime it started together.
            start_new_session=True,
        )
        deadline = time.monotonic() + INIT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection((self._host, self._port), timeout=0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeStartError(f"the Lambda Runtime Interface Emulator did not start in {self.name}")

    def invoke(self, event: dict[str, Any], request_id: str, timeout_seconds: float) -> Invocation:
        if self._process is None or self.broken:
            return Invocation(error="the container is gone")
        connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout_seconds + 5)
        try:
            connection.request(
                "POST",
                "/2015-03-31/functions/function/invocations",
                body=json.dumps(event).encode(),
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            payload = response.read()
        except TimeoutError:
            self._discard()
            return Invocation(error=f"Task timed out after {timeout_seconds:.2f} seconds")
        except (OSError, http.client.HTTPException) as error:
            self._discard()
            return Invocation(error=f"the emulator failed: {error}")
        finally:
            connection.close()
        try:
            result = json.loads(payload) if payload else None
        except ValueError:
            return Invocation(error="the function's answer is not JSON")
        # The emulator answers 200 either way; a function error is a document with errorType and errorMessage.
        if response.status != 200 or (isinstance(result, dict) and {"errorType", "errorMessage"} <= result.keys()):
            detail = result.get("errorMessage") if isinstance(result, dict) else payload[:200]
            return Invocation(error=f"function error: {detail}")
        return Invocation(result=result)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _discard(self) -> None:
        self.broken = True
        self.stop()


class LambdaService:
    """A fixed pool of warm containers for one function; `invoke` runs an event on a free one."""

    def __init__(self, size: int, make_container: Callable[[int], Container]) -> None:
        if size < 1:
            raise ValueError("at least one worker is needed")
        self._size = size
        self._make = make_container
        # Last in, first out: like Lambda, a delivery goes to the warmest container, so only bursts pay cold starts.
        self._idle: queue.LifoQueue[Container] = queue.LifoQueue()
        self._all: list[Container] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._made = 0

    def start(self) -> LambdaService:
        """Start every container at once (cold starts overlap); if one fails, stop them all and raise."""
        containers = [self._new() for _ in range(self._size)]
        errors: list[BaseException] = []

        def boot(container: Container) -> None:
            try:
                container.start()
            except BaseException as error:  # reported below, after every boot has finished
                errors.append(error)

        threads = [threading.Thread(target=boot, args=(c,), daemon=True) for c in containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.stop()
            raise errors[0]
        for container in containers:
            self._idle.put(container)
        return self

    def invoke(
        self, event: dict[str, Any], *, request_id: str, timeout_seconds: float, wait_seconds: float
    ) -> Invocation:
        """Run `event` on the next free container, waiting at most `wait_seconds` for one."""
        try:
            container = self._idle.get(timeout=wait_seconds)
        except queue.Empty:
            return Invocation(throttled=True)
        try:
            return container.invoke(event, request_id, timeout_seconds)
        finally:
            if container.broken:
                threading.Thread(target=self._replace, args=(container,), daemon=True).start()
            else:
                self._idle.put(container)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            containers, self._all = self._all, []
        for container in containers:
            container.stop()

    def _new(self) -> Container:
        with self._lock:
            self._made += 1
            container = self._make(self._made)
            self._all.append(container)
            return container

    def _replace(self, broken: Container) -> None:
        with self._lock:
            if self._stopping:
                return
            with contextlib.suppress(ValueError):
                self._all.remove(broken)
        container = self._new()
        try:
            container.start()
        except RuntimeStartError:
            # Nothing to put back: the next invocations wait for the remaining containers.
            return
        with self._lock:
            if self._stopping:
                container.stop()
                return
        self._idle.put(container)


def start_together(*services: LambdaService) -> None:
    """Start several functions' services at once, so that their cold starts overlap. When some fail, every
    service has finished starting or failing first, and the error of the first one in argument order is raised."""
    errors: dict[int, BaseException] = {}

    def boot(index: int, service: LambdaService) -> None:
        try:
            service.start()
        except BaseException as error:  # raised below, once every service is done
            errors[index] = error

    threads = [threading.Thread(target=boot, args=(i, s), daemon=True) for i, s in enumerate(services)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[min(errors)]
