"""The REST API's documents: what each endpoint accepts and returns, as marshmallow schemas.

Request schemas validate query strings and bodies (a refusal is a 400 naming each field);
response schemas say exactly which attributes a client sees, so nothing internal (password
hashes, workflow state, lock versions) can leak. The OpenAPI document is generated from
these same classes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates

from engine.inbox import MAX_PER_PAGE, SORTS, TABS
from engine.models.cases import CASE_STATUSES
from engine.models.certificates import CERTIFICATE_STATUSES
from engine.models.tasks import TASK_STATUSES


class UtcDateTime(fields.DateTime):
    """The engine keeps naive UTC datetimes; clients get RFC 3339 with the offset."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class IsoDate(fields.Date):
    """A date, accepting one the engine already wrote as an ISO string."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, str):
            return value
        return super()._serialize(value, attr, obj, **kwargs)


MAX_PAGE = 100_000
MAX_ID = 2**31 - 1
# Identifiers clients pass (process, scheme, task ids): short, printable, no control characters.
IDENTIFIER = validate.Regexp(
    r"^[A-Za-z0-9_.\-]+$", error="must contain only letters, digits, _ . -"
)


def _identifier(max_length: int = 100, **kwargs) -> fields.String:
    return fields.String(
        validate=[validate.Length(min=1, max=max_length), IDENTIFIER],
        **kwargs,
    )


# -- errors ---------------------------------------------------------------------------------


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"description": "what went wrong, in words"})
    field_messages = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        data_key="fields",
        metadata={"description": "messages per offending field (a dotted path; '' is the whole)"},
    )


# -- requests -------------------------------------------------------------------------------


class QuerySchema(Schema):
    """Query strings: unknown parameters are ignored, known ones are checked."""

    class Meta:
        unknown = EXCLUDE


class PageQuerySchema(QuerySchema):
    page = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=MAX_PAGE), metadata={"example": 1}
    )
    per_page = fields.Integer(
        load_default=25, validate=validate.Range(min=1, max=MAX_PER_PAGE), metadata={"example": 25}
    )


class TaskQuerySchema(PageQuerySchema):
    tab = fields.String(
        load_default="assigned",
        validate=validate.OneOf(TABS),
        metadata={"description": "assigned to me, available to claim, or completed by me"},
    )
    process = _identifier(metadata={"description": "process id, e.g. application"})
    scheme = _identifier(40, metadata={"description": "scheme code, e.g. CWI"})
    task = _identifier(200, metadata={"description": "task (BPMN element) id"})
    overdue = fields.Boolean(load_default=False, metadata={"description": "only overdue tasks"})
    sort = fields.String(load_default="due", validate=validate.OneOf(list(SORTS)))


class CaseQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(CASE_STATUSES))
    process = _identifier(metadata={"description": "process id, e.g. application"})
    scheme = _identifier(40, metadata={"description": "scheme code, e.g. CWI"})


class StartCaseSchema(Schema):
    class Meta:
        unknown = RAISE

    process = _identifier(required=True, metadata={"example": "application"})
    scheme = _identifier(40, metadata={"example": "CWI"})
    person_id = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "the person the case is about (default: the caller's own)"},
    )


class CompleteTaskSchema(Schema):
    class Meta:
        unknown = RAISE

    data = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=200)),
        values=fields.Raw(allow_none=True),
        load_default=dict,
        metadata={"description": "the task's form data; checked against its form schema"},
    )

    @validates("data")
    def _not_too_many(self, value, **_kwargs):
        if len(value) > 500:
            raise ValidationError("too many fields")


# -- responses ------------------------------------------------------------------------------


def _nullable(field_class, *args, **kwargs):
    return field_class(*args, allow_none=True, required=True, **kwargs)


class PersonRefSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class SchemeRefSchema(Schema):
    code = fields.String(required=True)
    version = fields.String(required=True)
    name = fields.String(required=True)


class TaskListItemSchema(Schema):
    """One row of a task list (inbox)."""

    id = fields.Integer(required=True)
    case_id = fields.Integer(required=True)
    task_spec_id = fields.String(required=True, metadata={"description": "BPMN element id"})
    name = fields.String(required=True)
    role = fields.String(required=True)
    process_id = fields.String(required=True)
    person_name = _nullable(fields.String)
    scheme_code = _nullable(fields.String)
    due_at = _nullable(UtcDateTime)
    created_at = UtcDateTime(required=True)
    assignee_id = _nullable(fields.Integer)
    completed_at = _nullable(UtcDateTime)
    overdue = fields.Boolean(required=True)


class TaskSchema(Schema):
    id = fields.Integer(required=True)
    case_id = fields.Integer(required=True)
    task_spec_id = fields.String(required=True, metadata={"description": "BPMN element id"})
    name = fields.String(required=True)
    role = fields.String(required=True)
    process_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(TASK_STATUSES))
    form = _nullable(fields.String, metadata={"description": "name of the task's form"})
    instructions = _nullable(fields.String)
    priority = fields.Integer(required=True)
    assignee_id = _nullable(fields.Integer)
    claimed_by_me = fields.Boolean(required=True)
    candidates = _nullable(fields.List, fields.String())
    created_at = UtcDateTime(required=True)
    due_at = _nullable(UtcDateTime)
    claimed_at = _nullable(UtcDateTime)
    completed_at = _nullable(UtcDateTime)
    overdue = fields.Boolean(required=True)


class TaskDetailSchema(TaskSchema):
    form_schema = _nullable(
        fields.Dict,
        metadata={"description": "the JSON Schema (2020-12) that `data` must satisfy"},
    )


class CertificateSchema(Schema):
    number = fields.String(required=True, metadata={"example": "CWI-2026-000001"})
    scheme_code = fields.String(required=True)
    scheme_version = fields.String(required=True)
    scope = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(CERTIFICATE_STATUSES))
    issued_at = UtcDateTime(required=True)
    effective_on = fields.Date(required=True)
    expires_on = fields.Date(required=True)


class CertificateRecordSchema(Schema):
    """What anyone may learn about a certificate by its number (ISO/IEC 17024 7.2)."""

    number = fields.String(required=True)
    holder = fields.String(required=True)
    scheme = fields.String(required=True)
    scope = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(CERTIFICATE_STATUSES))
    issued_on = IsoDate(required=True)
    effective_on = IsoDate(required=True)
    expires_on = IsoDate(required=True)


class CaseSchema(Schema):
    id = fields.Integer(required=True)
    process_id = fields.String(required=True)
    process_name = fields.String(required=True)
    model_version = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(CASE_STATUSES))
    person = _nullable(fields.Nested, PersonRefSchema)
    scheme = _nullable(fields.Nested, SchemeRefSchema)
    started_at = UtcDateTime(required=True)
    ended_at = _nullable(UtcDateTime)


class CaseDetailSchema(CaseSchema):
    error_message = _nullable(fields.String, metadata={"description": "staff only"})
    ready_tasks = fields.List(fields.Nested(TaskSchema), required=True)
    certificate = _nullable(fields.Nested, CertificateSchema)


class HistoryEntrySchema(Schema):
    at = UtcDateTime(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    message = fields.String(required=True)
    task_id = _nullable(fields.Integer)
    details = _nullable(
        fields.Dict, metadata={"description": "what changed (staff only; null for applicants)"}
    )


class PersonSchema(Schema):
    id = fields.Integer(required=True)
    given_name = fields.String(required=True)
    family_name = fields.String(required=True)
    full_name = fields.String(required=True)
    email = fields.String(required=True)
    date_of_birth = _nullable(fields.Date)
    created_at = UtcDateTime(required=True)


class SchemeSchema(Schema):
    code = fields.String(required=True)
    version = fields.String(required=True)
    name = fields.String(required=True)
    scope = fields.String(required=True)
    prerequisites = fields.List(fields.String(), required=True)
    has_practical = fields.Boolean(required=True)
    pass_mark = fields.Integer(required=True)
    validity_months = fields.Integer(required=True)
    surveillance_months = fields.Integer(required=True)
    recertification = fields.Dict(required=True)


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """A list page of `item`s: `{"items": [...], "total", "page", "per_page"}`."""
    return type(
        name,
        (Schema,),
        {
            "items": fields.List(fields.Nested(item), required=True),
            "total": fields.Integer(required=True, validate=validate.Range(min=0)),
            "page": fields.Integer(required=True, validate=validate.Range(min=1)),
            "per_page": fields.Integer(required=True, validate=validate.Range(min=1)),
        },
    )


TaskPageSchema = page_schema(TaskListItemSchema, "TaskPageSchema")
CasePageSchema = page_schema(CaseSchema, "CasePageSchema")
HistoryPageSchema = page_schema(HistoryEntrySchema, "HistoryPageSchema")
SchemePageSchema = page_schema(SchemeSchema, "SchemePageSchema")
