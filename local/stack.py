"""The whole bridge on one machine, with no AWS account and no Docker: the real handler behind a local API Gateway.

    python -m local.stack [--host H] [--port P] [--workers N] [--devin standin|real]

What runs (and where each piece of the deployed system is replaced):
- API Gateway → local/apigateway.py: POST /pagerduty becomes the HTTP API payload 2.0 event;
- Lambda → local/runtime.py: `workers` warm containers (processes), each importing handler/app.py once with
  the function's environment from template.yaml and running one invocation at a time;
- SSM and DynamoDB → local/aws.py: moto on loopback, reached through the standard AWS_ENDPOINT_URL, with the
  ledger table created from template.yaml and the parameters seeded with the test signing secret;
- Devin → local/devin_standin.py, which records every request so the prompt can be read back; with
  `--devin real` (or LOCAL_DEVIN=real) and DEVIN_API_KEY / DEVIN_ORG_ID in the environment, the real API.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from local.devin_standin import DevinStandIn
from scripts.make_events import TEST_SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]
# What the ledger table's Ref stands for locally (CloudFormation would generate a name).
TABLE_NAME = "ledger"
# Placeholder Devin credentials: the stand-in requires exactly these, so a wrong wiring shows up as a 502.
STANDIN_API_KEY = "cog_local_placeholder"
STANDIN_ORG_ID = "org-local"
REAL_DEVIN_URL = "https://api.devin.ai"
# Fixed ports that events/env.local.json points a `sam local` container at (scripts/local --aws-port 5000
# --devin-port 8081), and the name the host has from inside Docker's containers.
SAM_LOCAL_AWS_PORT = 5000
SAM_LOCAL_DEVIN_PORT = 8081
DOCKER_HOST_NAME = "host.docker.internal"
# How each warm container runs the handler: our worker (local/lambda_worker.py), or the real Lambda runtime
# stack, aws-lambda-rie + awslambdaric, as `sam local` runs it inside its container.
RUNTIMES = ("python", "rie")
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
# Variables the function may need from the user's shell: proxies and CA bundles (for --devin real). Nothing
# else leaks in, so a stray AWS_PROFILE or AWS_ENDPOINT_URL_DYNAMODB cannot point the function elsewhere.
PASSED_THROUGH = (
    "PATH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)


class StackError(RuntimeError):
    """The stack could not start; the message is one line meant for a person."""


def _in_use(error: OSError) -> bool:
    return error.errno == errno.EADDRINUSE


class LocalStack:
    """API Gateway, Lambda, SSM, DynamoDB and Devin on loopback, around the unchanged handler/app.py."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        devin: str = "standin",
        workers: int = 4,
        devin_latency: float = 0.0,
        env: dict[str, str] | None = None,
        aws_port: int = 0,
        devin_port: int = 0,
        webhook_secret: str | None = None,
        function_log: IO[Any] | int | None = None,
        runtime: str = "python",
        devin_failure_rate: float = 0.0,
        devin_failure_seed: int | None = None,
    ) -> None:
        if devin not in ("standin", "real"):
            raise ValueError(f"devin must be 'standin' or 'real', not {devin!r}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if not 0.0 <= devin_failure_rate <= 1.0:
            raise ValueError("devin_failure_rate must be between 0 and 1")
        self.host, self.port = host, port
        self._requested_port = port  # self.port becomes the bound one (port 0 picks a free port)
        self.devin_mode = devin
        self.workers = workers
        self.devin_latency = devin_latency
        # The stand-in fails this share of creates with a random transient fault (local/devin_standin.py).
        self.devin_failure_rate, self.devin_failure_seed = devin_failure_rate, devin_failure_seed
        self.env_overrides = dict(env or {})
        self.aws_port, self.devin_port = aws_port, devin_port
        self.webhook_secret = webhook_secret
        self.runtime = runtime
        # Where the function's logs (and moto's) go; None: this process's stdout and stderr.
        self.function_log = function_log
        self.signing_secret = TEST_SIGNING_SECRET
        self.devin: DevinStandIn | None = None
        self.function_env: dict[str, str] = {}
        self._aws: Any = None
        self._lambda: Any = None
        self._gateway: Any = None
        self._server: Any = None
        self._started = False

    # --- where things are

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The webhook URL to give PagerDuty (or local.send)."""
        return f"{self.base_url}/pagerduty"

    @property
    def aws_endpoint(self) -> str:
        if self._aws is None:
            raise RuntimeError("the stack is not started")
        return str(self._aws.endpoint)

    @property
    def devin_url(self) -> str:
        return self.function_env.get("DEVIN_API_BASE_URL", "")

    @property
    def table_name(self) -> str:
        return self.function_env.get("TABLE_NAME", TABLE_NAME)

    @property
    def exchanges(self) -> list[Any]:
        """The latest requests the gateway passed to the function: the event it built, the invocation, the answer."""
        return list(self._gateway.exchanges) if self._gateway is not None else []

    # --- lifecycle

    def start(self) -> LocalStack:
        """Start everything, or nothing: on any failure, stop what was started and raise StackError."""
        if self._started:
            return self
        try:
            self._start()
        except ModuleNotFoundError as error:
            self.stop()
            raise StackError(
                f"missing dependency {error.name!r}: install requirements-dev.txt (scripts/local and scripts/demo do)"
            ) from None
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def _start(self) -> None:
        from local.apigateway import Gateway, GatewayServer, Route
        from local.aws import AwsError, LocalAws
        from local.runtime import LambdaService, ProcessContainer, RieContainer, RuntimeStartError
        from local.template import FUNCTION, function_config, function_environment, function_routes

        devin_key, devin_org = self._devin_credentials()
        config = function_config()
        rie = self._rie() if self.runtime == "rie" else None

        # The front end binds first: a port in use is the likeliest failure, and nothing else has started yet.
        self._gateway = Gateway(
            [Route(method, path) for method, path in function_routes()],
            self._invoke,
            function_timeout_seconds=config.timeout_seconds,
        )
        try:
            self._server = GatewayServer(self._gateway, self.host, self._requested_port)
        except OSError as error:
            raise StackError(self._bind_error(self.host, self._requested_port, error, "--port")) from None
        self.port = self._server.port

        try:
            self._aws = LocalAws(host=self.host, port=self.aws_port, log=self.function_log).start()
        except AwsError as error:
            if "already in use" in str(error):
                raise StackError(f"{error} (another local stack?); choose another port with --aws-port") from None
            raise StackError(f"the local AWS (moto) did not start: {error}") from None

        if self.devin_mode == "standin":
            self.devin = DevinStandIn(
                host=self.host,
                port=self.devin_port,
                api_key=devin_key,
                org_id=devin_org,
                latency=self.devin_latency,
                failure_rate=self.devin_failure_rate,
                failure_seed=self.devin_failure_seed,
            )
            try:
                self.devin.start()
            except OSError as error:
                self.devin = None
                raise StackError(self._bind_error(self.host, self.devin_port, error, "--devin-port")) from None

        self.function_env = self._function_env(function_environment(TABLE_NAME), config)
        self._seed(self.function_env, devin_key, devin_org)

        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION}"

        def container(n: int) -> Any:
            if rie is not None:
                return RieContainer(
                    f"worker {n}",
                    self.function_env,
                    config.code_dir,
                    rie,
                    config.handler,
                    config.timeout_seconds,
                    self.function_log,
                    self.host,
                )
            return ProcessContainer(f"worker {n}", self.function_env, config.code_dir, arn, self.function_log)

        self._lambda = LambdaService(self.workers, container)
        try:
            self._lambda.start()
        except RuntimeStartError as error:
            raise StackError(str(error)) from None
        self._server.start()

    def stop(self) -> None:
        """Stop everything this stack started; safe to call twice, and after a failed start."""
        server, self._server = self._server, None
        lambda_service, self._lambda = self._lambda, None
        # The stand-in stays reachable as .devin after stop(): what it recorded is still worth reading.
        devin = self.devin
        aws, self._aws = self._aws, None
        try:
            if server is not None:
                server.stop()
        finally:
            try:
                if lambda_service is not None:
                    lambda_service.stop()
            finally:
                try:
                    if devin is not None:
                        devin.stop()
                finally:
                    if aws is not None:
                        aws.stop()
                    self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- reading what happened

    def ledger_items(self) -> list[dict[str, Any]]:
        """Every ledger item as plain Python values, sorted by incident id."""
        if self._aws is None:
            raise RuntimeError("the stack is not started")
        return sorted(self._aws.scan(self.table_name), key=lambda item: str(item.get("incident_id")))

    def aws_client(self, service: str) -> Any:
        """A boto3 client on the stack's moto, e.g. to change a parameter while it runs."""
        if self._aws is None:
            raise RuntimeError("the stack is not started")
        return self._aws.client(service)

    # --- wiring

    def _devin_credentials(self) -> tuple[str, str]:
        if self.devin_mode == "standin":
            return STANDIN_API_KEY, STANDIN_ORG_ID
        key = os.environ.get("DEVIN_API_KEY", "").strip()
        org = os.environ.get("DEVIN_ORG_ID", "").strip()
        if not (key and org):
            raise StackError("--devin real needs DEVIN_API_KEY and DEVIN_ORG_ID in the environment")
        return key, org

    @staticmethod
    def _rie() -> Path:
        import importlib.util

        from local.runtime import find_rie

        rie = find_rie(ROOT)
        if rie is None:
            raise StackError(
                "--runtime rie needs the emulator from the SAM CLI wheel in .venv-sam: run scripts/local --runtime rie"
            )
        if importlib.util.find_spec("awslambdaric") is None:
            raise StackError("--runtime rie needs awslambdaric: install requirements-dev.txt (scripts/local does)")
        return rie

    def _function_env(self, template_env: dict[str, str], config: Any) -> dict[str, str]:
        from local.template import FUNCTION

        inherited = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        # Loopback must never go through a proxy the user's shell may define.
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), "127.0.0.1"]))
        no_proxy += ",localhost"
        env = {
            **inherited,
            # What Lambda sets in every sandbox.
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local/[$LATEST]local",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
            "LAMBDA_TASK_ROOT": str(config.code_dir),
            "_HANDLER": config.handler,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            # Fake credentials: moto accepts them, a real account never would.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            # The function's own configuration, as template.yaml deploys it.
            **template_env,
            # The local wiring.
            "AWS_ENDPOINT_URL": self._aws.endpoint,
            "DEVIN_API_BASE_URL": self.devin.base_url if self.devin is not None else REAL_DEVIN_URL,
            # There is no X-Ray daemon here.
            "POWERTOOLS_TRACE_DISABLED": "true",
            # Log lines reach the terminal (or log file) as they are written.
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
        env.update(self.env_overrides)
        return env

    def _seed(self, env: dict[str, str], devin_key: str, devin_org: str) -> None:
        prefix = "/" + (env.get("SSM_PARAMETER_PREFIX") or "/pagerduty-postmortem").strip("/")
        self._aws.create_ledger_table(env.get("TABLE_NAME") or TABLE_NAME)
        parameters = {
            f"{prefix}/devin-api-key": (devin_key, "SecureString"),
            f"{prefix}/devin-org-id": (devin_org, "String"),
            f"{prefix}/pagerduty-signing-secret": (self.signing_secret, "SecureString"),
        }
        if self.webhook_secret:
            parameters[f"{prefix}/webhook-secret"] = (self.webhook_secret, "SecureString")
        self._aws.put_parameters(parameters)

    def _invoke(self, event: dict[str, Any], request_id: str, timeout_seconds: float) -> Any:
        from local.apigateway import INTEGRATION_TIMEOUT_SECONDS
        from local.runtime import Invocation

        service = self._lambda
        if service is None:
            return Invocation(throttled=True)
        return service.invoke(
            event, request_id=request_id, timeout_seconds=timeout_seconds, wait_seconds=INTEGRATION_TIMEOUT_SECONDS
        )

    @staticmethod
    def _bind_error(host: str, port: int, error: OSError, option: str) -> str:
        if _in_use(error):
            return f"{host}:{port} is already in use (another local stack?); choose another port with {option}"
        return f"cannot listen on {host}:{port}: {error.strerror or error}"


def _send_command(stack: LocalStack) -> str:
    send = "python -m local.send"
    url = "" if stack.url == "http://127.0.0.1:3000/pagerduty" else f" --url {shlex.quote(stack.url)}"
    return f".venv/bin/{send} events/payloads/incident-resolved-p1.json{url}"


def banner(stack: LocalStack) -> str:
    """What the user needs: where everything listens, the secret, and a command to try."""
    if stack.devin is not None:
        devin = f"stand-in  {stack.devin.base_url}  (records each prompt; key {STANDIN_API_KEY}, org {STANDIN_ORG_ID})"
    else:
        devin = f"REAL API  {stack.devin_url}  (org {os.environ.get('DEVIN_ORG_ID', '?')}: sessions are real)"
    prefix = stack.function_env.get("SSM_PARAMETER_PREFIX", "")
    return "\n".join(
        [
            "PagerDuty → Devin bridge, running locally (no AWS account, no Docker)",
            f"  webhook   POST {stack.url}",
            f"            API Gateway HTTP API v2 events → handler/app.py in {stack.workers} warm worker(s)"
            + (" under the Lambda Runtime Interface Emulator" if stack.runtime == "rie" else ""),
            f"  AWS       moto  {stack.aws_endpoint}  (table {stack.table_name}, parameters under {prefix})",
            f"  Devin     {devin}",
            f"  signing secret (test only): {stack.signing_secret}",
            "",
            "Send a signed sample event (a P1 resolve: starts one session; send it again: duplicate):",
            f"  {_send_command(stack)}",
            "Ctrl-C stops everything.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="webhook port (default 3000; 0 picks a free one)")
    parser.add_argument("--workers", type=int, default=4, help="warm Lambda containers (default 4)")
    parser.add_argument(
        "--devin",
        choices=("standin", "real"),
        default=os.environ.get("LOCAL_DEVIN") or "standin",
        help="the Devin API to use (default: the stand-in, or $LOCAL_DEVIN); real needs DEVIN_API_KEY, DEVIN_ORG_ID",
    )
    parser.add_argument("--aws-port", type=int, default=0, help="fixed moto port, e.g. 5000 for sam local")
    parser.add_argument("--devin-port", type=int, default=0, help="fixed stand-in port, e.g. 8081 for sam local")
    parser.add_argument("--devin-latency", type=float, default=0.0, help="seconds the stand-in takes per answer")
    parser.add_argument("--webhook-secret", help="also require this X-Webhook-Secret header")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="python",
        help="python: a worker process per container (default); rie: the Lambda Runtime Interface Emulator "
        "from the SAM CLI wheel running awslambdaric",
    )
    args = parser.parse_args(argv)
    if args.devin not in ("standin", "real"):
        parser.error(f"LOCAL_DEVIN must be standin or real, not {args.devin!r}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    # Ctrl-C and SIGTERM ask for a clean stop; the handler only sets a flag, so a second Ctrl-C cannot
    # interrupt the stop half-way and leave a worker or a port behind.
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(
        host=args.host,
        port=args.port,
        devin=args.devin,
        workers=args.workers,
        devin_latency=args.devin_latency,
        aws_port=args.aws_port,
        devin_port=args.devin_port,
        webhook_secret=args.webhook_secret,
        runtime=args.runtime,
    )
    try:
        try:
            stack.start()
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if not stop.is_set():
            print(banner(stack), flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping…", flush=True)
    finally:
        stack.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
