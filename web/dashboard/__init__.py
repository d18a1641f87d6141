"""The manager's dashboard: overdue and soon-due steps, where they pile up, overdue work per
week, certificates expiring soon, and one-click reassignment to an eligible colleague.

    GET  /dashboard                          dashboard.index   manager, admin, quality manager
    GET  /dashboard.csv                      dashboard.export  the same filters, every step
    POST /dashboard/tasks/<id>/assign        dashboard.assign  manager, admin
    POST /dashboard/incidents/<id>/retry     dashboard.retry_incident  manager, admin

Query parameters (both GET routes): process, scheme, assignee (a username or `unassigned`),
task (a step id), window (both | overdue | due_soon), days (due soon = within this many
days, 1-90, default 7), sort, page, horizon (expiring certificates: 30 | 60 | 90). A value
that makes no sense is a 400 naming the parameter (`engine.dashboard.InvalidFilter`).

The queries live in `engine.dashboard`; who may take a step is `engine.impartiality`'s to
say: the reassign list offers only the eligible holders of the step's role, and the engine
checks the rules again when the form is posted (a refusal is a 403 with the reason).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
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
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from engine import dashboard as board
from engine.cases import Refused
from engine.errors import ConflictError, PermissionDenied
from engine.impartiality.candidates import candidates_for
from engine.impartiality.rules import third_person
from engine.impartiality.views import staff_users
from engine.incidents import open_incident_rows
from engine.models import Case, HumanTask, User

from ..auth import _safe_next, engine, roles_required

bp = Blueprint("dashboard", __name__, template_folder="../templates")

VIEW_ROLES = ("manager", "admin", "quality_manager")
# Only these may give a task to someone else (the engine refuses anyone else too).
ASSIGNING_ROLES = ("manager", "admin")
EXPORT_LIMIT = 50_000
CSV_COLUMNS = (
    "task_id",
    "case_id",
    "process",
    "task",
    "task_name",
    "role",
    "assignee",
    "assignee_name",
    "person",
    "scheme",
    "due_at",
    "days_overdue",
    "overdue",
    "certificate",
    "certificate_expires_on",
)
SORT_LABELS = {
    "overdue": "Most overdue first",
    "-overdue": "Due last first",
    "expiry": "Certificate expiry",
    "person": "Person",
    "assignee": "Assignee",
    "case": "Case number",
}
PARAMETERS = (
    "process",
    "scheme",
    "assignee",
    "task",
    "window",
    "days",
    "sort",
    "page",
    "per_page",
    "horizon",
)
WINDOW_LABELS = {"both": "Overdue and due soon", "overdue": "Overdue", "due_soon": "Due soon"}
CHART = {"width": 640, "height": 200, "top": 16, "bottom": 34, "left": 36, "gap": 10}
# Bar heights are scaled to the biggest week, rounded up to a tick that reads well.
NICE_STEPS = (2, 5, 10)


def _query() -> board.DashboardQuery:
    return board.parse_query(request.args)


def _can_assign() -> bool:
    return current_user.has_role(*ASSIGNING_ROLES)


# -- the page ----------------------------------------------------------------------------------


@bp.get("/dashboard")
@roles_required(*VIEW_ROLES)
def index():
    query = _query()
    eng = engine()
    now = eng.clock.now()
    can_assign = _can_assign()
    with eng.sessions() as session:
        found = board.dashboard(session, now, query)
        processes = board.process_choices(session)
        schemes = board.scheme_choices(session)
        staff = [(u.username, u.display_name) for u in staff_users(session)]
        eligible = _eligible_staff(session, found.rows, now) if can_assign else {}
        incidents = open_incident_rows(session)
    steps = [(t.key, t.label) for t in found.counts.by_step]
    if query.filters.task and query.filters.task not in {key for key, _ in steps}:
        steps.append((query.filters.task, query.filters.task))
    return render_template(
        "dashboard/index.html",
        board=found,
        query=query,
        filters=query.filters,
        processes=processes,
        watched=board.PRIORITY_PROCESSES,
        schemes=schemes,
        staff=staff,
        steps=steps,
        eligible=eligible,
        can_assign=can_assign,
        incidents=incidents,
        sorts=SORT_LABELS,
        windows=WINDOW_LABELS,
        horizons=board.EXPIRY_HORIZONS,
        chart=overdue_chart(found.weeks),
        link=_link,
        unassigned=board.UNASSIGNED,
    )


def _current_parameters() -> dict[str, str]:
    """The dashboard's own parameters of this request (nothing else is carried over)."""
    return {k: v for k, v in request.args.items() if k in PARAMETERS and v != ""}


def _link(endpoint: str = "dashboard.index", **changes: Any) -> str:
    """This page (or the CSV) with some parameters changed (None drops one); back to page 1
    unless a page is given."""
    args = _current_parameters()
    args.pop("page", None)
    for key, value in changes.items():
        if value is None or value == "":
            args.pop(key, None)
        else:
            args[key] = value
    return url_for(endpoint, **args)


def _eligible_staff(
    session: Session, rows: list[board.StepRow], now: datetime
) -> dict[int, list[dict[str, Any]]]:
    """For each staff step on the page, the holders of its role who may take it (the
    impartiality rules' own answer, as in the manager's eligibility panel), fewest open
    tasks first. Steps that wait for the applicant cannot be given to staff."""
    staff_rows = [r for r in rows if r.role != "applicant"]
    if not staff_rows:
        return {}
    tasks = {
        t.id: t
        for t in session.scalars(
            select(HumanTask).where(HumanTask.id.in_([r.task_id for r in staff_rows]))
        )
    }
    cases = {
        c.id: c
        for c in session.scalars(
            select(Case)
            .options(defer(Case.state))
            .where(Case.id.in_({r.case_id for r in staff_rows}))
        )
    }
    eligible = {}
    for row in staff_rows:
        task, case = tasks.get(row.task_id), cases.get(row.case_id)
        if task is None or case is None:
            continue
        eligible[row.task_id] = [
            {
                "username": c.user.username,
                "name": c.user.display_name,
                "open_tasks": c.open_tasks,
                "is_assignee": c.user.id == task.assignee_id,
            }
            for c in candidates_for(session, task, case, now)
            if c.eligible
        ]
    return eligible


