"""template.yaml's operations resources: the alarms, their topic, the dashboard, the saved Logs Insights queries and
the operator's ledger policy.

Every alarm notifies the stack's topic and names its runbook section. Every metric the alarms and the dashboard read
is one the code really emits: the real handlers are run through one scenario per signal and the metric names and
dimensions they print (EMF) are compared with the template's. The saved queries name only fields of a real summary
line. The operator's policy grants what scripts/ledger and scripts/doctor need and is attached to nobody.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from bridge.devin.client import DevinClient

from local.devin_standin import Fault
from tests.conftest import FakeContext, delete_parameter, put_parameter
from tests.support.events import api_event, incident, payload
from tests.support.metrics import emitted
from tests.support.template import FUNCTION, TABLE, load_template
from tests.test_signals import INCIDENT, OUTCOMES, summaries
from tests.test_template import find_sam

FOLLOW_UP = "FollowUpFunction"
OPERATOR_POLICY = "LedgerOperatorPolicy"
NAMESPACE = "PagerDutyPostmortem"
SERVICE = "pagerduty-postmortem"
# Published by Lambda itself, not by the code.
LAMBDA_NAMESPACE = "AWS/Lambda"
LAMBDA_METRICS = {"Errors", "Throttles", "Duration", "Invocations", "ConcurrentExecutions"}

# Each alarm and the section of docs/runbook.md its description names.
RUNBOOK = {
    "DevinRefusedAlarm": "devin-refuses-requests",
    "DevinUnavailableAlarm": "devin-unavailable",
    "FunctionErrorsAlarm": "function-errors",
    "ThrottlesAlarm": "throttled",
    "UnauthorizedSpikeAlarm": "unauthorised-deliveries",
    "NoSessionForADayAlarm": "no-session-for-a-day",
    "FollowUpFailingAlarm": "follow-up-failing",
    "DevinSessionStoppedAlarm": "devin-session-stopped",
    "AwsDependenciesAlarm": "aws-dependencies-unavailable",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- Alarms and their topic ---------------------------------------------------------------------------------


def test_the_alarms_are_the_ones_the_runbook_has_sections_for(template: dict[str, Any]) -> None:
    assert set(resources_of_type(template, "AWS::CloudWatch::Alarm")) == set(RUNBOOK)


@pytest.mark.parametrize("alarm", RUNBOOK)
def test_every_alarm_notifies_the_stacks_topic_when_it_fires_and_when_it_clears(
    template: dict[str, Any], alarm: str
) -> None:
    props = template["Resources"][alarm]["Properties"]

    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert props["OKActions"] == [{"Ref": "AlarmTopic"}]
    assert props.get("ActionsEnabled", True) is True


@pytest.mark.parametrize(("alarm", "anchor"), RUNBOOK.items())
def test_every_alarm_description_names_its_runbook_section(template: dict[str, Any], alarm: str, anchor: str) -> None:
    description = template["Resources"][alarm]["Properties"]["AlarmDescription"]

    assert re.findall(r"docs/runbook\.md#[\w-]+", description) == [f"docs/runbook.md#{anchor}"]
    # It says what happened before where to read about it.
    assert len(description) > 150
    assert len(description) <= 1024  # CloudWatch's limit


@pytest.mark.parametrize("alarm", RUNBOOK)
def test_every_alarm_is_named_after_the_stack_and_decides_about_missing_data(
    template: dict[str, Any], alarm: str
) -> None:
    props = template["Resources"][alarm]["Properties"]

    assert props["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")
    assert props["TreatMissingData"] in {"notBreaching", "ignore"}


def test_the_alarm_names_are_unique(template: dict[str, Any]) -> None:
    names = [template["Resources"][alarm]["Properties"]["AlarmName"]["Fn::Sub"] for alarm in RUNBOOK]

    assert len(set(names)) == len(names)


def _condition(template: dict[str, Any], expression: Any, parameters: dict[str, str]) -> Any:
    """Evaluates the intrinsics a Condition may use, parameters as given."""
    if isinstance(expression, str):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Condition":
        return _condition(template, template["Conditions"][argument], parameters)
    values = [_condition(template, a, parameters) for a in as_list(argument)]
    return {
        "Fn::Equals": lambda: values[0] == values[1],
        "Fn::Not": lambda: not values[0],
        "Fn::And": lambda: all(values),
        "Fn::Or": lambda: any(values),
    }[function]()


@pytest.mark.parametrize(("email", "subscribed"), [("", False), ("oncall@example.com", True)])
def test_the_e_mail_subscription_exists_only_when_alarm_email_is_set(
    template: dict[str, Any], email: str, subscribed: bool
) -> None:
    (subscription,) = resources_of_type(template, "AWS::SNS::Subscription").values()
    condition = template["Conditions"][subscription["Condition"]]

    assert _condition(template, condition, {"AlarmEmail": email}) is subscribed
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def test_alarm_email_is_empty_by_default(template: dict[str, Any]) -> None:
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""


@pytest.mark.parametrize("email", ["", "oncall@example.com", "sre+pagerduty@ops.example.co.uk"])
def test_alarm_email_accepts_nothing_or_one_address(template: dict[str, Any], email: str) -> None:
    assert re.fullmatch(template["Parameters"]["AlarmEmail"]["AllowedPattern"], email)


@pytest.mark.parametrize("email", ["oncall", "oncall@example", "a@b.c,d@e.f", "on call@example.com", " "])
def test_alarm_email_rejects_anything_else(template: dict[str, Any], email: str) -> None:
    assert not re.fullmatch(template["Parameters"]["AlarmEmail"]["AllowedPattern"], email)


def test_the_topic_can_be_published_to_by_cloudwatch_alarms(template: dict[str, Any]) -> None:
    # CloudWatch cannot use the AWS-managed alias/aws/sns key: a topic encrypted with it never gets an alarm.
    (topic,) = resources_of_type(template, "AWS::SNS::Topic").values()

    assert topic["Properties"].get("KmsMasterKeyId") != "alias/aws/sns"
    assert not resources_of_type(template, "AWS::SNS::TopicPolicy")  # the default policy lets the account publish


@pytest.mark.parametrize(
    ("alarm", "metric", "statistic", "period", "threshold", "evaluation", "datapoints"),
    [
        ("DevinRefusedAlarm", "DevinRefused", "Sum", 300, 1, 1, 1),
        ("DevinUnavailableAlarm", "DevinUnavailable", "Sum", 300, 1, 3, 2),
        ("UnauthorizedSpikeAlarm", "Unauthorized", "Sum", 300, 10, 1, 1),
        ("FollowUpFailingAlarm", "FollowUpFailed", "Minimum", 1800, 1, 1, 1),
        ("DevinSessionStoppedAlarm", "SessionsStopped", "Sum", 1800, 1, 1, 1),
    ],
)
def test_single_metric_alarms_watch_what_the_runbook_says(
    template: dict[str, Any],
    alarm: str,
    metric: str,
    statistic: str,
    period: int,
    threshold: int,
    evaluation: int,
    datapoints: int,
) -> None:
    props = template["Resources"][alarm]["Properties"]

    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (NAMESPACE, metric, statistic)
    assert props["Dimensions"] == [{"Name": "service", "Value": SERVICE}]
    assert (props["Period"], props["Threshold"]) == (period, threshold)
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (evaluation, datapoints)
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def _math(props: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A metric-math alarm's expression and its inputs by id."""
    (expression,) = [m for m in props["Metrics"] if "Expression" in m]
    inputs = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
    return expression, inputs


