"""The local stack's AWS: a moto server on loopback, in a process of its own, serving one API call at a time.

Why one call at a time: moto's backend does not make a DynamoDB conditional write atomic when requests run
concurrently (threads interleave between the condition check and the write), so two deliveries could both
claim one incident. Real DynamoDB applies each call atomically; a single-threaded WSGI server gives the same
guarantee, at the cost of queueing calls (each takes a few milliseconds).

Why a process of its own: moto keeps its state per process, so two stacks (or a test's `mock_aws`) in one
process would share and reset each other's tables. A child process also keeps moto's CPU time off the front
end's GIL. The child exits when its stdin closes, so it cannot outlive a parent that was killed.

The handler reaches it only through the standard AWS_ENDPOINT_URL setting.

    python -m local.aws --port 5000      # the server alone (the local stack starts it for you)
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from local.processes import stop_process

REGION = "us-east-1"
# Fake credentials: moto accepts anything, and nothing signed with these can reach a real account.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # noqa: S105 - a placeholder, see above
START_TIMEOUT_SECONDS = 30.0


class AwsError(RuntimeError):
    """The local AWS could not start; the message is one line meant for a person."""


def serve(host: str, port: int, ready: IO[str] | None = None) -> None:
    """Serve moto on host:port (0 picks a free port) until killed, handling one request at a time."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import BaseWSGIServer

    class QuietHandler(MotoRequestHandler):
        # One access-log line per AWS call would bury everything else.
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    app = DomainDispatcherApplication(create_backend_app)
    try:
        # Bound here rather than by werkzeug, which prints its own advice and exits when the port is taken.
        listener = socket.create_server((host, port), backlog=128)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            _report(ready, f"ERROR {host}:{port} is already in use")
        else:
            _report(ready, f"ERROR cannot listen on {host}:{port}: {error.strerror or error}")
        raise SystemExit(1) from None
    # BaseWSGIServer is werkzeug's single-threaded server (what make_server(threaded=False) returns):
    # it answers a request completely before accepting the next, so every AWS call is atomic.
    with listener:
        server = BaseWSGIServer(host, port, app, handler=QuietHandler, fd=listener.fileno())
    if server.multithread or server.multiprocess:  # werkzeug's contract; checked because the guarantee rests on it
        _report(ready, "ERROR moto must be served by a single-threaded server")
        raise SystemExit(1)
    _report(ready, f"READY {server.server_address[1]}")
    server.serve_forever(poll_interval=0.05)


def _report(stream: IO[str] | None, line: str) -> None:
    if stream is not None:
        stream.write(line + "\n")
        stream.flush()


def _exit_when_parent_goes() -> None:
    # The parent holds our stdin open; EOF means it stopped us or died.
    sys.stdin.buffer.read()
    os._exit(0)


class LocalAws:
    """Starts and stops the moto child process, and talks to it as a boto3 user would."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, log: IO[Any] | int | None = None) -> None:
        self.host, self.port = host, port
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalAws:
        read_fd, write_fd = os.pipe()
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own module, with our own interpreter
                [
                    sys.executable,
                    "-m",
                    "local.aws",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--ready-fd",
                    str(write_fd),
                    "--exit-with-stdin",
                ],
                cwd=Path(__file__).resolve().parents[1],
                env=_server_env(),
                stdin=subprocess.PIPE,
                stdout=self._log,
                stderr=self._log,
                pass_fds=(write_fd,),
                # Its own session: the terminal's Ctrl-C goes to the stack, which stops this process itself.
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "r", encoding="utf-8") as ready:
            line = _readline(ready, START_TIMEOUT_SECONDS)
        if line.startswith("READY "):
            self.port = int(line.split()[1])
            return self
        self.stop()
        if line.startswith("ERROR "):
            raise AwsError(line.removeprefix("ERROR "))
        raise AwsError("the local AWS (moto) did not start; is requirements-dev.txt installed? (scripts/local does it)")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        stop_process(process)

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on this moto, with the fake credentials."""
        import boto3
        import botocore.session
        from botocore.config import Config

        # No profile: an AWS_PROFILE in the user's shell (even one that does not exist here) must not matter.
        core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        return boto3.session.Session(botocore_session=core).client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )

    def create_ledger_table(self, table_name: str) -> None:
        from local.template import create_ledger_table

        create_ledger_table(self.client("dynamodb"), table_name)

    def put_parameters(self, parameters: dict[str, tuple[str, str]]) -> None:
        """Seed SSM: {name: (value, "String" | "SecureString")}."""
        ssm = self.client("ssm")
        for name, (value, kind) in parameters.items():
            ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)

    def scan(self, table_name: str) -> list[dict[str, Any]]:
        """Every item of the table as plain Python values (numbers as int, or float when fractional)."""
        from boto3.dynamodb.types import TypeDeserializer

        deserialize = TypeDeserializer().deserialize
        dynamodb = self.client("dynamodb")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table_name}
        while True:
            page = dynamodb.scan(**kwargs)
            items.extend({key: _plain(deserialize(value)) for key, value in item.items()} for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _plain(value: Any) -> Any:
    """boto3 gives numbers as Decimal; callers want the int or float the handler wrote."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set | frozenset):
        return [_plain(item) for item in value]
    return value


def _server_env() -> dict[str, str]:
    """The user's environment without AWS settings: moto itself uses botocore, and a profile from the shell that
    does not exist here (or points at a real account) must not reach it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY, AWS_DEFAULT_REGION=REGION)
    return env


def _readline(stream: IO[str], timeout: float) -> str:
    """One line from `stream`, or "" if none came within `timeout` (or the writer closed it)."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].strip() if result else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.aws", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--exit-with-stdin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.exit_with_stdin:
        threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    ready = os.fdopen(args.ready_fd, "w", encoding="utf-8") if args.ready_fd is not None else None
    try:
        if ready is None:
            print(f"moto serving on http://{args.host}:{args.port}, one call at a time; Ctrl-C stops", flush=True)
        serve(args.host, args.port, ready)
    except ModuleNotFoundError as error:
        _report(ready, f"ERROR missing dependency {error.name!r}: install requirements-dev.txt (scripts/local does)")
        if ready is None:
            print(f"error: missing dependency {error.name!r}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(OSError):
            if ready is not None:
                ready.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
