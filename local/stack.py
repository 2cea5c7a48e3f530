"""The whole bridge on one machine, with no AWS account and no Docker: the real handler behind a local API Gateway.

    python -m local.stack [--host H] [--port P] [--workers N] [--devin standin|real] [--no-pagerduty]
                          [--param NAME=VALUE ...] [--routing FILE] [--prompt-template FILE]

What runs (and where each piece of the deployed system is replaced):
- API Gateway → local/apigateway.py: POST /pagerduty becomes the HTTP API payload 2.0 event;
- Lambda → local/runtime.py: `workers` warm containers (processes), each importing handler/app.py once with
  the function's environment from template.yaml and running one invocation at a time; and one container of
  the scheduled follow-up (handler/follow_up.py, FollowUpFunction), run on demand by the local-only route
  POST /_local/follow-up (or `python -m local.follow_up`) instead of its EventBridge schedule;
- SSM and DynamoDB → local/aws.py: moto on loopback, reached through the standard AWS_ENDPOINT_URL, with the
  ledger table created from template.yaml and the parameters seeded with the test signing secret;
- Devin → local/devin_standin.py, which records every request so the prompt can be read back; with
  `--devin real` (or LOCAL_DEVIN=real) and DEVIN_API_KEY / DEVIN_ORG_ID in the environment, the real API;
- PagerDuty's REST API → local/pagerduty_standin.py, which serves a sample record (log entries, alerts, notes)
  for any incident and records the notes the functions post; `--no-pagerduty` leaves it out, and its key out of
  Parameter Store, so that the functions run as they do without the PagerDuty feature.

`--param NAME=VALUE` sets a template parameter as `sam deploy --parameter-overrides` does (checked against its
AllowedPattern, AllowedValues, MinValue/MaxValue…); what it changes locally is the functions' environment.
DevinApiBaseUrl and PagerDutyApiBaseUrl give way to the stand-ins while those run. `--routing FILE` and
`--prompt-template FILE` go into Parameter Store as <prefix>/routing and <prefix>/prompt-template, after the
checks the function applies to them.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shlex
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

from local.devin_standin import DevinStandIn
from local.pagerduty_standin import SAMPLE_FROM_EMAIL, PagerDutyStandIn
from scripts.make_events import TEST_SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]
# What the ledger table's Ref stands for locally (CloudFormation would generate a name).
TABLE_NAME = "ledger"
# Placeholder Devin credentials: the stand-in requires exactly these, so a wrong wiring shows up as a 502.
STANDIN_API_KEY = "cog_local_placeholder"
STANDIN_ORG_ID = "org-local"
# Placeholder PagerDuty credentials, the same way: the stand-in requires this key (20 characters, as PagerDuty's).
STANDIN_PAGERDUTY_API_KEY = "pd_local_placeholder"
STANDIN_PAGERDUTY_FROM_EMAIL = SAMPLE_FROM_EMAIL  # a user of the stand-in's sample account
# Fixed ports that events/env.local.json points a `sam local` container at (scripts/local --aws-port 5000
# --devin-port 8081 --pagerduty-port 8082), and the name the host has from inside Docker's containers.
SAM_LOCAL_AWS_PORT = 5000
SAM_LOCAL_DEVIN_PORT = 8081
SAM_LOCAL_PAGERDUTY_PORT = 8082
# The local-only route that runs the scheduled follow-up now; the deployed HTTP API has no such route.
FOLLOW_UP_PATH = "/_local/follow-up"
# Parameter Store's limits on a value, in bytes: Standard tier, then Advanced.
STANDARD_TIER_BYTES = 4096
ADVANCED_TIER_BYTES = 8192
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


# Where each running scripts/local says where it is (write_state): one file per stack, named by its process id, so
# that a second stack never overwrites the first's and stopping one removes only its own. Files of processes that
# are gone are ignored and removed by whoever reads them (running_stacks).
STATE_DIR = ROOT / ".local-stacks"
# What the deployed stack would name its functions (their outputs); locally there is no function name.
FUNCTION_NAME = "PagerDutyPostmortemFunction"
FOLLOW_UP_FUNCTION_NAME = "FollowUpFunction"


class StackError(RuntimeError):
    """The stack could not start; the message is one line meant for a person."""


class ConfigurationRefused(StackError):
    """What the stack was asked to deploy is refused before anything starts: a template parameter `sam deploy`
    would refuse, or a routing document or prompt template the function would refuse (scripts/local exits 2)."""


def _in_use(error: OSError) -> bool:
    return error.errno == errno.EADDRINUSE


def scheduled_event(now: datetime | None = None) -> dict[str, Any]:
    """What the follow-up's EventBridge rule (SAM's `Type: Schedule`) sends it at each tick."""
    from local.template import FOLLOW_UP

    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{FOLLOW_UP}FollowUpSchedule"],
        "detail": {},
    }


def _routing_checks() -> Any:
    """handler/bridge/devin/routing.py: the function's own checks of the routing document and prompt template (pure)."""
    return _bridge("devin.routing")


