"""The files `sam local` reads: events/env.local.json (--env-vars) and every event in events/ (-e).

SAM applies an --env-vars entry only to a variable the function declares in template.yaml and drops any other
without a word, so a key that is not declared would look configured and do nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from local.stack import DOCKER_HOST_NAME, SAM_LOCAL_AWS_PORT, SAM_LOCAL_DEVIN_PORT, SAM_LOCAL_PAGERDUTY_PORT, TABLE_NAME
from local.template import FUNCTION, function_routes
from tests.support.template import function_environment, load_template

EVENTS = Path(__file__).resolve().parents[1] / "events"
ENV_FILE = EVENTS / "env.local.json"
# events/ also holds env-vars files for sam local; everything else in it is an event.
EVENT_FILES = sorted(path for path in EVENTS.glob("*.json") if not path.name.startswith("env"))


def _env_file() -> dict[str, Any]:
    return json.loads(ENV_FILE.read_text(encoding="utf-8"))


def test_the_env_file_configures_only_the_function() -> None:
    document = _env_file()

    assert set(document) == {FUNCTION}
    assert FUNCTION in load_template()["Resources"]


def test_every_key_of_the_env_file_is_an_environment_variable_of_the_function() -> None:
    declared = set(function_environment())

    undeclared = set(_env_file()[FUNCTION]) - declared

    assert not undeclared, f"SAM would silently ignore {sorted(undeclared)}: template.yaml does not declare them"


def test_every_value_of_the_env_file_is_a_string() -> None:
    # SAM passes environment values as strings; a number or a null would not mean what it looks like.
    assert all(isinstance(value, str) for value in _env_file()[FUNCTION].values())


def test_the_env_file_points_the_container_at_the_local_stacks_fixed_ports() -> None:
    variables = _env_file()[FUNCTION]

    assert variables["DEVIN_API_BASE_URL"] == f"http://{DOCKER_HOST_NAME}:{SAM_LOCAL_DEVIN_PORT}"
    assert variables["TABLE_NAME"] == TABLE_NAME
    assert variables["SSM_PARAMETER_PREFIX"] == function_environment()["SSM_PARAMETER_PREFIX"]
    assert variables["AWS_ENDPOINT_URL"] == f"http://{DOCKER_HOST_NAME}:{SAM_LOCAL_AWS_PORT}"
    assert variables["PAGERDUTY_API_BASE_URL"] == f"http://{DOCKER_HOST_NAME}:{SAM_LOCAL_PAGERDUTY_PORT}"


def test_the_env_file_turns_the_age_check_off_for_the_fixed_date_samples() -> None:
    # The sample events carry fixed dates: judged by age, sam local invoke would answer every one "ignored".
    assert _env_file()[FUNCTION]["MAX_EVENT_AGE_HOURS"] == "0"


def test_events_has_event_files_besides_env_files() -> None:
    assert EVENT_FILES
    assert ENV_FILE not in EVENT_FILES


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda path: path.name)
def test_every_event_file_parses_as_an_http_api_v2_event_for_the_functions_route(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    event = APIGatewayProxyEventV2(raw)
    routes = {f"{method} {route}" for method, route in function_routes()}

    assert event.version == "2.0"
    assert event.route_key in routes
    assert f"{event.request_context.http.method} {event.raw_path}" == event.route_key
    assert event.request_context.route_key == event.route_key
    assert isinstance(raw["isBase64Encoded"], bool)
    assert isinstance(event.body, str)
    assert isinstance(event.decoded_body, str)
    assert all(name == name.lower() for name in event.headers)
    assert isinstance(event.request_context.time_epoch, int)
