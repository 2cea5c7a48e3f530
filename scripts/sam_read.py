"""What SAM CLI reads, worked out by SAM CLI's own code: run it with SAM CLI's Python (.venv-sam), never our own.

    .venv-sam/bin/python -m scripts.sam_read deploy-settings --template template.yaml samconfig.toml [MORE.toml…]
    .venv-sam/bin/python -m scripts.sam_read transform --region us-east-1 --parameters '{"Name": "value"}' PACKAGED
    .venv-sam/bin/python -m scripts.sam_read local-layers --region eu-central-2 --parameters '[{}]' template.yaml

deploy-settings: for every environment of each samconfig file, what `sam deploy --config-env ENV` would use
(parameter overrides, capabilities, stack name, region), from the deploy command's own option parsing, so a value
SAM splits at a space is seen split, as the deploy sends it. transform: the SAM transform (samtranslator, the
library SAM CLI and CloudFormation use) of a packaged template. local-layers: the layer ARNs `sam local invoke`
resolves for each function, for each set of parameter overrides given. Each prints JSON on stdout.

This module imports only the standard library at the top: it runs in a venv that has SAM CLI and nothing of ours.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any


def _environments(config_file: Path) -> list[str]:
    document = tomllib.loads(config_file.read_text(encoding="utf-8"))
    return [name for name, value in document.items() if isinstance(value, dict)]


def deploy_settings(config_file: Path, template: Path, environment: str) -> dict[str, Any]:
    """What `sam deploy --config-file FILE --config-env ENVIRONMENT` would deploy with, or {"error": why}."""
    import click
    from samcli.commands.deploy.command import cli

    # make_context runs every option's parsing and callbacks (the config file's included) and stops there: nothing
    # is packaged or deployed.
    args = ["--config-file", str(config_file), "--config-env", environment, "--template-file", str(template)]
    try:
        context = cli.make_context("deploy", args)
    except click.ClickException as error:
        return {"error": error.format_message()}
    except Exception as error:  # noqa: BLE001 - SAM's own config errors have no common base; report, do not crash
        return {"error": f"{type(error).__name__}: {error}"}
    params = context.params
    return {
        "parameter_overrides": {str(k): str(v) for k, v in (params.get("parameter_overrides") or {}).items()},
        "capabilities": list(params.get("capabilities") or []),
        "stack_name": params.get("stack_name"),
        # --region is not a parameter of the command: its callback keeps it on SAM's context object.
        "region": getattr(context.obj, "region", None),
    }


def transform(packaged: Path, parameters: dict[str, str], region: str) -> dict[str, Any]:
    import boto3
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform as sam_transform
    from samtranslator.yaml_helper import yaml_parse

    # The loader asks IAM for AWS managed policy ARNs only when a function names one; under the rehearsal
    # AWS_ENDPOINT_URL points it at moto.
    loader = ManagedPolicyLoader(boto3.client("iam", region_name=region))
    return sam_transform(yaml_parse(packaged.read_text(encoding="utf-8")), parameters, loader)


def local_layers(template: Path, parameters: dict[str, str], region: str) -> dict[str, list[str]]:
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(
        str(template), parameter_overrides=parameters, global_parameter_overrides={"AWS::Region": region}
    )
    provider = SamFunctionProvider(stacks)
    return {function.name: [layer.arn for layer in function.layers] for function in provider.get_all()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.sam_read", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    settings = commands.add_parser("deploy-settings")
    settings.add_argument("--template", type=Path, required=True)
    settings.add_argument("samconfig", type=Path, nargs="+")
    for name in ("transform", "local-layers"):
        command = commands.add_parser(name)
        command.add_argument("--region", required=True)
        command.add_argument("--parameters", type=json.loads, default={})
        command.add_argument("template", type=Path)
    args = parser.parse_args(argv)

    result: Any
    if args.command == "deploy-settings":
        result = {
            str(path): {env: deploy_settings(path, args.template, env) for env in _environments(path)}
            for path in args.samconfig
        }
    elif args.command == "transform":
        result = transform(args.template, args.parameters, args.region)
    else:
        result = [local_layers(args.template, parameters, args.region) for parameters in args.parameters]
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