@pytest.mark.parametrize(
    ("alarm", "inputs", "period"),
    [
        (
            "FunctionErrorsAlarm",
            {
                (LAMBDA_NAMESPACE, "Errors", FUNCTION),
                (LAMBDA_NAMESPACE, "Errors", FOLLOW_UP),
                (NAMESPACE, "UnexpectedError", SERVICE),
                (NAMESPACE, "ConfigurationError", SERVICE),
            },
            300,
        ),
        (
            "ThrottlesAlarm",
            {(LAMBDA_NAMESPACE, "Throttles", FUNCTION), (LAMBDA_NAMESPACE, "Throttles", FOLLOW_UP)},
            300,
        ),
        (
            "NoSessionForADayAlarm",
            {(NAMESPACE, name, SERVICE) for name in ("Qualified", "SessionStarted", "Duplicate", "Messaged")},
            86400,
        ),
        (
            "AwsDependenciesAlarm",
            {
                (NAMESPACE, name, SERVICE)
                for name in ("ParameterStoreUnavailable", "LedgerUnavailable", "SetupUnavailable")
            },
            300,
        ),
    ],
)
def test_metric_math_alarms_read_what_the_runbook_says(
    template: dict[str, Any], alarm: str, inputs: set[tuple[str, str, str]], period: int
) -> None:
    props = template["Resources"][alarm]["Properties"]
    expression, stats = _math(props)

    def target(metric: dict[str, Any]) -> str:
        ((dimension,),) = [metric["Dimensions"]]
        value = dimension["Value"]
        return value["Ref"] if isinstance(value, dict) else value

    read = {(s["Metric"]["Namespace"], s["Metric"]["MetricName"], target(s["Metric"])) for s in stats.values()}
    assert read == inputs
    assert {s["Period"] for s in stats.values()} == {period}
    assert {s["Stat"] for s in stats.values()} == {"Sum"}
    # The expression returns the only series, and uses every input (each with missing data as zero).
    assert expression["ReturnData"] is True
    assert all(m.get("ReturnData") is False for m in props["Metrics"] if m is not expression)
    used = set(re.findall(r"\b[a-z]\w*\b", expression["Expression"]))  # ids start lower-case, functions do not
    assert used == set(stats)
    assert all(f"FILL({name}, 0)" in expression["Expression"] for name in stats)
    assert "MetricName" not in props and "Period" not in props


