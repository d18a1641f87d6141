"""The API's endpoints: each parses its request, calls the engine, and dumps a schema."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from flask import jsonify, request, url_for
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from sqlalchemy import func, select

from engine.case_search import CaseFilters, visible_cases_page
from engine.case_views import case_detail, visible_task
from engine.certificates import public_record
from engine.errors import NotFoundError
from engine.inbox import InboxFilters, inbox
from engine.models import Case, HumanTask, ModelVersion, Person, Scheme, User
from engine.people import visible_person

from . import api_user, bp, engine
from . import schemas as s
from .errors import ApiError, field_messages
from .openapi import openapi_document

ID = "int(min=1, max=2147483647)"
MAX_JSON_DEPTH = 32
CERTIFICATE_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,40}$")


# -- request parsing --------------------------------------------------------------------------


def query(schema: type[Schema]) -> dict[str, Any]:
    try:
        return schema().load(request.args.to_dict(flat=True))
    except SchemaError as exc:
        raise ApiError(400, "invalid query parameters", field_messages(exc.messages)) from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def body(schema: type[Schema]) -> dict[str, Any]:
    """The request's JSON object, loaded through `schema` (400 with `fields` if it fails)."""
    if request.mimetype != "application/json":
        raise ApiError(415, "send the body as JSON with Content-Type: application/json")
    raw = request.get_data(cache=True)  # 413 if it is over the limit
    try:
        document = json.loads(raw or b"null", parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise ApiError(400, "the body must be a JSON object", {"": ["must be a JSON object"]})
    if _depth(document) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return schema().load(document)
    except SchemaError as exc:
        raise ApiError(400, "invalid request body", field_messages(exc.messages)) from None


def dump(schema: type[Schema], value: Any, status: int = 200):
    response = jsonify(schema().dump(value))
    response.status_code = status
    return response


def page_of(items: list[Any], total: int, params: dict[str, Any]) -> dict[str, Any]:
    return {"items": items, "total": total, "page": params["page"], "per_page": params["per_page"]}


# -- shaping ----------------------------------------------------------------------------------


def task_view(task: HumanTask, user: User, now: datetime) -> dict[str, Any]:
    return {
        "id": task.id,
        "case_id": task.case_id,
        "task_spec_id": task.task_spec_id,
        "name": task.name,
        "role": task.role,
        "process_id": task.process_id,
        "status": task.status,
        "form": task.form,
        "instructions": task.instructions,
        "priority": task.priority,
        "assignee_id": task.assignee_id,
        "claimed_by_me": task.assignee_id is not None and task.assignee_id == user.id,
        # Which staff a step is reserved for is internal to the body.
        "candidates": list(task.candidates) if task.candidates and user.is_staff else None,
        "created_at": task.created_at,
        "due_at": task.due_at,
        "claimed_at": task.claimed_at,
        "completed_at": task.completed_at,
        "overdue": task.completed_at is None and task.due_at is not None and task.due_at < now,
    }


def case_view(case: Case, model: ModelVersion, person: Person | None, scheme: Scheme | None):
    return {
        "id": case.id,
        "process_id": case.process_id,
        "process_name": model.name,
        "model_version": model.version,
        "status": case.status,
        "person": {"id": person.id, "name": person.full_name} if person else None,
        "scheme": (
            {"code": scheme.code, "version": scheme.version, "name": scheme.name}
            if scheme
            else None
        ),
        "started_at": case.started_at,
        "ended_at": case.ended_at,
    }


def case_detail_view(case_id: int) -> dict[str, Any]:
    user = api_user()
    now = engine().clock.now()
    with engine().sessions() as session:
        detail = case_detail(session, user, case_id)
        view = case_view(detail.case, detail.model, detail.person, detail.scheme)
    certificate = detail.certificates[0] if detail.certificates else None
    view.update(
        error_message=detail.case.error_message if user.is_staff else None,
        ready_tasks=[task_view(t, user, now) for t in detail.ready_tasks],
        certificate=certificate,
    )
    return view


def _visible_task(task_id: int) -> None:
    """404 unless the caller may see the task (before anything is changed)."""
    with engine().sessions() as session:
        visible_task(session, api_user(), task_id)


# -- tasks ------------------------------------------------------------------------------------


@bp.get("/tasks")
def tasks():
    params = query(s.TaskQuerySchema)
    filters = InboxFilters(
        process=params.get("process"),
        scheme=params.get("scheme"),
        task=params.get("task"),
        overdue_only=params["overdue"],
    )
    with engine().sessions() as session:
        found = inbox(
            session,
            api_user(),
            engine().clock.now(),
            tab=params["tab"],
            filters=filters,
            sort=params["sort"],
            page=params["page"],
            per_page=params["per_page"],
        )
    items = [
        {
            "id": row.task_id,
            "case_id": row.case_id,
            "task_spec_id": row.task_spec_id,
            "name": row.task_name,
            "role": row.role,
            "process_id": row.process_id,
            "person_name": row.person_name,
            "scheme_code": row.scheme_code,
            "due_at": row.due_at,
            "created_at": row.created_at,
            "assignee_id": row.assignee_id,
            "completed_at": row.completed_at,
            "overdue": row.overdue,
        }
        for row in found.rows
    ]
    return dump(s.TaskPageSchema, page_of(items, found.total, params))


@bp.get(f"/tasks/<{ID}:task_id>")
def task(task_id: int):
    user = api_user()
    with engine().sessions() as session:
        found, _case = visible_task(session, user, task_id)
    view = task_view(found, user, engine().clock.now())
    form = engine().task_form(found)
    view["form_schema"] = form.schema if form is not None else None
    return dump(s.TaskDetailSchema, view)


@bp.post(f"/tasks/<{ID}:task_id>/claim")
def claim(task_id: int):
    _visible_task(task_id)
    claimed = engine().claim(task_id, api_user().username)
    return dump(s.TaskSchema, task_view(claimed, api_user(), engine().clock.now()))


@bp.post(f"/tasks/<{ID}:task_id>/unclaim")
def unclaim(task_id: int):
    _visible_task(task_id)
    released = engine().unclaim(task_id, api_user().username)
    return dump(s.TaskSchema, task_view(released, api_user(), engine().clock.now()))


@bp.post(f"/tasks/<{ID}:task_id>/complete")
def complete(task_id: int):
    data = body(s.CompleteTaskSchema)["data"]
    _visible_task(task_id)
    done = engine().complete(task_id, api_user().username, data)
    return dump(s.TaskSchema, task_view(done, api_user(), engine().clock.now()))


# -- cases ------------------------------------------------------------------------------------


@bp.post("/cases")
def start_case():
    user = api_user()
    params = body(s.StartCaseSchema)
    person_id = params.get("person_id", user.person_id)
    process = params["process"]
    if process == "application" and person_id is not None and person_id == user.person_id:
        # An applicant applying for themself: the portal's rules (one open application per
        # scheme) apply whichever way they apply.
        started = engine().apply_for_certification(user.username, params.get("scheme") or "")
    else:
        started = engine().start_case(
            process, actor=user.username, person_id=person_id, scheme_code=params.get("scheme")
        )
    response = dump(s.CaseDetailSchema, case_detail_view(started.case_id), 201)
    response.headers["Location"] = url_for("api.case", case_id=started.case_id)
    return response


@bp.get("/cases")
def cases():
    params = query(s.CaseQuerySchema)
    filters = CaseFilters(
        **{name: params.get(name) or "" for name in ("status", "process", "scheme")}
    )
    with engine().sessions() as session:
        rows, total = visible_cases_page(
            session, api_user(), filters, params["page"], params["per_page"]
        )
        items = [case_view(*row) for row in rows]
    return dump(s.CasePageSchema, page_of(items, total, params))


@bp.get(f"/cases/<{ID}:case_id>")
def case(case_id: int):
    return dump(s.CaseDetailSchema, case_detail_view(case_id))


@bp.get(f"/cases/<{ID}:case_id>/history")
def case_history(case_id: int):
    params = query(s.PageQuerySchema)
    user = api_user()
    with engine().sessions() as session:
        detail = case_detail(session, user, case_id)
    start = (params["page"] - 1) * params["per_page"]
    entries = [
        {
            "at": entry.at,
            "actor": entry.actor,
            "action": entry.action,
            "message": entry.message,
            "task_id": entry.task_id,
            "details": entry.after if user.is_staff else None,
        }
        for entry in detail.timeline[start : start + params["per_page"]]
    ]
    return dump(s.HistoryPageSchema, page_of(entries, len(detail.timeline), params))


# -- certificates, people, schemes ------------------------------------------------------------


@bp.get("/certificates/<number>")
def certificate(number: str):
    record = None
    if CERTIFICATE_NUMBER.match(number):
        with engine().sessions() as session:
            record = public_record(session, number)
    if record is None:
        raise NotFoundError(f"no certificate has the number '{number[:40]}'")
    return dump(s.CertificateRecordSchema, record)


@bp.get(f"/persons/<{ID}:person_id>")
def person(person_id: int):
    with engine().sessions() as session:
        found = visible_person(session, api_user(), person_id)
    return dump(s.PersonSchema, found)


@bp.get("/schemes")
def schemes():
    params = query(s.PageQuerySchema)
    active = Scheme.active.is_(True)
    with engine().sessions() as session:
        total = session.scalar(select(func.count()).select_from(Scheme).where(active))
        found = session.scalars(
            select(Scheme)
            .where(active)
            .order_by(Scheme.code, Scheme.id)
            .limit(params["per_page"])
            .offset((params["page"] - 1) * params["per_page"])
        ).all()
    return dump(s.SchemePageSchema, page_of(list(found), total or 0, params))


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
