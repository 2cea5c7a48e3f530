"""Reads template.yaml, so that local runs and tests are built from the infrastructure they stand in for.

The local stack and the test fixtures both create the ledger table and the function's environment from here:
change the template and both follow, with nothing to keep in sync by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

FUNCTION = "PagerDutyPostmortemFunction"
TABLE = "LedgerTable"


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


def _function_settings(template: dict[str, Any]) -> dict[str, Any]:
    """The function's top-level properties over Globals.Function (enough for the scalar ones read here)."""
    return {**template.get("Globals", {}).get("Function", {}), **resource_properties(FUNCTION, template)}


def function_environment(table_name: str, template: dict[str, Any] | None = None) -> dict[str, str]:
    """The function's environment as deployed with every parameter at its default, the table named `table_name`."""
    template = template if template is not None else load_template()
    parameters = template.get("Parameters", {})
    variables = {
        **template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
        **resource_properties(FUNCTION, template).get("Environment", {}).get("Variables", {}),
    }

    def resolve(name: str, value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            target = value["Ref"]
            if target in parameters:
                return str(parameters[target].get("Default", ""))
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


def function_config(template: dict[str, Any] | None = None) -> FunctionConfig:
    template = template if template is not None else load_template()
    settings = _function_settings(template)
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
