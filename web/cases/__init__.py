"""Case pages: the searchable case list (staff), its CSV export, one case in full, and
document downloads.

    GET /cases                 cases.index    staff; q, certificate, scheme, status, process, page
    GET /cases.csv             cases.export   the same filters, every matching case
    GET /cases/<id>            cases.detail   whoever may see the case (engine.case_views)
    POST /cases/<id>/incidents/<incident>/retry
                               cases.retry_incident  managers and admins: run a failed job again
    GET /documents/<id>        cases.document the same check on the document's case

A case the viewer may not see is "not found" (404), never "forbidden", so ids reveal nothing.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import login_required
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.case_search import (
    CaseFilters,
    case_extras,
    filter_choices,
    newest_cases,
    search_cases,
)
from engine.case_views import (
    can_view_case,
    case_detail,
    diagram_state,
    visible_case,
)
from engine.cases import starter_roles
from engine.certificate_views import certificate_histories
from engine.counting import COUNT_LIMIT
from engine.errors import ConflictError, NotFoundError
from engine.incidents import RETRY_ROLES
from engine.models import (
    Case,
    Document,
    Incident,
    ModelVersion,
)
from engine.models.cases import CASE_STATUSES
from engine.portal import lodge_appeal, lodge_complaint

from .. import forms_render
from ..auth import current_engine_user, engine, staff_required
from ..inbox import MAX_PARAM_LENGTH, _page_param

bp = Blueprint("cases", __name__, template_folder="../templates")

PER_PAGE = 25
EXPORT_LIMIT = 50_000
CSV_COLUMNS = (
    "case_id",
    "process",
    "status",
    "person",
    "scheme",
    "started_at",
    "ended_at",
    "open_tasks",
    "certificates",
)


# -- list ------------------------------------------------------------------------------------


def _text(name: str) -> str:
    value = request.args.get(name, "").strip()
    if len(value) > MAX_PARAM_LENGTH:
        abort(400, description=f"the parameter '{name}' is too long")
    return value


def _list_filters() -> CaseFilters:
    filters = CaseFilters(
        **{name: _text(name) for name in ("q", "certificate", "scheme", "status", "process")}
    )
    if filters.status and filters.status not in CASE_STATUSES:
        abort(400, description=f"the parameter 'status' must be one of: {', '.join(CASE_STATUSES)}")
    return filters


@bp.get("/cases")
@staff_required
def index():
    filters = _list_filters()
    page = _page_param()
    with engine().sessions() as session:
        found = search_cases(session, current_engine_user(), filters, page, PER_PAGE)
        tasks, certificates = case_extras(session, [r.id for r in found.rows])
        schemes, processes = filter_choices(session)
    query_args = {k: v for k, v in asdict(filters).items() if v}
    return render_template(
        "cases/index.html",
        found=found,
        rows=found.rows,
        count_limit=COUNT_LIMIT,
        filters=filters,
        query=query_args,
        tasks=tasks,
        certificates=certificates,
        schemes=schemes,
        processes=processes,
        statuses=CASE_STATUSES,
    )


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A value as a CSV cell that spreadsheet programs will not run as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


@bp.get("/cases.csv")
@staff_required
def export():
    filters = _list_filters()
    eng = engine()
    user = current_engine_user()

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        with eng.sessions() as session:
            rows = session.execute(newest_cases(user, filters, EXPORT_LIMIT)).all()
            for start in range(0, len(rows), 500):
                chunk = rows[start : start + 500]
                tasks, certificates = case_extras(session, [r.id for r in chunk])
                for r in chunk:
                    writer.writerow(
                        csv_cell(v)
                        for v in (
                            r.id,
                            r.process_id,
                            r.status,
                            f"{r.given_name} {r.family_name}" if r.given_name else "",
                            r.code or "",
                            r.started_at.isoformat(sep=" ", timespec="seconds"),
                            r.ended_at.isoformat(sep=" ", timespec="seconds") if r.ended_at else "",
                            "; ".join(tasks.get(r.id, [])),
                            "; ".join(certificates.get(r.id, [])),
                        )
                    )
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            if not rows:
                yield buffer.getvalue()

    stamp = eng.clock.now().strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="certrail-cases-{stamp}.csv"'},
    )


# -- one case --------------------------------------------------------------------------------


def _diagrams(session: Session, detail, now) -> list[dict[str, Any]]:
    """The case's top process diagram, then the called processes the case has tasks in, each
    with the element ids to mark (done, current, overdue)."""
    state = diagram_state(detail, now)
    process_of = {t.task_spec_id: t.process_id for t in detail.completed_tasks}
    process_of.update({t.task_spec_id: t.process_id for t in detail.ready_tasks})
    per_process: dict[str, dict[str, list[str]]] = defaultdict(
        lambda: {"completed": [], "current": [], "overdue": []}
    )
    for key, spec_ids in state.items():
        for spec_id in spec_ids:
            per_process[process_of.get(spec_id, detail.case.process_id)][key].append(spec_id)
    version_ids = {detail.case.process_id: detail.case.model_version_id}
    for process_id, version_id in (detail.case.subprocess_versions or {}).items():
        if process_id in per_process:
            version_ids[process_id] = version_id
    models = {
        m.id: m
        for m in session.scalars(
            select(ModelVersion).where(ModelVersion.id.in_(list(version_ids.values())))
        )
    }
    diagrams = []
    for process_id, version_id in version_ids.items():
        model = models.get(version_id)
        if model is None:
            continue
        diagrams.append(
            {
                "process_id": process_id,
                "name": model.name,
                "version": model.version,
                "top": process_id == detail.case.process_id,
                "markers": per_process.get(
                    process_id, {"completed": [], "current": [], "overdue": []}
                ),
            }
        )
    return diagrams


def _submitted_forms(session: Session, detail) -> list[dict[str, Any]]:
    forms = {task.id: engine().task_form(task, session) for task in detail.completed_tasks}
    result = []
    for task in sorted(detail.completed_tasks, key=lambda t: (t.completed_at, t.id)):
        form = forms[task.id]
        schema = form.schema if form is not None else {}
        props = schema.get("properties", {})
        rows = []
        for name, value in (task.submitted_data or {}).items():
            prop = props.get(name, {})
            rows.append(
                {
                    "label": prop.get("title") or name,
                    "value": forms_render.display_value(prop, value),
                    "document_id": value
                    if prop.get("x-widget") == "file" and isinstance(value, int)
                    else None,
                }
            )
        result.append(
            {
                "task": task,
                "by": detail.completed_by.get(task.completed_by_id, "—"),
                "title": schema.get("title") or task.name,
                "rows": rows,
            }
        )
    return result


@bp.get("/cases/<int:case_id>")
@login_required
def detail(case_id: int):
    eng = engine()
    now = eng.clock.now()
    user = current_engine_user()
    with eng.sessions() as session:
        found = case_detail(session, user, case_id)
        histories = certificate_histories(session, [c.id for c in found.certificates])
        diagrams = _diagrams(session, found, now)
        linked = {
            c.id: c
            for c in session.scalars(
                select(Case).where(Case.id.in_([case for _kind, case in found.links]))
            )
        }
        history_cases = {
            entry.case_id for entries in histories.values() for entry in entries if entry.case_id
        }
        return render_template(
            "cases/detail.html",
            d=found,
            case=found.case,
            now=now,
            diagrams=diagrams,
            markers={g["process_id"]: g["markers"] for g in diagrams},
            histories=histories,
            submitted=_submitted_forms(session, found),
            linked=linked,
            can_see_links={cid: can_view_case(session, user, cid) for cid in linked},
            history_links={
                cid: url_for("cases.detail", case_id=cid)
                if can_view_case(session, user, cid)
                else None
                for cid in history_cases
            },
            can_retry=bool(user.role_names & RETRY_ROLES),
            can_lodge=bool(user.role_names & starter_roles("complaint"))
            and found.case.process_id == "application",
        )


@bp.post("/cases/<int:case_id>/<any(appeal, complaint):kind>")
@staff_required
def lodge(case_id: int, kind: str):
    """Staff record an appeal or complaint about this case; the engine starts the procedure."""
    eng = engine()
    user = current_engine_user()
    text = request.form.get("text", "")
    with eng.unit_of_work() as uow:
        case = visible_case(uow.session, user, case_id)
        lodge_case = lodge_appeal if kind == "appeal" else lodge_complaint
        started = lodge_case(eng, uow, case, user, text)
        started_id = started.id
    flash(f"The {kind} was recorded as case #{started_id}.", "success")
    return redirect(url_for("cases.detail", case_id=started_id), code=303)


@bp.post("/cases/<int:case_id>/incidents/<int:incident_id>/retry")
@staff_required
def retry_incident(case_id: int, incident_id: int):
    """Run the failed job of an incident on this case again (the engine lets only managers
    and administrators); the outcome is flashed on the case page."""
    eng = engine()
    user = current_engine_user()
    with eng.sessions() as session:
        visible_case(session, user, case_id)
        incident = session.get(Incident, incident_id)
        if incident is None or incident.case_id != case_id:
            raise NotFoundError(f"case {case_id} has no incident {incident_id}")
        job = incident.job
    try:
        done = eng.retry_incident(incident_id, user.username)
    except ConflictError as refused:
        flash(f"Nothing was run: {refused.message}.", "error")
        return redirect(url_for("cases.detail", case_id=case_id), code=303)
    with eng.sessions() as session:
        failed_again = session.scalar(
            select(func.count()).where(
                Incident.case_id == case_id, Incident.job == job, Incident.status == "open"
            )
        )
    label = job.replace("_", " ")
    if failed_again:
        flash(f"The job {label} was run again and failed again: see Incidents.", "error")
    else:
        handled = sum(done.values())
        flash(
            f"Incident {incident_id} is resolved; the job {label} was run again "
            f"({handled} item{'s' if handled != 1 else ''} handled).",
            "success",
        )
    return redirect(url_for("cases.detail", case_id=case_id), code=303)


@bp.get("/documents/<int:document_id>")
@login_required
def document(document_id: int):
    user = current_engine_user()
    with engine().sessions() as session:
        found = session.get(Document, document_id)
        if found is None or not can_view_case(session, user, found.case_id):
            raise NotFoundError(f"document {document_id} does not exist or is not yours to see")
        content = found.content
        filename = found.filename
        content_type = found.content_type
    response = Response(content, mimetype=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response