def overdue_chart(weeks: list[board.OverdueWeek]) -> dict[str, Any]:
    """Geometry of the overdue-per-week bar chart (drawn as inline SVG by the template)."""
    width, height = CHART["width"], CHART["height"]
    plot_height = height - CHART["top"] - CHART["bottom"]
    biggest = max((w.overdue for w in weeks), default=0)
    scale_max = _nice_ceiling(biggest)
    slot = (width - CHART["left"]) / max(1, len(weeks))
    bars = []
    for i, week in enumerate(weeks):
        bar_height = round(plot_height * week.overdue / scale_max, 1) if scale_max else 0
        bars.append(
            {
                "x": round(CHART["left"] + i * slot + CHART["gap"] / 2, 1),
                "width": round(slot - CHART["gap"], 1),
                "y": round(CHART["top"] + plot_height - bar_height, 1),
                "height": bar_height,
                "centre": round(CHART["left"] + i * slot + slot / 2, 1),
                "value": week.overdue,
                "label": f"W{week.week:02d}",
                "title": f"{week.label} (from {week.starts_on:%d %b %Y}): {week.overdue} overdue",
            }
        )
    baseline = CHART["top"] + plot_height
    ticks = [
        {
            "value": v,
            "y": round(baseline - plot_height * v / scale_max, 1) if scale_max else baseline,
        }
        for v in ((0, scale_max // 2, scale_max) if scale_max else (0,))
    ]
    return {
        "width": width,
        "height": height,
        "left": CHART["left"],
        "baseline": baseline,
        "label_y": height - CHART["bottom"] + 16,
        "bars": bars,
        "ticks": ticks,
        "total": sum(w.overdue for w in weeks),
    }


def _nice_ceiling(value: int) -> int:
    """The smallest of 2, 5, 10, 20, 50, 100, ... that is at least `value` (0 for nothing)."""
    if value <= 0:
        return 0
    magnitude = 1
    while True:
        for step in NICE_STEPS:
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


# -- CSV export --------------------------------------------------------------------------------


def _csv_text(value: str | None) -> str:
    """Free text as a CSV cell that spreadsheet programs will not run as a formula."""
    text = value or ""
    if text.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + text
    return text


def _csv_row(row: board.StepRow) -> list[Any]:
    return [
        row.task_id,
        row.case_id,
        row.process,
        row.task_spec_id,
        _csv_text(row.task_name),
        row.role,
        row.assignee_username or "",
        _csv_text(row.assignee_name),
        _csv_text(row.person_name),
        _csv_text(row.scheme_code),
        row.due_at.isoformat(sep=" ", timespec="seconds"),
        row.days_overdue,
        "yes" if row.overdue else "no",
        _csv_text(row.certificate_number),
        row.certificate_expires_on.isoformat() if row.certificate_expires_on else "",
    ]


@bp.get("/dashboard.csv")
@roles_required(*VIEW_ROLES)
def export():
    query = _query()
    eng = engine()
    now = eng.clock.now()
    with eng.sessions() as session:
        board.check_filters(session, query.filters)

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        with eng.sessions() as session:
            steps = board.all_steps(session, now, query.filters, query.sort, EXPORT_LIMIT)
            for n, row in enumerate(steps, 1):
                writer.writerow(_csv_row(row))
                if n % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    filename = f"overdue-steps-{now:%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- reassign ----------------------------------------------------------------------------------


@bp.post("/dashboard/tasks/<int:task_id>/assign")
@roles_required(*ASSIGNING_ROLES)
def assign(task_id: int):
    username = request.form.get("assignee", "").strip()
    if not username or len(username) > 64:
        abort(400, description="the field 'assignee' must name the staff member to assign")
    eng = engine()
    with eng.sessions() as session:
        assignee = session.scalars(select(User).where(User.username == username)).first()
        display = assignee.display_name if assignee is not None else None
    if display is None:
        abort(400, description=f"the field 'assignee' names nobody: there is no user {username!r}")
    try:
        task = eng.assign(task_id, current_user.username, username)
    except Refused as refused:
        reasons = "; ".join(third_person(r.reason, display) for r in refused.refusals)
        raise PermissionDenied(f"the step was not assigned to {display}: {reasons}") from None
    flash(f"{task.name} (case #{task.case_id}) is now assigned to {display}.", "success")
    return redirect(_safe_next(request.form.get("next")) or url_for("dashboard.index"), code=303)


# -- incidents ---------------------------------------------------------------------------------


@bp.post("/dashboard/incidents/<int:incident_id>/retry")
@roles_required(*ASSIGNING_ROLES)
def retry_incident(incident_id: int):
    """Run a failed job again for its case or certificate (the engine resolves the
    incident; a new one is recorded if the job fails again)."""
    try:
        done = engine().retry_incident(incident_id, current_user.username)
    except ConflictError as exc:
        flash(exc.message, "warning")
    else:
        flash(
            "Retried: "
            + ", ".join(f"{job.replace('_', ' ')} handled {n}" for job, n in done.items()),
            "success",
        )
    return redirect(url_for("dashboard.index") + "#incidents", code=303)
