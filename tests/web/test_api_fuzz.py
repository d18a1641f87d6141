"""Hostile and random input against every API operation (schemathesis, from the published
openapi.json): no server error, and every response is documented for its operation and
matches its schema. Authenticated as a manager, who may call every operation."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from engine import Engine
from engine.accounts import issue_api_token
from tests.conftest import make_sql_engine
from tests.engine.helpers import start_application
from web import create_app

EXAMPLES_PER_OPERATION = 100  # x 12 operations: more than 1,000 generated requests per run
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def sqlite_engine(tmp_path, clock, demo_templates) -> Engine:
    """The fuzz run is long: once, on SQLite (the API code is the same on PostgreSQL)."""
    sql, drop = make_sql_engine("sqlite", tmp_path)
    demo_templates.copy_into("sqlite", sql, clock.now())
    yield Engine(sql_engine=sql, clock=clock)
    drop()


def test_no_operation_answers_random_input_with_a_server_error_or_an_undocumented_response(
    sqlite_engine,
):
    start_application(sqlite_engine, "alice", "CWI")  # something to find, claim and complete
    app = create_app({"ENGINE": sqlite_engine, "TESTING": True})
    with sqlite_engine.unit_of_work() as uow:
        headers = {"Authorization": f"Bearer {issue_api_token(uow, 'manager', 'fuzz')}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    calls: dict[str, int] = {}

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def fuzz(case):
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            case.call_and_validate(headers=headers, checks=CHECKS)

        fuzz()

    assert len(operations) == len(calls) >= 12
    assert sum(calls.values()) >= 1000, calls
