"""Reads template.yaml for tests, so that fixtures are built from the infrastructure they stand in for.

The reading itself lives in local/template.py, shared with the local stack; this module keeps the names the
tests import and the table name tests use.
"""

from __future__ import annotations

from typing import Any

from local.template import (
    FUNCTION,
    ROOT,
    TABLE,
    TEMPLATE,
    CloudFormationLoader,
    create_ledger_table,
    load_template,
    resource_properties,
)
from local.template import function_environment as _function_environment

__all__ = [
    "FUNCTION",
    "ROOT",
    "TABLE",
    "TEMPLATE",
    "TEST_TABLE_NAME",
    "CloudFormationLoader",
    "create_ledger_table",
    "function_environment",
    "load_template",
    "resource_properties",
]

# What a Ref to the ledger table stands for in tests (CloudFormation would generate a name).
TEST_TABLE_NAME = "ledger"


def function_environment(template: dict[str, Any] | None = None) -> dict[str, str]:
    """The function's environment as deployed with every parameter at its default."""
    return _function_environment(TEST_TABLE_NAME, template)