def _document(option: str, path: str | Path | None, name: str) -> str | None:
    """The text of a routing document or prompt template file, refused as the function would refuse <prefix>/name
    (and as Parameter Store would refuse a value over 8 KB)."""
    if path is None:
        return None
    where = f"{option} {path}"
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise ConfigurationRefused(f"{where}: cannot read it: {error.strerror or error}") from None
    if len(raw) > ADVANCED_TIER_BYTES:
        raise ConfigurationRefused(f"{where}: {len(raw)} bytes, Parameter Store takes at most {ADVANCED_TIER_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationRefused(f"{where}: not UTF-8 text") from None
    routing = _routing_checks()
    try:
        if name == "routing":
            routing.parse_routing(text)
        else:
            routing.check_template(text)
    except routing.RoutingError as error:
        raise ConfigurationRefused(f"{where}: {error}") from None
    return text


class LocalStack:
    """API Gateway, Lambda, SSM, DynamoDB, Devin and PagerDuty on loopback, around the unchanged handler/app.py and
    handler/follow_up.py."""

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
        pagerduty: bool = True,
        pagerduty_port: int = 0,
        parameters: Mapping[str, str] | None = None,
        routing: str | Path | None = None,
        prompt_template: str | Path | None = None,
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
        # Set in both functions' environments, over everything else.
        self.env_overrides = dict(env or {})
        self.aws_port, self.devin_port = aws_port, devin_port
        # Without the PagerDuty stand-in no PagerDuty key is in Parameter Store: the feature is off.
        self.pagerduty_enabled, self.pagerduty_port = pagerduty, pagerduty_port
        # Template parameter overrides, as `sam deploy --parameter-overrides` takes them.
        # The sample events carry fixed dates: judged by age, every replay of one would be ignored as stale.
        self.parameters = {"MaxEventAgeHours": "0", **dict(parameters or {})}
        # Files whose text goes into <prefix>/routing and <prefix>/prompt-template.
        self.routing, self.prompt_template = routing, prompt_template
        self.webhook_secret = webhook_secret
        self.runtime = runtime
        # Where the function's logs (and moto's) go; None: this process's stdout and stderr.
        self.function_log = function_log
        self.signing_secret = TEST_SIGNING_SECRET
        self.devin: DevinStandIn | None = None
        self.pagerduty: PagerDutyStandIn | None = None
        self.function_env: dict[str, str] = {}
        self.follow_up_env: dict[str, str] = {}
        self._aws: Any = None
        self._lambda: Any = None
        self._follow_up: Any = None
        self._follow_up_timeout = 0.0
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
    def follow_up_url(self) -> str:
        """The local-only route that runs the scheduled follow-up now and answers its report."""
        return f"{self.base_url}{FOLLOW_UP_PATH}"

    @property
    def aws_endpoint(self) -> str:
        if self._aws is None:
            raise RuntimeError("the stack is not started")
        return str(self._aws.endpoint)

    @property
    def devin_url(self) -> str:
        return self.function_env.get("DEVIN_API_BASE_URL", "")

    @property
    def parameter_prefix(self) -> str:
        """Where the functions read their parameters: SSM_PARAMETER_PREFIX, as they normalise it."""
        return "/" + (self.function_env.get("SSM_PARAMETER_PREFIX") or "/pagerduty-postmortem").strip("/")

    @property
    def table_name(self) -> str:
        return self.function_env.get("TABLE_NAME", TABLE_NAME)

    def outputs(self) -> dict[str, str]:
        """Where the running stack is, as the deployed stack's outputs say it (plus the local endpoints): what
        scripts/doctor --local, scripts/ledger --local and local.send read from its state file. No secret."""
        return {
            "WebhookUrl": self.url,
            "LedgerTableName": self.table_name,
            "FunctionName": FUNCTION_NAME,
            "FollowUpFunctionName": FOLLOW_UP_FUNCTION_NAME,
            "SsmParameterPrefix": self.parameter_prefix,
            "AwsEndpoint": self.aws_endpoint,
            "Region": REGION,
            "DevinApiBaseUrl": self.devin_url,
            "PagerDutyApiBaseUrl": self.pagerduty.base_url if self.pagerduty is not None else "",
            "FollowUpUrl": self.follow_up_url,
        }

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
        from local.runtime import LambdaService, RuntimeStartError, start_together
        from local.template import (
            FOLLOW_UP,
            FUNCTION,
            ParameterError,
            function_config,
            function_environment,
            function_routes,
        )

        # What was asked for is checked before anything starts, as `sam deploy` and the function would check it.
        try:
            template_env = function_environment(TABLE_NAME, parameters=self.parameters)
            follow_up_template_env = function_environment(TABLE_NAME, function=FOLLOW_UP, parameters=self.parameters)
        except ParameterError as error:
            raise ConfigurationRefused(str(error)) from None
        documents = {
            "routing": _document("--routing", self.routing, "routing"),
            "prompt-template": _document("--prompt-template", self.prompt_template, "prompt-template"),
        }
        devin_key, devin_org = self._devin_credentials()
        config = function_config()
        follow_up_config = function_config(function=FOLLOW_UP)
        self._follow_up_timeout = float(follow_up_config.timeout_seconds)
        rie = self._rie() if self.runtime == "rie" else None

        # The front end binds first: a port in use is the likeliest failure, and nothing else has started yet.
        self._gateway = Gateway(
            [Route(method, path) for method, path in function_routes()],
            self._invoke,
            function_timeout_seconds=config.timeout_seconds,
            local_routes={Route("POST", FOLLOW_UP_PATH): self._follow_up_route},
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

        if self.pagerduty_enabled:
            self.pagerduty = PagerDutyStandIn(
                host=self.host, port=self.pagerduty_port, api_key=STANDIN_PAGERDUTY_API_KEY, serve_samples=True
            )
            try:
                self.pagerduty.start()
            except OSError as error:
                self.pagerduty = None
                raise StackError(self._bind_error(self.host, self.pagerduty_port, error, "--pagerduty-port")) from None

        self.function_env = self._function_env(template_env, config, FUNCTION)
        self.follow_up_env = self._function_env(follow_up_template_env, follow_up_config, FOLLOW_UP)
        self._seed(self.function_env, devin_key, devin_org, documents)

        self._lambda = LambdaService(self.workers, self._containers(FUNCTION, config, self.function_env, "worker", rie))
        # One container: runs come one at a time, when asked for (a second one waits for the first).
        self._follow_up = LambdaService(
            1, self._containers(FOLLOW_UP, follow_up_config, self.follow_up_env, "follow-up worker", rie)
        )
        try:
            start_together(self._lambda, self._follow_up)
        except RuntimeStartError as error:
            raise StackError(str(error)) from None
        self._server.start()

    def stop(self) -> None:
        """Stop everything this stack started; safe to call twice, and after a failed start."""
        server, self._server = self._server, None
        lambda_service, self._lambda = self._lambda, None
        follow_up, self._follow_up = self._follow_up, None
        # The stand-ins stay reachable as .devin and .pagerduty after stop(): what they recorded is still worth
        # reading.
        devin, pagerduty = self.devin, self.pagerduty
        aws, self._aws = self._aws, None
        # Every step runs, whatever an earlier one raised; the first error is raised at the end.
        errors: list[BaseException] = []
        for part in (server, lambda_service, follow_up, devin, pagerduty, aws):
            if part is None:
                continue
            try:
                part.stop()
            except BaseException as error:
                errors.append(error)
        self._started = False
        if errors:
            raise errors[0]

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

    def invoke_follow_up(self) -> Any:
        """Run the scheduled follow-up once, now, in its own warm container, with the event its schedule sends."""
        from local.runtime import Invocation

        service = self._follow_up
        if service is None:
            return Invocation(throttled=True)
        # A second run asked for meanwhile waits for the first.
        return service.invoke(
            scheduled_event(),
            request_id=str(uuid.uuid4()),
            timeout_seconds=self._follow_up_timeout,
            wait_seconds=self._follow_up_timeout,
        )

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

    def _containers(
        self, function: str, config: Any, env: dict[str, str], name: str, rie: Path | None
    ) -> Callable[[int], Any]:
        """How to make the n-th warm container of `function`."""
        from local.runtime import ProcessContainer, RieContainer

        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function}"

        def container(n: int) -> Any:
            if rie is not None:
                return RieContainer(
                    f"{name} {n}",
                    env,
                    config.code_dir,
                    rie,
                    config.handler,
                    config.timeout_seconds,
                    self.function_log,
                    self.host,
                )
            return ProcessContainer(f"{name} {n}", env, config.code_dir, arn, self.function_log)

        return container

    def _function_env(self, template_env: dict[str, str], config: Any, function: str) -> dict[str, str]:
        inherited = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        # Loopback must never go through a proxy the user's shell may define.
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), "127.0.0.1"]))
        no_proxy += ",localhost"
        env = {
            **inherited,
            # What Lambda sets in every sandbox.
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
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
            # The stand-ins, while they run; otherwise what the template (and --param) says.
            "DEVIN_API_BASE_URL": self.devin.base_url if self.devin is not None else template_env["DEVIN_API_BASE_URL"],
            "PAGERDUTY_API_BASE_URL": (
                self.pagerduty.base_url if self.pagerduty is not None else template_env["PAGERDUTY_API_BASE_URL"]
            ),
            # There is no X-Ray daemon here.
            "POWERTOOLS_TRACE_DISABLED": "true",
            # Log lines reach the terminal (or log file) as they are written.
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
        env.update(self.env_overrides)
        return env

    def _seed(self, env: dict[str, str], devin_key: str, devin_org: str, documents: dict[str, str | None]) -> None:
        prefix = self.parameter_prefix
        self._aws.create_ledger_table(env.get("TABLE_NAME") or TABLE_NAME)
        parameters = {
            f"{prefix}/devin-api-key": (devin_key, "SecureString"),
            f"{prefix}/devin-org-id": (devin_org, "String"),
            f"{prefix}/pagerduty-signing-secret": (self.signing_secret, "SecureString"),
        }
        if self.webhook_secret:
            parameters[f"{prefix}/webhook-secret"] = (self.webhook_secret, "SecureString")
        if self.pagerduty is not None:
            parameters[f"{prefix}/pagerduty-api-key"] = (STANDIN_PAGERDUTY_API_KEY, "SecureString")
            parameters[f"{prefix}/pagerduty-from-email"] = (STANDIN_PAGERDUTY_FROM_EMAIL, "String")
        self._aws.put_parameters(parameters)
        ssm = self._aws.client("ssm")
        for name, text in documents.items():
            if text is not None:
                tier = "Advanced" if len(text.encode()) > STANDARD_TIER_BYTES else "Standard"
                ssm.put_parameter(Name=f"{prefix}/{name}", Value=text, Type="String", Tier=tier, Overwrite=True)

    def _invoke(self, event: dict[str, Any], request_id: str, timeout_seconds: float) -> Any:
        from local.apigateway import INTEGRATION_TIMEOUT_SECONDS
        from local.runtime import Invocation

        service = self._lambda
        if service is None:
            return Invocation(throttled=True)
        return service.invoke(
            event, request_id=request_id, timeout_seconds=timeout_seconds, wait_seconds=INTEGRATION_TIMEOUT_SECONDS
        )

    def _follow_up_route(self, request: Any) -> Any:
        """POST /_local/follow-up: the run's report as JSON, or why there is none."""
        from local.apigateway import HttpResponse, gateway_error

        invocation = self.invoke_follow_up()
        if invocation.throttled:
            return gateway_error(503, "Service Unavailable")
        if invocation.error is not None:
            return gateway_error(500, f"the follow-up failed: {invocation.error}")
        body = json.dumps(invocation.result).encode()
        return HttpResponse(200, [("Content-Type", "application/json")], body)

    @staticmethod
    def _bind_error(host: str, port: int, error: OSError, option: str) -> str:
        if _in_use(error):
            return f"{host}:{port} is already in use (another local stack?); choose another port with {option}"
        return f"cannot listen on {host}:{port}: {error.strerror or error}"


# The samples the banner may suggest, in the order it tries them, and what each is; the first that would start a
# session with the stack's settings is the one it suggests.
SUGGESTED_SAMPLES = (
    ("incident-resolved-p1.json", "a P1 resolve"),
    ("lifecycle-acknowledged.json", "an acknowledgement: an early start, docs/local.md#the-lifecycle-by-hand"),
    ("incident-triggered-p1.json", "a P1 trigger: the session starts early"),
    ("incident-resolved-low-urgency.json", "a low-urgency resolve"),
)


def _bridge(module: str) -> Any:
    """One of the function's own modules (handler/bridge/), imported in this process."""
    import importlib

    handler = str(ROOT / "handler")
    if handler not in sys.path:
        # Last: nothing of the function's may shadow what this process imports.
        sys.path.append(handler)
    return importlib.import_module(f"bridge.{module}")


def predicted_answer(stack: LocalStack, payload: Path, now: float | None = None) -> str:
    """What the stack's function answers this sample on an empty ledger, judged by the function's own selection
    (its EVENT_TYPES, FOLLOW_UP_EVENT_TYPES, severity rule and MAX_EVENT_AGE_HOURS) and the stack's routing
    document: "200 started", or "200 ignored: <the function's reason>"."""
    import time

    config, pagerduty, policy = _bridge("config"), _bridge("webhook.event"), _bridge("webhook.policy")
    settings = config.Settings.from_env(stack.function_env)
    selected = policy.select(pagerduty.parse_event(payload.read_bytes()), settings, time.time() if now is None else now)
    if isinstance(selected, policy.Ignored):
        return f"200 ignored: {selected.reason}"
    if selected.start is not None:
        # Forwarded only to a session, and on an empty ledger there is none.
        return f"200 ignored: {selected.start.reason}"
    if stack.routing and selected.incident is not None:
        routing = _bridge("devin.routing")
        facts = routing.Facts.of(selected.incident, selected.event.event_type)
        rule = routing.parse_routing(Path(stack.routing).read_text(encoding="utf-8")).route(facts)
        if rule is not None and rule.skip:
            return f"200 ignored: routing rule {rule.name!r} skips this incident"
    return "200 started"


def _send_command(stack: LocalStack, payload: str = "incident-resolved-p1.json") -> str:
    # Always the stack's URL: without one, local.send posts to the stack started last, which may be another.
    command = f".venv/bin/python -m local.send events/payloads/{payload} --url {shlex.quote(stack.url)}"
    if stack.webhook_secret:
        # The stack refuses a delivery without it (401); the user chose it for this local stack.
        command += f" --webhook-secret {shlex.quote(stack.webhook_secret)}"
    return command


def _suggestion(stack: LocalStack) -> list[str]:
    """A sample to send and what it will get with this stack's settings: the first that starts a session, or else
    the P1 resolve and why it will be ignored."""
    from scripts.make_events import PAYLOADS_DIR

    try:
        answers = {name: predicted_answer(stack, PAYLOADS_DIR / name) for name, _ in SUGGESTED_SAMPLES}
    except Exception as error:  # the stack runs; a banner that cannot predict must not stop it
        return [
            f"Send a signed sample event (its answer could not be predicted: {error}):",
            f"  {_send_command(stack)}",
        ]
    for name, what in SUGGESTED_SAMPLES:
        if answers[name] == "200 started":
            return [
                f"Send a signed sample event ({what}): 200 started, one session; send it again: 200 duplicate:",
                f"  {_send_command(stack, name)}",
            ]
    name, what = SUGGESTED_SAMPLES[0]
    lines = [
        f"Send a signed sample event ({what}). With these settings no sample starts a session; this one gets",
        f"  {answers[name]}",
        f"  {_send_command(stack, name)}",
    ]
    if "MAX_EVENT_AGE_HOURS" in answers[name]:
        lines.append("  (the samples are dated: --param MaxEventAgeHours=0, the local default, turns the check off)")
    return lines


def _follow_up_command(stack: LocalStack) -> str:
    from local.follow_up import DEFAULT_URL

    url = "" if stack.follow_up_url == DEFAULT_URL else f" --url {shlex.quote(stack.follow_up_url)}"
    return f".venv/bin/python -m local.follow_up{url}"


def banner(stack: LocalStack) -> str:
    """What the user needs: where everything listens, the secret, and a command to try."""
    if stack.devin is not None:
        devin = f"stand-in  {stack.devin.base_url}  (records each prompt; key {STANDIN_API_KEY}, org {STANDIN_ORG_ID})"
    else:
        devin = f"REAL API  {stack.devin_url}  (org {os.environ.get('DEVIN_ORG_ID', '?')}: sessions are real)"
    if stack.pagerduty is not None:
        pagerduty = (
            f"stand-in  {stack.pagerduty.base_url}  (each sample incident's record, the P1's for any other; keeps"
            f" the notes posted; key {STANDIN_PAGERDUTY_API_KEY}, from {STANDIN_PAGERDUTY_FROM_EMAIL})"
        )
    else:
        pagerduty = "off  (--no-pagerduty: no key in Parameter Store, the functions never call PagerDuty)"
    prefix = stack.parameter_prefix
    configured = [
        f"  {label:<10}{value}"
        for label, value in (
            ("params", " ".join(f"{name}={shlex.quote(value)}" for name, value in stack.parameters.items())),
            ("routing", f"{stack.routing} → {prefix}/routing" if stack.routing else ""),
            ("prompt", f"{stack.prompt_template} → {prefix}/prompt-template" if stack.prompt_template else ""),
        )
        if value
    ]
    return "\n".join(
        [
            "PagerDuty → Devin bridge, running locally (no AWS account, no Docker)",
            f"  webhook   POST {stack.url}",
            f"            API Gateway HTTP API v2 events → handler/app.py in {stack.workers} warm worker(s)"
            + (" under the Lambda Runtime Interface Emulator" if stack.runtime == "rie" else ""),
            f"  follow-up POST {stack.follow_up_url}",
            "            local only (API Gateway has no such route): runs handler/follow_up.py once, as its schedule"
            " would",
            f"  AWS       moto  {stack.aws_endpoint}  (table {stack.table_name}, parameters under {prefix})",
            f"  Devin     {devin}",
            f"  PagerDuty {pagerduty}",
            *configured,
            f"  signing secret (test only): {stack.signing_secret}",
            "",
            *_suggestion(stack),
            "Run the scheduled follow-up now (it posts each open session's pull requests on the incident, once):"
            if stack.pagerduty is not None
            else "Run the scheduled follow-up now (without a PagerDuty key it does nothing, and says so):",
            f"  {_follow_up_command(stack)}    (or: curl -X POST {stack.follow_up_url})",
            "Ctrl-C stops everything.",
        ]
    )


def _overrides(values: list[str]) -> dict[str, str]:
    """NAME=VALUE pairs, as `sam deploy --parameter-overrides` takes them (the last one of a name wins)."""
    overrides = {}
    for value in values:
        name, equals, setting = value.partition("=")
        if not (equals and name):
            raise ConfigurationRefused(f"--param {value!r}: expected NAME=VALUE, e.g. --param Urgencies='*'")
        overrides[name] = setting
    return overrides


def _process_start(pid: int) -> str | None:
    """When the process started (clock ticks since boot, from /proc), or None where there is no /proc: a process id
    reused by another process after a stack was killed must not pass for that stack."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow its last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _alive(state: Mapping[str, Any]) -> bool:
    pid = int(state["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    recorded, now = state.get("process_start"), _process_start(pid)
    return recorded is None or now is None or recorded == now


def write_state(stack: LocalStack, directory: Path | None = None) -> Path:
    """Tell the operator tools (scripts/doctor --local, scripts/ledger --local, local.send) where this running stack
    is: <directory>/<pid>.json, written whole or not at all. Returns its path."""
    directory = directory or STATE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    state = {
        "pid": pid,
        "process_start": _process_start(pid),
        "started_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outputs": stack.outputs(),
    }
    path = directory / f"{pid}.json"
    partial = directory / f".{pid}.json.partial"
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def remove_state(directory: Path | None = None) -> None:
    """Remove this process's state file, and only it: other stacks' stay."""
    with contextlib.suppress(FileNotFoundError):
        ((directory or STATE_DIR) / f"{os.getpid()}.json").unlink()


def running_stacks(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every running local stack's state ({"pid", "started_at", "outputs"}), the one started first first. A file
    that does not parse, or whose process is gone, is removed."""
    directory = directory or STATE_DIR
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            alive = _alive(state) and isinstance(state["outputs"], dict)
        except FileNotFoundError:  # its stack stopped meanwhile
            continue
        except (ValueError, KeyError, TypeError):
            alive = False
        if alive:
            found.append(state)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return sorted(found, key=lambda state: (str(state.get("started_at", "")), int(state["pid"])))


def _port(state: Mapping[str, Any]) -> int | None:
    try:
        return urlsplit(str(state["outputs"].get("WebhookUrl", ""))).port
    except ValueError:
        return None


def find_stack(port: int | None = None, directory: Path | None = None) -> tuple[dict[str, str], str | None]:
    """The outputs of the running local stack to use, and a note that says which one when several run (else None):
    the one whose webhook listens on `port`, or else the one started last. StackError when there is none."""
    running = running_stacks(directory)
    if not running:
        raise StackError("no local stack is running: start one with scripts/local")
    ports = [_port(state) for state in running]
    listed = ", ".join(str(p) for p in ports)
    if port is not None:
        chosen = [state for state, its in zip(running, ports, strict=True) if its == port]
        if not chosen:
            raise StackError(f"no local stack is running on port {port}; running: webhook port {listed}")
        return dict(chosen[-1]["outputs"]), None
    chosen_state = running[-1]
    note = None
    if len(running) > 1:
        note = (
            f"{len(running)} local stacks are running (webhook ports {listed}): using port {ports[-1]}, the one"
            " started last; --port PORT picks another"
        )
    return dict(chosen_state["outputs"]), note


def read_state(port: int | None = None, directory: Path | None = None) -> dict[str, str]:
    """The outputs of the running local stack (find_stack, without its note); StackError when none is running."""
    return find_stack(port, directory)[0]


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
    parser.add_argument(
        "--pagerduty-port", type=int, default=0, help="fixed PagerDuty stand-in port, e.g. 8082 for sam local"
    )
    parser.add_argument(
        "--no-pagerduty",
        action="store_true",
        help="no PagerDuty stand-in and no PagerDuty key in Parameter Store: the bridge as it runs without the feature",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template.yaml parameter, as sam deploy --parameter-overrides takes it (repeatable), "
        "e.g. --param Urgencies='*'",
    )
    parser.add_argument("--routing", metavar="FILE", help="a routing document to put in <prefix>/routing")
    parser.add_argument(
        "--prompt-template", metavar="FILE", help="a prompt template to put in <prefix>/prompt-template"
    )
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
    try:
        parameters = _overrides(args.param)
    except ConfigurationRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

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
        pagerduty=not args.no_pagerduty,
        pagerduty_port=args.pagerduty_port,
        parameters=parameters,
        routing=args.routing,
        prompt_template=args.prompt_template,
    )
    try:
        try:
            stack.start()
        except ConfigurationRefused as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if not stop.is_set():
            write_state(stack)
            print(banner(stack), flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping…", flush=True)
    finally:
        remove_state()
        stack.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