def test_no_session_for_a_day_is_qualified_deliveries_without_any_session() -> None:
    # The alarm's expression, evaluated as CloudWatch would over one day's sums (a missing series is 0).
    props = load_template()["Resources"]["NoSessionForADayAlarm"]["Properties"]
    expression, _ = _math(props)
    python = expression["Expression"].replace("FILL(", "fill(").replace(" AND ", " and ").replace("IF(", "if_(")

    def evaluate(**sums: float) -> float:
        namespace = {"fill": lambda value, default: default if value is None else value, "if_": _if}
        names = {name: sums.get(name) for name in ("qualified", "started", "duplicate", "messaged")}
        return eval(python, namespace, names)  # noqa: S307 - our own template's expression, fixed names

    def _if(condition: bool, then: float, otherwise: float) -> float:
        return then if condition else otherwise

    assert evaluate(qualified=3) >= props["Threshold"]
    assert evaluate(qualified=3, started=0, duplicate=0, messaged=0) >= props["Threshold"]
    assert evaluate(qualified=3, started=1) < props["Threshold"]
    assert evaluate(qualified=1, duplicate=1) < props["Threshold"]
    assert evaluate(qualified=1, messaged=1) < props["Threshold"]
    assert evaluate() < props["Threshold"]  # a quiet day


# --- Every metric the template reads is emitted by the code ------------------------------------------------


@dataclass(frozen=True)
class Used:
    """A metric the template reads: where, and the metric as CloudWatch identifies it."""

    where: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # values as written: "${Function}" for a reference to a resource

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)


def _value(value: Any) -> str:
    return f"${{{value['Ref']}}}" if isinstance(value, dict) else str(value)


def alarm_metrics(template: dict[str, Any]) -> list[Used]:
    used = []
    for alarm, resource in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        props = resource["Properties"]
        # A single-metric alarm, or the inputs of a metric-math one (its expression reads only those).
        metrics = (
            [props]
            if "MetricName" in props
            else [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]
        )
        for metric in metrics:
            dimensions = tuple((d["Name"], _value(d["Value"])) for d in metric.get("Dimensions", []))
            used.append(Used(alarm, metric["Namespace"], metric["MetricName"], dimensions))
    return used


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    # A JSON document whose ${...} references sit inside JSON strings: it parses as it is.
    return json.loads(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])


def _search(expression: str) -> Used:
    """The metric a SEARCH('{Namespace,Dim,...} MetricName="..." dim="..."', ...) expression finds."""
    match = re.fullmatch(r"SEARCH\('\{([^}]*)\}(.*?)',\s*'\w+',\s*\d+\)", expression)
    assert match, expression
    namespace, *dimension_names = [part.strip() for part in match[1].split(",")]
    terms = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
    values = {name: terms.get(name, "*") for name in dimension_names}
    return Used("dashboard SEARCH", namespace, terms["MetricName"], tuple(values.items()))


