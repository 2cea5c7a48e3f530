"""The local stack's Lambda service: one invocation per container at a time; timeouts and crashes replace it.

A tiny handler module stands in for the function here, so the behaviour of the containers themselves is what
is tested, in well under a second per container start.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.runtime import Invocation, LambdaService, ProcessContainer, RuntimeStartError

pytestmark = pytest.mark.slow

HANDLER = """
import os, time

def handler(event, context):
    if event.get("crash"):
        os._exit(3)
    if event.get("fail"):
        raise ValueError("the handler raised")
    started = time.time()
    time.sleep(event.get("sleep", 0))
    return {
        "pid": os.getpid(),
        "started": started,
        "ended": time.time(),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "table": os.environ.get("TABLE_NAME"),
        "path0": __import__("sys").path[0],
    }
"""


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    (tmp_path / "fn.py").write_text(HANDLER, encoding="utf-8")
    return tmp_path


def _env(task_root: Path, handler: str = "fn.handler") -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": handler,
        "AWS_LAMBDA_FUNCTION_NAME": "Fn",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "TABLE_NAME": "ledger",
    }


@pytest.fixture
def service(task_root: Path) -> Iterator[LambdaService]:
    def container(n: int) -> ProcessContainer:
        return ProcessContainer(f"worker {n}", _env(task_root), task_root, "arn:aws:lambda:::function:Fn", None)

    running = LambdaService(1, container).start()
    try:
        yield running
    finally:
        running.stop()


def _invoke(service: LambdaService, event: dict, timeout: float = 5.0) -> Invocation:
    return service.invoke(event, request_id="req-1", timeout_seconds=timeout, wait_seconds=10)


def test_the_handler_gets_the_event_a_lambda_context_and_only_the_functions_environment(
    service: LambdaService, task_root: Path
) -> None:
    result = _invoke(service, {}).result

    assert result["request_id"] == "req-1"
    assert (result["function_name"], result["memory"], result["table"]) == ("Fn", "256", "ledger")
    assert 4000 < result["remaining_ms"] <= 5000
    assert result["path0"] == str(task_root)


def test_a_container_runs_one_invocation_at_a_time(service: LambdaService) -> None:
    results: list[dict] = []

    def call() -> None:
        results.append(_invoke(service, {"sleep": 0.3}).result)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    first, second = sorted(results, key=lambda r: r["started"])
    assert first["pid"] == second["pid"]
    assert second["started"] >= first["ended"]


def test_a_handler_exception_is_a_function_error_and_the_container_stays_warm(service: LambdaService) -> None:
    pid = _invoke(service, {}).result["pid"]

    failed = _invoke(service, {"fail": True})

    assert failed.error == "ValueError: the handler raised"
    assert _invoke(service, {}).result["pid"] == pid


def test_a_container_whose_process_dies_is_replaced(service: LambdaService) -> None:
    pid = _invoke(service, {}).result["pid"]

    crashed = _invoke(service, {"crash": True})

    assert crashed.error is not None
    assert _invoke(service, {}).result["pid"] != pid


def test_an_invocation_past_its_timeout_is_cut_off_and_the_container_replaced(service: LambdaService) -> None:
    pid = _invoke(service, {}).result["pid"]
    started = time.monotonic()

    timed_out = _invoke(service, {"sleep": 30}, timeout=0.5)

    assert timed_out.error == "Task timed out after 0.50 seconds"
    assert time.monotonic() - started < 5
    assert _invoke(service, {}).result["pid"] != pid


def test_no_free_container_within_the_wait_is_reported_as_throttled(service: LambdaService) -> None:
    busy = threading.Thread(target=_invoke, args=(service, {"sleep": 1}))
    busy.start()
    time.sleep(0.2)

    waited = service.invoke({}, request_id="r", timeout_seconds=5, wait_seconds=0.1)
    busy.join(10)

    assert waited.throttled


def test_a_handler_that_cannot_be_imported_fails_the_start(task_root: Path) -> None:
    container = ProcessContainer("worker 1", _env(task_root, "missing.handler"), task_root, "arn", None)

    with pytest.raises(RuntimeStartError, match="ModuleNotFoundError"):
        container.start()


def test_stop_ends_every_worker_process(task_root: Path) -> None:
    service = LambdaService(
        2, lambda n: ProcessContainer(f"worker {n}", _env(task_root), task_root, "arn", None)
    ).start()
    pids = [container._process.pid for container in service._all]  # noqa: SLF001 - what stop() must end
    assert len(pids) == 2

    service.stop()

    for pid in pids:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"worker {pid} still runs after stop()")
