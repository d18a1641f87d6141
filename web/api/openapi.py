"""The OpenAPI 3.1 document of `/api/v1`, generated with apispec from the marshmallow schemas.

`OPERATIONS` lists every route with its parameters, body and each response it can give, so
clients, fuzzers and the contract tests all read the same description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

from . import schemas as s

ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": s.MAX_ID}

COMPONENTS: dict[str, type[Schema]] = {
    "Error": s.ErrorSchema,
    "PersonRef": s.PersonRefSchema,
    "SchemeRef": s.SchemeRefSchema,
    "TaskListItem": s.TaskListItemSchema,
    "Task": s.TaskSchema,
    "TaskDetail": s.TaskDetailSchema,
    "Certificate": s.CertificateSchema,
    "CertificateRecord": s.CertificateRecordSchema,
    "Case": s.CaseSchema,
    "CaseDetail": s.CaseDetailSchema,
    "HistoryEntry": s.HistoryEntrySchema,
    "Person": s.PersonSchema,
    "Scheme": s.SchemeSchema,
    "TaskPage": s.TaskPageSchema,
    "CasePage": s.CasePageSchema,
    "HistoryPage": s.HistoryPageSchema,
    "SchemePage": s.SchemePageSchema,
    "StartCase": s.StartCaseSchema,
    "CompleteTask": s.CompleteTaskSchema,
}

ERRORS = {
    400: "The request is malformed: bad query parameters, invalid JSON or body fields",
    401: "No API token, or the token is invalid or revoked",
    403: "The caller may not do this; the error says why",
    404: "Not found, or not the caller's to see",
    409: "Conflict: the task or case changed first (e.g. already completed by someone)",
    413: "The body is too large",
    415: "The body is not JSON (Content-Type must be application/json)",
    422: "The data is invalid; `fields` names each offending field",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    ok: int
    response: type[Schema] | None
    errors: tuple[int, ...]
    query: type[Schema] | None = None
    body: type[Schema] | None = None
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    public: bool = False
    description: str = ""


TASK_ID = {"task_id": ID_SCHEMA}
CASE_ID = {"case_id": ID_SCHEMA}

OPERATIONS = [
    Operation(
        "get",
        "/tasks",
        "listTasks",
        "The caller's task list (inbox): assigned, available to claim, or completed",
        "tasks",
        200,
        s.TaskPageSchema,
        (400, 401),
        query=s.TaskQuerySchema,
    ),
    Operation(
        "get",
        "/tasks/{task_id}",
        "getTask",
        "A task with the JSON Schema of its form",
        "tasks",
        200,
        s.TaskDetailSchema,
        (401, 404),
        path_params=TASK_ID,
    ),
    Operation(
        "post",
        "/tasks/{task_id}/claim",
        "claimTask",
        "Claim a task (take it from the shared queue)",
        "tasks",
        200,
        s.TaskSchema,
        (401, 403, 404, 409),
        path_params=TASK_ID,
    ),
    Operation(
        "post",
        "/tasks/{task_id}/unclaim",
        "unclaimTask",
        "Release a claimed task back to the queue",
        "tasks",
        200,
        s.TaskSchema,
        (401, 403, 404, 409),
        path_params=TASK_ID,
    ),
    Operation(
        "post",
        "/tasks/{task_id}/complete",
        "completeTask",
        "Complete a task with its form data (validated like the page form)",
        "tasks",
        200,
        s.TaskSchema,
        (400, 401, 403, 404, 409, 413, 415, 422),
        body=s.CompleteTaskSchema,
        path_params=TASK_ID,
    ),
    Operation(
        "post",
        "/cases",
        "startCase",
        "Start a case (applicants: their own application; clerks and admins: for anyone)",
        "cases",
        201,
        s.CaseDetailSchema,
        (400, 401, 403, 404, 409, 413, 415, 422),
        body=s.StartCaseSchema,
    ),
    Operation(
        "get",
        "/cases",
        "listCases",
        "The cases the caller may see, newest first",
        "cases",
        200,
        s.CasePageSchema,
        (400, 401),
        query=s.CaseQuerySchema,
    ),
    Operation(
        "get",
        "/cases/{case_id}",
        "getCase",
        "A case: summary, ready tasks and its certificate",
        "cases",
        200,
        s.CaseDetailSchema,
        (401, 404),
        path_params=CASE_ID,
    ),
    Operation(
        "get",
        "/cases/{case_id}/history",
        "getCaseHistory",
        "A case's audit timeline, oldest first",
        "cases",
        200,
        s.HistoryPageSchema,
        (400, 401, 404),
        query=s.PageQuerySchema,
        path_params=CASE_ID,
    ),
    Operation(
        "get",
        "/certificates/{number}",
        "verifyCertificate",
        "Public verification of a certificate by its number (no token needed)",
        "certificates",
        200,
        s.CertificateRecordSchema,
        (404,),
        path_params={"number": {"type": "string", "minLength": 1, "maxLength": 40}},
        public=True,
    ),
    Operation(
        "get",
        "/persons/{person_id}",
        "getPerson",
        "A person's record (staff, or the person themself)",
        "persons",
        200,
        s.PersonSchema,
        (401, 404),
        path_params={"person_id": ID_SCHEMA},
    ),
    Operation(
        "get",
        "/schemes",
        "listSchemes",
        "The active certification schemes",
        "schemes",
        200,
        s.SchemePageSchema,
        (400, 401),
        query=s.PageQuerySchema,
    ),
    Operation(
        "get",
        "/openapi.json",
        "getOpenApi",
        "This document",
        "meta",
        200,
        None,
        (),
        public=True,
    ),
]


def _operation(op: Operation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"in": "path", "name": name, "required": True, "schema": schema}
        for name, schema in op.path_params.items()
    ]
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    ok_content = (
        {"application/json": {"schema": op.response}}
        if op.response is not None
        else {"application/json": {"schema": {"type": "object"}}}
    )
    responses: dict[str, Any] = {str(op.ok): {"description": "OK", "content": ok_content}}
    if op.ok == 201:
        responses["201"]["description"] = "Created"
        responses["201"]["headers"] = {
            "Location": {"description": "the new case", "schema": {"type": "string"}}
        }
    for status in op.errors:
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    result: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": op.body}},
        }
    if op.public:
        result["security"] = []
    return result


@cache
def openapi_document() -> dict[str, Any]:
    spec = APISpec(
        title="Certrail API",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "ISO/IEC 17024 certification workflows: tasks, cases, certificates. "
                "Authenticate with `Authorization: Bearer <token>` (`certrail tokens issue`). "
                'Errors are `{"error": ..., "fields": {...}}`.'
            )
        },
        servers=[{"url": "/api/v1"}],
        security=[{"bearerAuth": []}],
    )
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "ctr_ token"}
    )
    for name, schema in COMPONENTS.items():
        spec.components.schema(name, schema=schema)
    for status, description in ERRORS.items():
        response: dict[str, Any] = {
            "description": description,
            "content": {"application/json": {"schema": "Error"}},
        }
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {
                    "description": "Bearer challenge",
                    "schema": {"type": "string"},
                }
            }
        spec.components.response(f"E{status}", response)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    for tag in dict.fromkeys(op.tag for op in OPERATIONS):
        spec.tag({"name": tag})
    return spec.to_dict()