def dashboard_metrics(template: dict[str, Any]) -> list[Used]:
    used = []
    for widget in dashboard_body(template)["widgets"]:
        if widget["type"] != "metric":
            continue
        title = widget["properties"]["title"]
        for row in widget["properties"]["metrics"]:
            options = row[-1] if isinstance(row[-1], dict) else {}
            if "expression" in options:
                used.append(_search(options["expression"]))
                continue
            fields = row[:-1] if options else row
            assert "." not in fields, f"{title}: spell every metric row out in full, {row}"
            namespace, name, *pairs = fields
            dimensions = tuple(zip(pairs[::2], pairs[1::2], strict=True))
            used.append(Used(f"dashboard {title!r}", namespace, name, dimensions))
    return used


def used_by_template(template: dict[str, Any]) -> list[Used]:
    return alarm_metrics(template) + dashboard_metrics(template)


def emf(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, dict[str, str], list[float]]]:
    """Every metric printed (EMF) since the last read, as (name, dimensions, values)."""
    found = emitted(capsys.readouterr().out)
    assert {metric.namespace for metric in found} <= {NAMESPACE}
    return [(metric.name, metric.dimensions, metric.values) for metric in found]


Signal = tuple[str, frozenset[str]]  # (metric name, its dimension names)
BY_SERVICE = frozenset({"service"})
BY_REASON = frozenset({"Reason", "service"})
BY_FUNCTION = frozenset({"function_name", "service"})


def by_service(*names: str) -> set[Signal]:
    return {(name, BY_SERVICE) for name in names}


def setup_unavailable(invoke, **_: Any) -> Any:
    put_parameter("routing", "{not json", secure=False)
    return invoke(api_event(incident(INCIDENT)))


def routing_invalid(invoke, monkeypatch, **_: Any) -> Any:
    monkeypatch.setenv("POWERTOOLS_PARAMETERS_MAX_AGE", "0")  # every delivery reads Parameter Store again
    put_parameter("prompt-template", "Write the postmortem for ${service}", secure=False)
    assert invoke(api_event(incident("QOPS1"))).body["status"] == "started"
    put_parameter("prompt-template", "Write it for ${servce}", secure=False)
    return invoke(api_event(incident("QOPS2")))


def pagerduty_read_failed(invoke, request, **_: Any) -> Any:
    from local.pagerduty_standin import sample_record

    request.getfixturevalue("pagerduty_reads")
    pagerduty = request.getfixturevalue("pagerduty")
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.enqueue("notes", *[Fault.status(403)] * 5)
    return invoke(api_event(incident(INCIDENT)))


def pagerduty_note_failed(invoke, request, **_: Any) -> Any:
    from local.pagerduty_standin import sample_record

    request.getfixturevalue("pagerduty_writes")
    pagerduty = request.getfixturevalue("pagerduty")
    pagerduty.add_incident(INCIDENT, **sample_record(INCIDENT))
    pagerduty.enqueue("notes_post", Fault.status(500))
    return invoke(api_event(incident(INCIDENT)))


def _follow_up_run() -> dict[str, Any]:
    import follow_up
    from aws_lambda_powertools.utilities import parameters

    follow_up.dependencies.cache_clear()
    parameters.clear_caches()
    try:
        event = {"source": "aws.events", "detail-type": "Scheduled Event"}
        return follow_up.lambda_handler(event, FakeContext(function_name=FOLLOW_UP))
    finally:
        follow_up.dependencies.cache_clear()


def follow_up_off(**_: Any) -> Any:
    return _follow_up_run()


def follow_up_failing(request, **_: Any) -> Any:
    request.getfixturevalue("pagerduty_reads")
    delete_parameter("devin-api-key")
    return _follow_up_run()


