"""Staff inbox and task pages.

    GET  /inbox                  inbox.index    tabs assigned | available | completed
    POST /tasks/<id>/claim       inbox.claim    redirect back with a flash
    POST /tasks/<id>/unclaim     inbox.unclaim  redirect back with a flash
    GET  /tasks/<id>             inbox.task     the task's form (staff and applicants)
    POST /tasks/<id>             inbox.task     complete the task

Status codes: claim/unclaim always redirect (303) back to where the button was, with the
outcome (or the engine's refusal) as a flash; unknown tasks are 404. The task page answers a
refused completion by showing the page again with the reason: 403 (not allowed), 409 (the task
or case changed: already completed, claimed by someone else meanwhile) or 422 (invalid data,
each message next to its field).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select

from engine import inbox as inbox_queries
from engine.case_views import task_refusals, visible_task
from engine.cases import complete_task, find_user
from engine.counting import COUNT_LIMIT
from engine.documents import attach_document
from engine.errors import ConflictError, PermissionDenied, ValidationError
from engine.models import Case, Document, HumanTask, Person, Scheme, User

from .. import forms_render
from ..auth import _safe_next, current_engine_user, engine, staff_required

bp = Blueprint("inbox", __name__, template_folder="../templates")

TAB_LABELS = {
    "assigned": "Assigned to me",
    "available": "Available to my roles",
    "completed": "Completed by me",
}
SORT_LABELS = {
    "due": "Due date, soonest first",
    "-due": "Due date, latest first",
    "age": "Oldest first",
    "-age": "Newest first",
}
PER_PAGE = 25
MAX_PARAM_LENGTH = 200


# -- inbox -----------------------------------------------------------------------------------


def _param(name: str) -> str:
    value = request.args.get(name, "").strip()
    if len(value) > MAX_PARAM_LENGTH:
        abort(400, description=f"the parameter '{name}' is too long")
    return value


def _date_param(name: str) -> datetime | None:
    value = _param(name)
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        abort(400, description=f"the parameter '{name}' must be a date (YYYY-MM-DD), not {value!r}")


def _page_param() -> int:
    value = _param("page") or "1"
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        abort(
            400, description=f"the parameter 'page' must be a positive whole number, not {value!r}"
        )
    return int(value)


def _inbox_arguments() -> dict[str, Any]:
    tab = _param("tab") or "assigned"
    if tab not in TAB_LABELS:
        abort(400, description=f"the parameter 'tab' must be one of: {', '.join(TAB_LABELS)}")
    sort = _param("sort") or "due"
    if sort not in SORT_LABELS:
        abort(400, description=f"the parameter 'sort' must be one of: {', '.join(SORT_LABELS)}")
    overdue = _param("overdue")
    if overdue not in ("", "0", "1", "on", "true"):
        abort(400, description="the parameter 'overdue' must be 1 or left out")
    filters = inbox_queries.InboxFilters(
        process=_param("process") or None,
        scheme=_param("scheme") or None,
        task=_param("task") or None,
        due_before=_date_param("due_before"),
        due_after=_date_param("due_after"),
        overdue_only=overdue in ("1", "on", "true"),
    )
    return {"tab": tab, "sort": sort, "filters": filters, "page": _page_param()}


def age_text(created_at: datetime, now: datetime) -> str:
    seconds = max(0, int((now - created_at).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


@bp.get("/inbox")
@staff_required
def index():
    args = _inbox_arguments()
    eng = engine()
    now = eng.clock.now()
    user = current_engine_user()
    with eng.sessions() as session:
        page = inbox_queries.inbox(
            session,
            user,
            now,
            tab=args["tab"],
            filters=args["filters"],
            sort=args["sort"],
            page=args["page"],
            per_page=PER_PAGE,
            count_limit=COUNT_LIMIT,
        )
        processes = inbox_queries.process_choices(session)
        tasks = inbox_queries.task_choices(session)
        schemes = list(session.scalars(select(Scheme.code).distinct().order_by(Scheme.code)))
    query = {
        k: v for k, v in request.args.items(multi=False) if k not in ("page", "tab") and v != ""
    }
    return render_template(
        "inbox/index.html",
        page=page,
        tabs=TAB_LABELS,
        sorts=SORT_LABELS,
        args=args,
        filters=args["filters"],
        processes=processes,
        task_names=tasks,
        schemes=schemes,
        query=query,
        now=now,
        age_text=age_text,
        me=user.id,
        count_limit=COUNT_LIMIT,
    )


# -- claim / unclaim -------------------------------------------------------------------------


def _back() -> str:
    return _safe_next(request.form.get("next")) or url_for("inbox.index")


def _task_name(task_id: int) -> str:
    """The task's name, if the user may see its case: a task on a case they may not see is
    "not found" (404), as on the task page and the API, so ids reveal nothing."""
    with engine().sessions() as session:
        task, _case = visible_task(session, current_engine_user(), task_id)
        return task.name


@bp.post("/tasks/<int:task_id>/claim")
@staff_required
def claim(task_id: int):
    name = _task_name(task_id)
    try:
        engine().claim(task_id, current_user.username)
    except (PermissionDenied, ConflictError) as refusal:
        flash(f"{name} was not claimed: {refusal.message}.", "error")
    else:
        flash(f"{name} claimed: it is now in your “Assigned to me” list.", "success")
    return redirect(_back(), code=303)


@bp.post("/tasks/<int:task_id>/unclaim")
@staff_required
def unclaim(task_id: int):
    name = _task_name(task_id)
    try:
        engine().unclaim(task_id, current_user.username)
    except (PermissionDenied, ConflictError) as refusal:
        flash(f"{name} was not released: {refusal.message}.", "error")
    else:
        flash(f"{name} released: others holding the role can take it now.", "success")
    return redirect(_back(), code=303)


# -- the task page ---------------------------------------------------------------------------


def _task_context(task_id: int) -> dict[str, Any]:
    """Everything the task page shows, read in one session."""
    eng = engine()
    user = current_engine_user()
    with eng.sessions() as session:
        task, case = visible_task(session, user, task_id)
        person = session.get(Person, case.person_id) if case.person_id else None
        scheme = session.get(Scheme, case.scheme_id) if case.scheme_id else None
        reasons = task_refusals(session, user, task, case, eng.clock.now())
        documents = list(
            session.query(Document.id, Document.filename, Document.size, Document.uploaded_at)
            .filter(Document.case_id == case.id)
            .order_by(Document.id)
        )
        assignee = session.get(User, task.assignee_id) if task.assignee_id else None
        completed_by = session.get(User, task.completed_by_id) if task.completed_by_id else None
        panel = _manager_panel(session, task, case, eng.clock.now())
        form = eng.task_form(task, session)
        session.expunge_all()
    return {
        "task": task,
        "case": case,
        "person": person,
        "scheme": scheme,
        "reasons": reasons,
        "documents": documents,
        "assignee": assignee,
        "completed_by": completed_by,
        "form": form,
        "panel": panel,
        "now": eng.clock.now(),
        "can_claim": current_user.is_staff
        and task.status == "ready"
        and task.assignee_id is None
        and not reasons,
        "can_release": current_user.is_staff
        and task.status == "ready"
        and task.assignee_id is not None
        and (task.assignee_id == current_user.user.id or current_user.has_role("manager", "admin")),
    }


def _manager_panel(session, task: HumanTask, case: Case, now: datetime) -> list | None:
    """For managers, who holds the task's role and may (or may not) do it."""
    if task.status != "ready" or task.role == "applicant" or not current_user.is_authenticated:
        return None
    if not current_user.has_role("manager", "admin") or not _has_endpoint("impartiality.assign"):
        return None
    from ..impartiality import manager_panel

    return manager_panel(session, task, case, now)


