"""The API keeps its published contract: openapi.json is a valid OpenAPI 3 document, and
every response of every operation (successes and errors) is documented for its operation
and validates against the schema the document gives for it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.engine.helpers import (
    DEFAULT_PERFORMERS,
    drive_to_scoring,
    form_data,
    person_id,
    ready_task,
    start_application,
)
from tests.web.test_api import Api, api_complete_step
from web import create_app
from web.api.openapi import OPERATIONS

DOC_URI = "urn:certrail:openapi"


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def document(app) -> dict[str, Any]:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.json


class Contract:
    """Checks each response against the document and remembers which (operation, status)
    pairs were seen."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.registry = Registry().with_resource(
            DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in document["paths"]
        ]
        self.seen: set[tuple[str, str, int]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for pattern, template in self.routes:
            if pattern.match(path):
                operations = self.document["paths"][template]
                assert method.lower() in operations, f"{method} {template} is not documented"
                return template, operations[method.lower()]
        raise AssertionError(f"{path} matches no documented path")

    def response_schema(self, template: str, method: str, status: int) -> str:
        operation = self.document["paths"][template][method.lower()]
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {template} does not document status {status}"
        pointer = f"/paths/{template.replace('/', '~1')}/{method.lower()}/responses/{status}"
        if "$ref" in response:
            pointer = response["$ref"].removeprefix("#")
            response = self.resolve(pointer)
        assert "application/json" in response["content"]
        return f"{DOC_URI}#{pointer}/content/application~1json/schema"

    def resolve(self, pointer: str) -> Any:
        node: Any = self.document
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def check(self, method: str, path: str, response) -> None:
        path = path.split("?", 1)[0]
        template, _operation = self.operation(method, path)
        ref = self.response_schema(template, method, response.status_code)
        assert response.is_json, f"{method} {path} -> {response.status_code} is not JSON"
        validator = Draft202012Validator(
            {"$ref": ref}, registry=self.registry, format_checker=FormatChecker()
        )
        errors = sorted(validator.iter_errors(response.json), key=lambda e: list(e.path))
        assert not errors, f"{method} {path} -> {response.status_code}: " + "; ".join(
            f"{list(e.path)}: {e.message}" for e in errors
        )
        if response.status_code == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        self.seen.add((method.upper(), template, response.status_code))


class CheckedApi(Api):
    def __init__(self, client, engine, contract: Contract):
        super().__init__(client, engine)
        self.contract = contract

    def call(self, method: str, path: str, user: str | None = None, **kwargs):
        response = super().call(method, path, user, **kwargs)
        self.contract.check(method, path, response)
        return response


@pytest.fixture
def contract(document) -> Contract:
    return Contract(document)


@pytest.fixture
def api(app, engine, contract) -> CheckedApi:
    return CheckedApi(app.test_client(), engine, contract)


def test_openapi_document_is_valid_openapi_3(document):
    validate_openapi(document)
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "ctr_ token",
    }
    assert document["security"] == [{"bearerAuth": []}]


def test_every_route_of_the_blueprint_is_documented(app, document):
    routes = {
        (method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule.removeprefix("/api/v1")))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert routes == documented