OUTCOME_RUNS = {name: run for name, (run, *_) in OUTCOMES.items()}
# scenario → (what it does, the signals it must emit). The union of these is what the code is proven to emit.
SCENARIOS: dict[str, tuple[Callable[..., Any], set[Signal]]] = {
    **{name: (run, by_service(metric)) for name, (run, _status, _outcome, metric) in OUTCOMES.items()},
    "started": (
        OUTCOME_RUNS["started"],
        by_service("SessionStarted", "Qualified", "ParameterStoreLatency", "LedgerLatency", "DevinLatency")
        | {("ColdStart", BY_FUNCTION)},
    ),
    "ignored": (OUTCOME_RUNS["ignored"], by_service("Ignored") | {("Ignored", BY_REASON)}),
    "setup-unavailable": (setup_unavailable, by_service("SetupUnavailable")),
    "routing-invalid": (routing_invalid, by_service("RoutingInvalid", "SessionStarted")),
    "pagerduty-read-failed": (pagerduty_read_failed, by_service("PagerDutyReadFailed", "PagerDutyLatency")),
    "pagerduty-note-failed": (pagerduty_note_failed, by_service("PagerDutyNoteFailed", "PagerDutyLatency")),
    "follow-up-off": (
        follow_up_off,
        by_service(
            "FollowUpFollowed",
            "FollowUpUpdated",
            "FollowUpFailed",
            "PostmortemResultValid",
            "PostmortemResultInvalid",
            "PostmortemResultMissing",
            "SessionsWaiting",
            "SessionsStopped",
            "SessionsFailed",
            "LinksDropped",
            "FollowUpGivenUp",
        )
        | {("ColdStart", BY_FUNCTION)},
    ),
    "follow-up-failing": (follow_up_failing, by_service("FollowUpFailed")),
}
PROVEN: set[Signal] = set().union(*(signals for _, signals in SCENARIOS.values()))


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DevinClient.__init__.__kwdefaults__, "jitter", lambda: 0.0)


