"""Reads template.yaml, so that local runs and tests are built from the infrastructure they stand in for.

The local stack and the test fixtures both create the ledger table and the function's environment from here:
change the template and both follow, with nothing to keep in sync by hand.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

FUNCTION = "PagerDutyPostmortemFunction"
FOLLOW_UP = "FollowUpFunction"
TABLE = "LedgerTable"


class ParameterError(ValueError):
    """A parameter override that `sam deploy` would refuse; str() is one line naming the parameter and the rule."""


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...)."""


# CloudFormation reads `2010-09-09` as a string; YAML would make it a date.
CloudFormationLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)

    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # The short form is "Resource.Attribute"; the long form is a list.
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """Parses a CloudFormation/SAM template into plain dicts, intrinsics in their long form."""
    # CloudFormationLoader is a SafeLoader: no arbitrary objects.
    return yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506


def resource_properties(name: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    template = template if template is not None else load_template()
    return template["Resources"][name]["Properties"]


def create_ledger_table(dynamodb_client: Any, table_name: str) -> None:
    """Creates the ledger table (in moto) exactly as template.yaml declares it, TTL included."""
    props = resource_properties(TABLE)
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props["BillingMode"],
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    sse = props.get("SSESpecification")
    if sse:
        # CloudFormation spells the API's "Enabled" as "SSEEnabled".
        kwargs["SSESpecification"] = {("Enabled" if key == "SSEEnabled" else key): value for key, value in sse.items()}
    dynamodb_client.create_table(**kwargs)

    ttl = props["TimeToLiveSpecification"]
    dynamodb_client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]},
    )


def _function_settings(template: dict[str, Any], function: str = FUNCTION) -> dict[str, Any]:
    """The function's top-level properties over Globals.Function (enough for the scalar ones read here)."""
    return {**template.get("Globals", {}).get("Function", {}), **resource_properties(function, template)}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _refusal(declared: Mapping[str, Any], value: str) -> str | None:
    """Why CloudFormation would refuse `value` for a parameter declared as `declared`, or None."""
    constraint = declared.get("ConstraintDescription")
    if declared.get("Type") == "Number":
        number = _number(value)
        if number is None:
            return "must be a number (Type: Number)"
        allowed = declared.get("AllowedValues")
        if allowed is not None and number not in {float(v) for v in allowed}:
            return f"must be one of {', '.join(str(v) for v in allowed)} (AllowedValues)"
        if "MinValue" in declared and number < float(declared["MinValue"]):
            return f"must be at least {declared['MinValue']} (MinValue)"
        if "MaxValue" in declared and number > float(declared["MaxValue"]):
            return f"must be at most {declared['MaxValue']} (MaxValue)"
        return None
    allowed = declared.get("AllowedValues")
    if allowed is not None and value not in {str(v) for v in allowed}:
        return f"must be one of {', '.join(str(v) for v in allowed)} (AllowedValues)"
    if "MinLength" in declared and len(value) < int(declared["MinLength"]):
        return f"must be at least {declared['MinLength']} character(s) long (MinLength)"
    if "MaxLength" in declared and len(value) > int(declared["MaxLength"]):
        return f"must be at most {declared['MaxLength']} character(s) long (MaxLength)"
    pattern = declared.get("AllowedPattern")
    # CloudFormation matches the pattern against the whole value.
    if pattern is not None and re.fullmatch(pattern, value) is None:
        return f"{constraint or 'must match'} (AllowedPattern {pattern})"
    return None


def check_parameters(overrides: Mapping[str, str], template: dict[str, Any] | None = None) -> None:
    """Refuse, as `sam deploy --parameter-overrides` would, a name the template does not declare or a value its
    Type, AllowedValues, AllowedPattern, MinLength/MaxLength or MinValue/MaxValue do not allow."""
    template = template if template is not None else load_template()
    parameters = template.get("Parameters", {})
    for name, value in overrides.items():
        if name not in parameters:
            close = difflib.get_close_matches(name, sorted(parameters), n=1)
            hint = f"did you mean {close[0]}?" if close else f"it has {', '.join(sorted(parameters))}"
            raise ParameterError(f"template.yaml has no parameter {name!r} ({hint})")
        problem = _refusal(parameters[name], value)
        if problem is not None:
            raise ParameterError(f"parameter {name}={value!r} refused: {problem}")


def function_environment(
    table_name: str,
    template: dict[str, Any] | None = None,
    *,
    function: str = FUNCTION,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`function`'s environment as deployed with `parameters` (the others at their default), the table named
    `table_name`: Globals.Function's variables under the function's own, each Ref resolved as CloudFormation would.

    Raises ParameterError for an override that the template refuses."""
    template = template if template is not None else load_template()
    declared = template.get("Parameters", {})
    overrides = dict(parameters or {})
    check_parameters(overrides, template)
    variables = {
        **template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
        **resource_properties(function, template).get("Environment", {}).get("Variables", {}),
    }

    def resolve(name: str, value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            target = value["Ref"]
            if target in overrides:
                return overrides[target]
            if target in declared:
                return str(declared[target].get("Default", ""))
            if target == TABLE:
                return table_name
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"cannot resolve environment variable {name}={value!r} outside CloudFormation")

    return {name: resolve(name, value) for name, value in variables.items()}


@dataclass(frozen=True)
class FunctionConfig:
    """What the Lambda service is told about the function, beyond its environment."""

    code_dir: Path  # CodeUri, as an absolute path
    handler: str  # "module.function"
    runtime: str
    timeout_seconds: int
    memory_mb: int


def function_config(template: dict[str, Any] | None = None, function: str = FUNCTION) -> FunctionConfig:
    template = template if template is not None else load_template()
    settings = _function_settings(template, function)
    return FunctionConfig(
        code_dir=(ROOT / str(settings["CodeUri"])).resolve(),
        handler=str(settings["Handler"]),
        runtime=str(settings.get("Runtime", "")),
        # Lambda's own defaults when the template says nothing.
        timeout_seconds=int(settings.get("Timeout", 3)),
        memory_mb=int(settings.get("MemorySize", 128)),
    )


def function_routes(template: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(method, path) of every HttpApi event of the function: the routes API Gateway sends it."""
    template = template if template is not None else load_template()
    events = resource_properties(FUNCTION, template).get("Events", {})
    return [
        (str(event["Properties"]["Method"]).upper(), str(event["Properties"]["Path"]))
        for event in events.values()
        if event.get("Type") == "HttpApi"
    ]