def _render_task(ctx: dict[str, Any], values=None, errors=None, status: int = 200):
    form = ctx["form"]
    task = ctx["task"]
    readonly = bool(ctx["reasons"])
    if values is None:
        if task.status == "completed":
            values = task.submitted_data or {}
        elif form is not None and not readonly and forms_render.prefill_keys(form.schema):
            values = forms_render.prefill_values(form.schema, engine().case_data(task.case_id))
        else:
            values = {}
    fields = forms_render.build_fields(form.schema, values, errors) if form else []
    submitted = []
    if task.status == "completed" and form is not None:
        props = form.schema.get("properties", {})
        for name, value in (task.submitted_data or {}).items():
            prop = props.get(name, {})
            submitted.append(
                (prop.get("title") or name, forms_render.display_value(prop, value), prop, value)
            )
    return render_template(
        "inbox/task.html",
        **ctx,
        fields=fields,
        form_html=forms_render.render_fields(fields, readonly=readonly) if form else "",
        general_errors=forms_render.form_errors(errors, form.schema) if form else [],
        readonly=readonly,
        multipart=form is not None and forms_render.has_file_fields(form.schema),
        submitted=submitted,
    ), status


@bp.route("/tasks/<int:task_id>", methods=["GET", "POST"])
@login_required
def task(task_id: int):
    ctx = _task_context(task_id)
    if request.method == "GET":
        return _render_task(ctx)

    form = ctx["form"]
    if form is not None:
        data, errors = forms_render.parse_submission(form.schema, request.form)
    else:
        data, errors = {}, {}
    values = forms_render.raw_values(form.schema, request.form) if form else {}
    if errors:
        # Show every problem at once: the engine's validator explains the other fields.
        try:
            form.validate(data)
        except ValidationError as invalid:
            for path, messages in invalid.fields.items():
                if path.split(".", 1)[0] not in errors:
                    errors[path] = messages
        flash("The form has errors: correct the fields marked below.", "error")
        return _render_task(ctx, values, errors, 422)

    try:
        if form is not None and forms_render.has_file_fields(form.schema):
            _complete_with_files(ctx, form.schema, data)
        else:
            engine().complete(task_id, current_user.username, data)
    except ValidationError as invalid:
        flash("The form has errors: correct the fields marked below.", "error")
        return _render_task(ctx, values, invalid.fields or {"": [invalid.message]}, 422)
    except (PermissionDenied, ConflictError) as refusal:
        status = 403 if isinstance(refusal, PermissionDenied) else 409
        flash(f"{ctx['task'].name} was not completed: {refusal.message}.", "error")
        return _render_task(_task_context(task_id), status=status)

    flash(f"{ctx['task'].name} completed", "success")
    if current_user.is_staff:
        return redirect(url_for("inbox.index"), code=303)
    return redirect(url_for("portal.index") if _has_endpoint("portal.index") else "/portal", 303)


def _has_endpoint(name: str) -> bool:
    from flask import current_app

    return name in current_app.view_functions


def _complete_with_files(ctx: dict[str, Any], schema: dict[str, Any], data: dict[str, Any]):
    """Store the uploaded files and complete the task in one unit of work: a refused
    completion keeps none of the files."""
    eng = engine()
    task_id = ctx["task"].id
    with eng.unit_of_work() as uow:
        user = find_user(uow, current_user.username)
        case = uow.session.get(Case, ctx["case"].id)
        file_errors: dict[str, list[str]] = {}
        for name, prop in schema.get("properties", {}).items():
            if prop.get("x-widget") != "file":
                continue
            upload = request.files.get(name)
            if upload is None or not upload.filename:
                continue
            try:
                document = attach_document(
                    uow,
                    case,
                    user,
                    upload.filename,
                    upload.mimetype or "",
                    upload.read(),
                    task_id=task_id,
                )
            except ValidationError as refused:
                file_errors[name] = [m for ms in refused.fields.values() for m in ms]
                continue
            data[name] = document.id
        if file_errors:
            raise ValidationError("a file was not accepted", file_errors)
        complete_task(eng, uow, task_id, user, data)