@pytest.fixture
def cold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next invocation is the container's first, as far as Powertools' ColdStart metric is concerned."""
    monkeypatch.setattr(cold_start, "is_cold_start", True)


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_each_scenario_emits_the_signals_it_stands_for(
    invoke, devin, aws_faults, monkeypatch, request, capsys, quick_backoff, cold, scenario
) -> None:
    run, signals = scenario
    capsys.readouterr()

    run(invoke=invoke, devin=devin, aws_faults=aws_faults, monkeypatch=monkeypatch, request=request)

    printed = emf(capsys)
    emitted = {(name, frozenset(dimensions)) for name, dimensions, _ in printed}
    assert signals <= emitted, sorted(signals - emitted)
    assert all(dimensions.get("service") == SERVICE for _, dimensions, _ in printed)


def test_a_failing_follow_up_run_counts_a_failure_and_a_good_one_counts_zero(
    invoke, devin, monkeypatch, request, capsys
) -> None:
    # What the follow-up alarm's Minimum reads: one value per run, never missing.
    capsys.readouterr()
    follow_up_off()
    (good,) = [value for name, _, value in emf(capsys) if name == "FollowUpFailed"]

    follow_up_failing(request=request)
    (bad,) = [value for name, _, value in emf(capsys) if name == "FollowUpFailed"]

    threshold = load_template()["Resources"]["FollowUpFailingAlarm"]["Properties"]["Threshold"]
    assert good == [0]
    assert len(bad) == 1 and bad[0] >= threshold


def test_every_metric_the_alarms_and_the_dashboard_read_is_one_the_code_emits(template: dict[str, Any]) -> None:
    used = [u for u in used_by_template(template) if u.namespace != LAMBDA_NAMESPACE]

    assert used
    unknown = [u for u in used if (u.name, u.dimension_names) not in PROVEN]
    assert not unknown, "\n".join(f"{u.where}: {u.name} {sorted(u.dimension_names)}" for u in unknown)


def test_the_code_metrics_are_read_in_its_namespace_for_its_service(template: dict[str, Any]) -> None:
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    functions = {f"${{{FUNCTION}}}", f"${{{FOLLOW_UP}}}"}

    assert (environment["POWERTOOLS_METRICS_NAMESPACE"], environment["POWERTOOLS_SERVICE_NAME"]) == (NAMESPACE, SERVICE)
    for used in used_by_template(template):
        if used.namespace == LAMBDA_NAMESPACE:
            continue
        dimensions = dict(used.dimensions)
        assert used.namespace == NAMESPACE, used
        assert dimensions["service"] == SERVICE, used
        if "function_name" in dimensions:  # Powertools' ColdStart: the deployed function's name
            assert dimensions["function_name"] in functions, used


def test_lambda_metrics_are_read_for_the_stacks_own_functions(template: dict[str, Any]) -> None:
    lambda_metrics = [u for u in used_by_template(template) if u.namespace == LAMBDA_NAMESPACE]

    assert lambda_metrics
    for used in lambda_metrics:
        assert used.name in LAMBDA_METRICS, used
        assert dict(used.dimensions) in ({"FunctionName": f"${{{FUNCTION}}}"}, {"FunctionName": f"${{{FOLLOW_UP}}}"})


def test_every_outcome_and_every_emitted_count_is_on_the_dashboard(template: dict[str, Any]) -> None:
    shown = {(u.name, u.dimension_names) for u in dashboard_metrics(template)}

    missing = {signal for signal in PROVEN if signal not in shown}
    assert not missing, sorted(missing)


# --- The dashboard -----------------------------------------------------------------------------------------


def test_the_dashboard_shows_the_state_of_every_alarm(template: dict[str, Any]) -> None:
    (widget,) = [w for w in dashboard_body(template)["widgets"] if w["type"] == "alarm"]

    assert sorted(widget["properties"]["alarms"]) == sorted(f"${{{alarm}.Arn}}" for alarm in RUNBOOK)


@pytest.mark.parametrize(
    ("namespace", "metric"),
    [
        (LAMBDA_NAMESPACE, "Duration"),
        (NAMESPACE, "ParameterStoreLatency"),
        (NAMESPACE, "LedgerLatency"),
        (NAMESPACE, "DevinLatency"),
        (NAMESPACE, "PagerDutyLatency"),
    ],
)
def test_the_dashboard_shows_latency_percentiles(template: dict[str, Any], namespace: str, metric: str) -> None:
    stats = set()
    for widget in dashboard_body(template)["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if row[:2] == [namespace, metric]:
                stats.add(row[-1].get("stat") if isinstance(row[-1], dict) else None)

    assert stats == {"p50", "p90", "p99"}


def test_the_dashboard_widgets_fit_the_grid_without_overlapping(template: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for widget in dashboard_body(template)["widgets"]:
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24, widget
        cells = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not cells & taken, widget
        taken |= cells


def test_every_substitution_in_the_dashboard_is_a_resource_or_a_pseudo_parameter(template: dict[str, Any]) -> None:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]

    for reference in re.findall(r"\$\{([^}]+)\}", body):
        target = reference.split(".")[0]
        assert reference.startswith("AWS::") or target in template["Resources"], reference


# --- The saved Logs Insights queries -----------------------------------------------------------------------

QUERY_WORDS = {"fields", "filter", "stats", "sort", "limit", "display", "parse", "dedup", "by", "as", "asc", "desc"}
QUERY_WORDS |= {"and", "or", "not", "in", "like"}


def query_fields(query: str) -> set[str]:
    """The log fields a Logs Insights query names: not its commands, functions, aliases, literals or @-fields."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', " ", query)
    fields = set()
    for match in re.finditer(r"(?<![\w@.])([A-Za-z_][\w.]*)(\s*\()?", text):
        word, call = match[1], match[2]
        alias = re.search(r"\bas\s*$", text[: match.start()], re.IGNORECASE)
        if call or alias or word.lower() in QUERY_WORDS:
            continue
        fields.add(word)
    return fields


def test_query_fields_parses_the_kinds_of_query_saved() -> None:
    query = 'fields @timestamp, a_ms | filter message = "delivery x" | stats count(*) as n by bin(1h), outcome'

    assert query_fields(query) == {"a_ms", "message", "outcome"}


def queries(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r["Properties"] for n, r in resources_of_type(template, "AWS::Logs::QueryDefinition").items()}


@pytest.fixture
def summary_keys(invoke, devin, logs) -> set[str]:
    """The keys of real summary lines: a delivery that started a session and one that was ignored."""
    assert invoke(api_event(incident(INCIDENT))).body["status"] == "started"
    assert invoke(api_event(payload("incident-resolved-low-urgency.json"))).body["status"] == "ignored"
    lines = summaries(logs)
    assert len(lines) == 2
    return set().union(*lines)