def test_every_operation_documents_its_errors_and_security(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            public = operation.get("security") == []
            assert public or "401" in responses, f"{method} {path} lacks 401"
            if "{" in path:
                assert "404" in responses, f"{method} {path} lacks 404"
            if "requestBody" in operation:
                for status in ("400", "413", "415"):
                    assert status in responses, f"{method} {path} lacks {status}"
            for parameter in operation.get("parameters", []):
                assert parameter["in"] in ("path", "query") and "schema" in parameter
    public = {
        path
        for path, ops in document["paths"].items()
        for op in ops.values()
        if op.get("security") == []
    }
    assert public == {"/certificates/{number}", "/openapi.json"}


def test_responses_of_every_operation_match_the_document(api, engine, contract):
    # Unauthenticated and malformed requests.
    for method, path in (
        ("GET", "/tasks"),
        ("GET", "/tasks/1"),
        ("POST", "/tasks/1/claim"),
        ("POST", "/tasks/1/unclaim"),
        ("POST", "/tasks/1/complete"),
        ("POST", "/cases"),
        ("GET", "/cases"),
        ("GET", "/cases/1"),
        ("GET", "/cases/1/history"),
        ("GET", "/persons/1"),
        ("GET", "/schemes"),
    ):
        api.call(method, path)
    api.get("/openapi.json")
    api.get("/tasks?tab=nope", "clerk")
    api.get("/cases?page=0", "clerk")
    api.get("/schemes?per_page=x", "clerk")
    api.get("/cases/1/history?page=-3", "manager")
    api.post("/cases", "alice", data="x", content_type="text/plain")
    api.post("/cases", "alice", data="{", content_type="application/json")
    api.post("/cases", "alice", data="1" * 300_000, content_type="application/json")
    api.post("/cases", "alice", json={"process": "application", "scheme": "NOPE"})
    api.post("/cases", "reviewer", json={"process": "application"})
    api.post("/cases", "clerk", json={"process": "application", "person_id": 99999})

    # A whole application, through every task operation.
    started = api.post("/cases", "alice", json={"process": "application", "scheme": "CWI"})
    case_id = started.json["id"]
    api.post("/cases", "alice", json={"process": "application", "scheme": "CWI"})  # 409
    first = started.json["ready_tasks"][0]["id"]
    api.get(f"/tasks/{first}", "bob")
    api.post(f"/tasks/{first}/claim", "alice")
    api.post(f"/tasks/{first}/unclaim", "alice")
    api.post(f"/tasks/{first}/complete", "alice", data="x", content_type="text/plain")
    api.post(f"/tasks/{first}/complete", "alice", json={"data": {"nonsense": 1}})
    api.post(f"/tasks/{first}/complete", "alice", json={"data": 5})
    api.post(
        f"/tasks/{first}/complete", "alice", data="1" * 300_000, content_type="application/json"
    )
    api.post(f"/tasks/{first}/claim", "bob")
    api.post(f"/tasks/{first}/unclaim", "bob")
    api.post(f"/tasks/{first}/complete", "bob", json={"data": {}})
    api.get("/tasks", "alice")
    api_complete_step(api, case_id, "submit_application", "alice")
    api.post(f"/tasks/{first}/complete", "alice", json={"data": form_data(engine, "application")})
    api.post(f"/tasks/{first}/claim", "alice")
    api.post(f"/tasks/{first}/unclaim", "alice")
    for spec_id in (
        "check_completeness",
        "review_eligibility",
        "schedule_assessment",
    ):
        api_complete_step(api, case_id, spec_id, DEFAULT_PERFORMERS[spec_id])
    api_complete_step(api, case_id, "assign_examiner", "clerk", examiner="examiner")
    api_complete_step(api, case_id, "administer_exam", "invigilator")
    written = next(t for t in engine.ready_tasks(case_id) if t.task_spec_id == "score_written")
    api.post(f"/tasks/{written.id}/claim", "reviewer")
    api.post(f"/tasks/{written.id}/claim", "examiner")
    api.post(f"/tasks/{written.id}/unclaim", "examiner2")
    for spec_id in ("score_written", "score_practical", "review_file", "decide_certification"):
        api_complete_step(api, case_id, spec_id, DEFAULT_PERFORMERS[spec_id])

    for user in ("alice", "manager"):
        api.get(f"/cases/{case_id}", user)
        api.get(f"/cases/{case_id}/history", user)
        api.get("/cases?status=completed", user)
    api.get(f"/cases/{case_id}", "bob")
    api.get(f"/cases/{case_id}/history", "bob")
    for tab in ("assigned", "available", "completed"):
        api.get(f"/tasks?tab={tab}&overdue=false&sort=-age", "examiner")
    number = api.get(f"/cases/{case_id}", "alice").json["certificate"]["number"]
    api.get(f"/certificates/{number}")
    api.get("/certificates/CWI-1999-000001")
    api.get(f"/persons/{person_id(engine, 'alice')}", "alice")
    api.get(f"/persons/{person_id(engine, 'alice')}", "bob")
    api.get("/schemes", "alice")

    # A barred completion (403) on a task still open.
    other = start_application(engine, "bob", "DPO")
    drive_to_scoring(engine, other, "bob")
    score = ready_task(engine, other, "score_written")
    api.post(f"/tasks/{score.id}/complete", "reviewer", json={"data": {}})

    expected = {(op.method.upper(), op.path, op.ok) for op in OPERATIONS} | {
        (op.method.upper(), op.path, status) for op in OPERATIONS for status in op.errors
    }
    missing = sorted(expected - contract.seen)
    assert not missing, f"documented responses never exercised: {missing}"
