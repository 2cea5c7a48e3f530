"""The Powertools layer: powertools-layer.toml read, and a deploy's layer ARNs checked against it."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "powertools-layer.toml"
# A public Powertools layer version's ARN, whatever the release, runtime or architecture.
POWERTOOLS_LAYER = re.compile(r":layer:AWSLambdaPowertools")


@dataclass(frozen=True)
class LayerMapping:
    """Which version of Powertools' public layer carries `release` for `runtime` on `architecture`, by region."""

    release: str
    architecture: str
    runtime: str
    account: str
    name: str
    version: int
    regions: Mapping[str, int]

    def version_in(self, region: str) -> int:
        return self.regions.get(region, self.version)

    def arn(self, region: str, partition: str = "aws") -> str:
        return f"arn:{partition}:lambda:{region}:{self.account}:layer:{self.name}:{self.version_in(region)}"


def load_mapping(path: Path = MAPPING) -> LayerMapping:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return LayerMapping(
        release=str(data["release"]),
        architecture=str(data["architecture"]),
        runtime=str(data["runtime"]),
        account=str(data["account"]),
        name=str(data["name"]),
        version=int(data["version"]),
        regions={str(region): int(version) for region, version in (data.get("regions") or {}).items()},
    )


def _layer_subs(template: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, Fn::Sub text) of every Powertools layer ARN the template writes: the functions' Layers (Globals
    included) and any policy naming the layer version."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                text = value[0] if key == "Fn::Sub" and isinstance(value, list) else value
                if key == "Fn::Sub" and isinstance(text, str) and POWERTOOLS_LAYER.search(text):
                    yield where, text
                else:
                    yield from walk(value, f"{where}.{key}" if where else key)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                yield from walk(item, f"{where}[{index}]")

    yield from walk({k: template.get(k) for k in ("Globals", "Resources")}, "")


def _resolve(text: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def function_settings(template: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """{function: (runtime, architecture)} of every serverless function, Globals applied."""
    defaults = (template.get("Globals") or {}).get("Function") or {}
    found = {}
    for name, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            props = {**defaults, **(resource.get("Properties") or {})}
            found[name] = (str(props.get("Runtime")), str((props.get("Architectures") or ["x86_64"])[0]))
    return found


def layer_problems(
    mapping: LayerMapping,
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    region: str | None,
    pinned: str | None,
) -> list[str]:
    """Why a deploy of `template` with `parameters` (every parameter's value, defaults included) to `region` would
    not run the layer that carries the pinned release: each problem says what to change."""
    problems = []
    if pinned != mapping.release:
        problems.append(
            f"powertools-layer.toml says release {mapping.release}, requirements-dev.txt pins {pinned}: keep them equal"
        )
    for function, (runtime, architecture) in sorted(function_settings(template).items()):
        if (runtime, architecture) != (mapping.runtime, mapping.architecture):
            problems.append(
                f"{function} runs {runtime} on {architecture}, the layer in powertools-layer.toml is for"
                f" {mapping.runtime} on {mapping.architecture}"
            )
    subs = list(_layer_subs(template))
    if not subs:
        problems.append(f"the template names no Powertools layer ({mapping.name})")
    where_to = region or "us-east-1"
    values = {"AWS::Partition": "aws", "AWS::Region": where_to, **parameters}
    expected = mapping.arn(where_to)
    for where, text in subs:
        resolved = _resolve(text, values)
        if resolved == expected:
            continue
        setting = [name for name in re.findall(r"\$\{([^}.]+)\}$", text) if not name.startswith("AWS::")]
        fix = f": set {setting[0]}={mapping.version_in(where_to)}" if setting else ""
        problems.append(
            f"{where} is {resolved}, but the layer that carries Powertools {mapping.release} in {where_to} is"
            f" {expected} (powertools-layer.toml){fix}"
        )
    return problems


def layer_line(mapping: LayerMapping, region: str | None) -> str:
    """What a passing check says."""
    where = region or "no region set (sam deploy uses your AWS configuration's; checked as us-east-1)"
    exceptions = ", ".join(f"{r} {v}" for r, v in sorted(mapping.regions.items())) or "none known"
    return (
        f"layer {mapping.name}:{mapping.version_in(region or 'us-east-1')} carries Powertools {mapping.release}"
        f" ({where}; powertools-layer.toml: {mapping.version} everywhere but {exceptions})"
    )