def test_the_saved_queries_name_only_fields_of_the_summary_line(template: dict[str, Any], summary_keys) -> None:
    for name, query in queries(template).items():
        unknown = query_fields(query["QueryString"]) - summary_keys
        assert not unknown, f"{name} names {sorted(unknown)}, which no summary line has ({sorted(summary_keys)})"


def test_the_saved_queries_answer_the_common_questions(template: dict[str, Any]) -> None:
    saved = queries(template)
    per_hour = saved["OutcomesPerHourQuery"]["QueryString"]
    slowest = saved["SlowestDeliveriesQuery"]["QueryString"]
    one_incident = saved["IncidentDeliveriesQuery"]["QueryString"]

    assert 'filter message = "delivery"' in per_hour
    assert re.search(r"stats count\(\*\).* by .*bin\(1h\)", per_hour)
    assert "outcome" in query_fields(per_hour)
    assert 'filter message = "delivery"' in slowest
    assert "sort total_ms desc" in slowest
    assert {"ssm_ms", "dynamodb_ms", "devin_ms", "pagerduty_ms", "total_ms"} <= query_fields(slowest)
    assert re.search(r'filter incident_id = "[A-Z_]+"', one_incident)


def test_the_saved_queries_read_the_functions_log_groups(template: dict[str, Any]) -> None:
    for name, query in queries(template).items():
        assert {"Ref": "FunctionLogGroup"} in query["LogGroupNames"], name
        assert set(map(json.dumps, query["LogGroupNames"])) <= {
            json.dumps({"Ref": "FunctionLogGroup"}),
            json.dumps({"Ref": "FollowUpLogGroup"}),
        }
        assert query["Name"]["Fn::Sub"].startswith("${AWS::StackName}/"), name


# --- The operator's policy ---------------------------------------------------------------------------------

PREFIX_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmParameterPrefix}/*"}
TABLE_ARN = {"Fn::GetAtt": [TABLE, "Arn"]}
KMS_ARN = {"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"}
STACK_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*"
}
# What scripts/ledger and scripts/doctor call, on what.
OPERATOR_GRANTS = {
    ("dynamodb:Query", json.dumps({"Fn::Sub": "${LedgerTable.Arn}/index/by-status"})),
    ("dynamodb:GetItem", json.dumps(TABLE_ARN)),
    ("dynamodb:DeleteItem", json.dumps(TABLE_ARN)),
    ("dynamodb:UpdateItem", json.dumps(TABLE_ARN)),  # scripts/ledger scrub
    ("dynamodb:DescribeTable", json.dumps(TABLE_ARN)),
    ("dynamodb:DescribeTimeToLive", json.dumps(TABLE_ARN)),
    ("ssm:GetParameters", json.dumps(PREFIX_ARN)),
    ("kms:Decrypt", json.dumps(KMS_ARN)),
    ("cloudformation:DescribeStacks", json.dumps(STACK_ARN)),
}
# The functions' grants as they were before the operations resources: the operator's policy changes none of them.
FUNCTION_GRANTS = {
    FUNCTION: {
        ("ssm:GetParameters", json.dumps(PREFIX_ARN)),
        ("kms:Decrypt", json.dumps(KMS_ARN)),
        ("dynamodb:UpdateItem", json.dumps(TABLE_ARN)),
        ("dynamodb:DeleteItem", json.dumps(TABLE_ARN)),
    },
    FOLLOW_UP: {
        ("ssm:GetParameters", json.dumps(PREFIX_ARN)),
        ("kms:Decrypt", json.dumps(KMS_ARN)),
        ("dynamodb:Query", json.dumps({"Fn::Sub": "${LedgerTable.Arn}/index/following"})),
        ("dynamodb:UpdateItem", json.dumps(TABLE_ARN)),
    },
}


def grants(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (action, json.dumps(resource))
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


def operator_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return template["Resources"][OPERATOR_POLICY]["Properties"]["PolicyDocument"]["Statement"]


def test_the_operator_policy_grants_exactly_what_the_scripts_need(template: dict[str, Any]) -> None:
    assert grants(operator_statements(template)) == OPERATOR_GRANTS


def test_the_operator_policy_decrypts_only_through_ssm_and_names_no_wildcard_resource(
    template: dict[str, Any],
) -> None:
    statements = operator_statements(template)
    (functions_kms,) = [
        s
        for s in template["Resources"][FUNCTION]["Properties"]["Policies"][0]["Statement"]
        if s["Action"] == "kms:Decrypt"
    ]

    (kms,) = [s for s in statements if "kms:Decrypt" in as_list(s["Action"])]
    assert kms["Condition"] == functions_kms["Condition"]
    assert all(resource != "*" for s in statements for resource in as_list(s["Resource"]))
    assert all("*" not in action for s in statements for action in as_list(s["Action"]))


def _references(node: Any) -> Iterator[str]:
    """Every resource name a part of the template refers to (Ref, GetAtt, ${...} in Sub)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                yield value
            elif key == "Fn::GetAtt":
                yield as_list(value)[0].split(".")[0]
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                yield from (ref.split(".")[0] for ref in re.findall(r"\$\{([^}]+)\}", text))
                if not isinstance(value, str):
                    yield from _references(value[1])
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def test_the_operator_policy_is_attached_to_nobody(template: dict[str, Any]) -> None:
    props = template["Resources"][OPERATOR_POLICY]["Properties"]

    assert not {"Roles", "Users", "Groups"} & set(props)
    referrers = [name for name, r in template["Resources"].items() if OPERATOR_POLICY in _references(r)]
    assert referrers == []
    assert [name for name, o in template["Outputs"].items() if OPERATOR_POLICY in _references(o)] == [
        "LedgerOperatorPolicyArn"
    ]


# Run with the SAM CLI's own Python: SAM's transform (samtranslator) is what turns each function's Policies into
# the role it deploys. The code has to be an S3 URI before the transform; `sam deploy` puts it there.
SAM_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

template = json.load(sys.stdin)
out = transform(template, {}, NoManagedPolicies())
print(json.dumps({name: r for name, r in out["Resources"].items() if r["Type"].startswith("AWS::IAM::")}))
"""


def test_after_sams_transform_no_role_carries_the_operator_policy(template: dict[str, Any]) -> None:
    sam = find_sam()
    assert sam, "SAM CLI not found: set SAM_CLI, or run scripts/test (it installs .venv-sam)"
    deployable = json.loads(json.dumps(template))
    for function in (FUNCTION, FOLLOW_UP):
        deployable["Resources"][function]["Properties"]["CodeUri"] = "s3://bucket/code.zip"

    result = subprocess.run(  # noqa: S603 - the SAM CLI's Python with a fixed script
        [str(Path(sam).parent / "python"), "-c", SAM_TRANSFORM],
        input=json.dumps(deployable),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    iam = json.loads(result.stdout)
    roles = {name: r["Properties"] for name, r in iam.items() if r["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {f"{FUNCTION}Role", f"{FOLLOW_UP}Role"}
    for name, role in roles.items():
        assert OPERATOR_POLICY not in json.dumps(role), name
        assert "by-status" not in json.dumps(role), name
    assert iam[OPERATOR_POLICY]["Properties"].keys() == {"Description", "PolicyDocument"}


@pytest.mark.parametrize("function", [FUNCTION, FOLLOW_UP])
def test_the_functions_policies_are_unchanged(template: dict[str, Any], function: str) -> None:
    props = template["Resources"][function]["Properties"]
    (policy,) = props["Policies"]

    assert set(policy) == {"Version", "Statement"}
    assert grants(policy["Statement"]) == FUNCTION_GRANTS[function]
    assert "by-status" not in json.dumps(props)
    assert not {"ManagedPolicyArns", "Role", "PermissionsBoundary"} & set(props)


# --- Outputs -----------------------------------------------------------------------------------------------


def test_the_stack_outputs_the_topic_the_dashboard_and_the_operator_policy(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]

    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert outputs["LedgerOperatorPolicyArn"]["Value"] == {"Ref": OPERATOR_POLICY}
    assert outputs["DashboardUrl"]["Value"] == {
        "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
        "#dashboards:name=${Dashboard}"
    }
    assert template["Resources"]["Dashboard"]["Properties"]["DashboardName"] == {"Fn::Sub": "${AWS::StackName}"}
