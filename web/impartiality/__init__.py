"""Impartiality pages: my declarations and commitment, the register, eligibility per open
task, and the impartiality report.

    GET  /impartiality/declarations                 impartiality.declarations    any staff
    POST /impartiality/declarations                 impartiality.declare         declare my conflict
    POST /impartiality/declarations/<id>/end        impartiality.end             end one (never delete)
    POST /impartiality/commitment                   impartiality.sign            sign the commitment
    GET  /impartiality/register                     impartiality.register        manager, admin, quality
    POST /impartiality/register                     impartiality.record          manager, admin: on behalf
    GET  /impartiality/tasks                        impartiality.tasks           open tasks, who is eligible
    POST /impartiality/tasks/<id>/assign            impartiality.assign          manager, admin
    GET  /impartiality/report?from=&to=             impartiality.report          manager, admin, quality
    GET  /impartiality/report.csv?from=&to=         impartiality.report_csv

The rules live in `engine.impartiality`; this module parses input, calls the engine and
renders. Bad query parameters are 400; a refused form is shown again with its errors (422).
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from engine.cases import Refused
from engine.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from engine.impartiality import views
from engine.impartiality.candidates import candidates_for
from engine.impartiality.policy import current_policy
from engine.impartiality.register import declare_conflict, end_conflict, sign_commitment
from engine.impartiality.report import impartiality_report
from engine.impartiality.rules import CLAUSES, third_person
from engine.models import RELATIONSHIPS, Case, HumanTask, User

from ..auth import _safe_next, current_engine_user, engine, roles_required, staff_required

bp = Blueprint("impartiality", __name__, template_folder="../templates")

REGISTER_ROLES = ("manager", "admin", "quality_manager")
MANAGING_ROLES = ("manager", "admin")
MAX_PARAM = 200
MAX_NOTE = 2000
REPORT_COLUMNS = ("at", "kind", "actor", "case_id", "task_id", "rules", "detail")
TASKS_PAGE_LIMIT = 50


# -- input helpers ---------------------------------------------------------------------------


def _arg(name: str) -> str:
    value = request.args.get(name, "").strip()
    if len(value) > MAX_PARAM:
        abort(400, description=f"the parameter '{name}' is too long")
    return value


def _date_arg(name: str) -> date | None:
    value = _arg(name)
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        abort(400, description=f"the parameter '{name}' must be a date (YYYY-MM-DD), not {value!r}")


def _parse_date(value: str, field: str, errors: dict[str, list[str]]) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.setdefault(field, []).append("enter a date as YYYY-MM-DD")
        return None


def _today() -> date:
    return engine().clock.now().date()


def _user(session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return user


# -- the declaration form (mine, or on someone's behalf) --------------------------------------


def _read_declaration(session) -> tuple[dict[str, Any], dict[str, list[str]], list]:
    """The submitted declaration: values, errors by field, and people matching a search."""
    form = request.form
    values = {
        "person": form.get("person", "").strip()[:MAX_PARAM],
        "person_id": form.get("person_id", "").strip(),
        "relationship": form.get("relationship", "").strip(),
        "valid_from": form.get("valid_from", "").strip(),
        "valid_until": form.get("valid_until", "").strip(),
        "note": form.get("note", "").strip(),
        "staff": form.get("staff", "").strip(),
    }
    errors: dict[str, list[str]] = {}
    matches: list = []
    person_id = None
    if values["person_id"]:
        if not values["person_id"].isdigit():
            errors["person"] = ["choose one of the people listed"]
        else:
            person_id = int(values["person_id"])
    elif not values["person"]:
        errors["person"] = ["enter the person's name, e-mail or number"]
    else:
        matches = views.find_people(session, values["person"], limit=11)
        if not matches:
            errors["person"] = [f"nobody matches “{values['person']}”"]
        elif len(matches) > 1:
            errors["person"] = [
                f"{len(matches) if len(matches) <= 10 else 'more than 10'} people match: "
                "choose one below, or search more precisely"
            ]
            matches = matches[:10]
        else:
            person_id = matches[0].id
            matches = []
    values["resolved_person_id"] = person_id
    if values["relationship"] not in RELATIONSHIPS:
        errors["relationship"] = [f"choose one of: {', '.join(RELATIONSHIPS)}"]
    valid_from = _parse_date(values["valid_from"], "valid_from", errors)
    if valid_from is None and "valid_from" not in errors:
        errors["valid_from"] = ["enter the date the relationship began (or today)"]
    values["from_date"] = valid_from
    values["until_date"] = _parse_date(values["valid_until"], "valid_until", errors)
    if len(values["note"]) > MAX_NOTE:
        errors["note"] = [f"keep the note under {MAX_NOTE} characters"]
    return values, errors, matches


def _declare(actor_id: int, staff_id: int, values: dict[str, Any]) -> None:
    with engine().unit_of_work() as uow:
        actor = _user(uow.session, actor_id)
        staff = _user(uow.session, staff_id)
        declare_conflict(
            uow,
            actor,
            staff,
            values["resolved_person_id"],
            values["relationship"],
            values["from_date"],
            values["until_date"],
            values["note"],
        )


def _merge(errors: dict[str, list[str]], invalid: ValidationError) -> None:
    for field, messages in (invalid.fields or {"": [invalid.message]}).items():
        key = {"person_id": "person"}.get(field, field)
        errors.setdefault(key, []).extend(messages)


# -- my declarations and commitment ----------------------------------------------------------


def _my_page(values=None, errors=None, matches=None, sign_error=None, status=200):
    user = current_engine_user()
    today = _today()
    with engine().sessions() as session:
        rows = views.declarations(session, today, staff_user_id=user.id)
        latest = views.latest_commitment(session, user.id)
        session.expunge_all()
    version, paragraphs = views.commitment_text()
    policy = current_policy()
    return render_template(
        "impartiality/declarations.html",
        active=[r for r in rows if r.status_on(today) in ("active", "future")],
        ended=[r for r in rows if r.status_on(today) in ("ended", "expired")],
        today=today,
        commitment=latest,
        commitment_status=views.CommitmentStatus(user, latest, today).status,
        text_version=version,
        paragraphs=paragraphs,
        validity_months=policy.commitment_validity_months,
        relationships=RELATIONSHIPS,
        values=values or {"valid_from": today.isoformat()},
        errors=errors or {},
        matches=matches or [],
        sign_error=sign_error,
    ), status


@bp.get("/impartiality/declarations")
@staff_required
def declarations():
    return _my_page()


@bp.post("/impartiality/declarations")
@staff_required
def declare():
    user = current_engine_user()
    with engine().sessions() as session:
        values, errors, matches = _read_declaration(session)
        session.expunge_all()
    if not errors:
        try:
            _declare(user.id, user.id, values)
        except ValidationError as invalid:
            _merge(errors, invalid)
    if errors:
        flash("The declaration was not recorded: correct the fields marked below.", "error")
        return _my_page(values, errors, matches, status=422)
    flash("Your declaration is recorded. You will not be offered this person's tasks.", "success")
    return redirect(url_for("impartiality.declarations"), code=303)


@bp.post("/impartiality/declarations/<int:declaration_id>/end")
@staff_required
def end(declaration_id: int):
    user = current_engine_user()
    try:
        with engine().unit_of_work() as uow:
            end_conflict(uow, _user(uow.session, user.id), declaration_id)
    except PermissionDenied as refusal:
        flash(f"The declaration was not ended: {refusal.message}.", "error")
    else:
        flash(f"Declaration {declaration_id} ended; it stays in the register.", "success")
    back = _safe_next(request.form.get("next")) or url_for("impartiality.declarations")
    return redirect(back, code=303)


@bp.post("/impartiality/commitment")
@staff_required
def sign():
    user = current_engine_user()
    version, _ = views.commitment_text()
    if request.form.get("confirm") != "yes":
        flash("The commitment was not signed.", "error")
        return _my_page(
            sign_error="tick the box to confirm you have read and accept the commitment",
            status=422,
        )
    if request.form.get("text_version", version) != version:
        flash("The commitment text changed while you were reading it: read it again.", "error")
        return _my_page(status=409)
    with engine().unit_of_work() as uow:
        staff = _user(uow.session, user.id)
        commitment = sign_commitment(uow, staff, staff)
        expires = commitment.expires_on
    flash(f"Commitment signed; it is valid until {expires:%d %b %Y}.", "success")
    return redirect(url_for("impartiality.declarations"), code=303)


# -- the register (managers) -----------------------------------------------------------------


def _register_filters() -> dict[str, Any]:
    active = _arg("active")
    if active not in ("", "1", "0"):
        abort(400, description="the parameter 'active' must be 1, 0 or left out")
    return {"staff": _arg("staff"), "person": _arg("person"), "active": active}


def _register_page(values=None, errors=None, matches=None, status=200):
    filters = _register_filters()
    today = _today()
    with engine().sessions() as session:
        staff = views.staff_users(session)
        staff_id = None
        if filters["staff"]:
            found = [u for u in staff if u.username == filters["staff"]]
            if not found:
                abort(400, description=f"there is no active staff member '{filters['staff']}'")
            staff_id = found[0].id
        person = filters["person"]
        rows = views.declarations(
            session,
            today,
            staff_user_id=staff_id,
            person_id=int(person.lstrip("#")) if person.lstrip("#").isdigit() else None,
            person_query=None if person.lstrip("#").isdigit() else (person or None),
            active={"1": True, "0": False}.get(filters["active"]),
        )
        commitments = views.commitments_overview(session, today)
        flagged = views.flagged_tasks(session)
        session.expunge_all()
    return render_template(
        "impartiality/register.html",
        rows=rows,
        filters=filters,
        staff=staff,
        today=today,
        commitments=commitments,
        missing=[c for c in commitments if c.status in ("missing", "expired")],
        flagged=flagged,
        relationships=RELATIONSHIPS,
        can_record=_is_manager(),
        values=values or {"valid_from": today.isoformat()},
        errors=errors or {},
        matches=matches or [],
    ), status


def _is_manager() -> bool:
    from flask_login import current_user

    return current_user.has_role(*MANAGING_ROLES)


@bp.get("/impartiality/register")
@roles_required(*REGISTER_ROLES)
def register():
    return _register_page()


@bp.post("/impartiality/register")
@roles_required(*MANAGING_ROLES)
def record():
    actor = current_engine_user()
    with engine().sessions() as session:
        values, errors, matches = _read_declaration(session)
        staff = None
        if values["staff"]:
            staff = session.scalars(select(User).where(User.username == values["staff"])).first()
        if staff is None or not staff.is_staff:
            errors["staff"] = ["choose the staff member the declaration is about"]
        staff_id = staff.id if staff is not None else None
        session.expunge_all()
    if not errors:
        try:
            _declare(actor.id, staff_id, values)
        except ValidationError as invalid:
            _merge(errors, invalid)
    if errors:
        flash("The declaration was not recorded: correct the fields marked below.", "error")
        return _register_page(values, errors, matches, status=422)
    flash(f"Declaration recorded on behalf of {values['staff']}.", "success")
    return redirect(url_for("impartiality.register"), code=303)


# -- eligibility per open task ---------------------------------------------------------------


def manager_panel(session, task: HumanTask, case: Case, now: datetime) -> list[dict[str, Any]]:
    """Every holder of the task's role: eligible or barred (reasons in the third person)."""
    rows = []
    for candidate in candidates_for(session, task, case, now):
        name = candidate.user.display_name
        rows.append(
            {
                "username": candidate.user.username,
                "name": name,
                "eligible": candidate.eligible,
                "open_tasks": candidate.open_tasks,
                "is_assignee": task.assignee_id == candidate.user.id,
                "external": candidate.user.is_external,
                "bars": [
                    {"rule": bar.rule, "reason": third_person(bar.reason, name)}
                    for bar in candidate.bars
                ],
            }
        )
    return rows


@bp.get("/impartiality/tasks")
@roles_required(*REGISTER_ROLES)
def tasks():
    flagged_only = _arg("flagged")
    if flagged_only not in ("", "1"):
        abort(400, description="the parameter 'flagged' must be 1 or left out")
    role = _arg("role")
    eng = engine()
    now = eng.clock.now()
    with eng.sessions() as session:
        roles = views.staff_roles_in_use(session)
        if role and role not in roles:
            abort(400, description=f"no open task needs the role '{role}'")
        rows = views.open_staff_tasks(
            session, flagged_only=flagged_only == "1", role=role or None, limit=TASKS_PAGE_LIMIT
        )
        panels = {row.task.id: manager_panel(session, row.task, row.case, now) for row in rows}
        session.expunge_all()
    return render_template(
        "impartiality/tasks.html",
        rows=rows,
        panels=panels,
        roles=roles,
        role=role,
        flagged_only=flagged_only == "1",
        limit=TASKS_PAGE_LIMIT,
        can_assign=_is_manager(),
        now=now,
    )


@bp.post("/impartiality/tasks/<int:task_id>/assign")
@roles_required(*MANAGING_ROLES)
def assign(task_id: int):
    eng = engine()
    manager = current_engine_user()
    username = request.form.get("assignee", "").strip()
    back = _safe_next(request.form.get("next")) or url_for("inbox.task", task_id=task_id)
    with eng.sessions() as session:
        task = session.get(HumanTask, task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} does not exist")
        name = task.name
        assignee = session.scalars(select(User).where(User.username == username)).first()
        display = assignee.display_name if assignee else username
    if not username or assignee is None:
        flash(f"{name} was not assigned: choose a staff member.", "error")
        return redirect(back, code=303)
    try:
        eng.assign(task_id, manager.username, username)
    except Refused as refused:
        reasons = "; ".join(third_person(r.reason, display) for r in refused.refusals)
        flash(f"{name} was not assigned to {display}: {reasons}", "error")
    except (PermissionDenied, ConflictError) as refusal:
        flash(f"{name} was not assigned to {display}: {refusal.message}.", "error")
    else:
        flash(f"{name} assigned to {display}.", "success")
    return redirect(back, code=303)


# -- the impartiality report -----------------------------------------------------------------


def _period() -> tuple[date, date]:
    today = _today()
    start = _date_arg("from") or today - timedelta(days=30)
    end = _date_arg("to") or today
    if end < start:
        abort(400, description="the period ends before it starts: 'to' must not be before 'from'")
    if (end - start).days > 3660:
        abort(400, description="the period is too long: at most ten years")
    return start, end


def _report_lines(start: date, end: date):
    with engine().sessions() as session:
        return impartiality_report(
            session,
            datetime.combine(start, datetime.min.time()),
            datetime.combine(end + timedelta(days=1), datetime.min.time()),
        )


@bp.get("/impartiality/report")
@roles_required(*REGISTER_ROLES)
def report():
    start, end = _period()
    lines = _report_lines(start, end)
    counts: dict[str, int] = {}
    for line in lines:
        counts[line.kind] = counts.get(line.kind, 0) + 1
    return render_template(
        "impartiality/report.html",
        lines=lines,
        counts=counts,
        start=start,
        end=end,
        clauses=CLAUSES,
    )


@bp.get("/impartiality/report.csv")
@roles_required(*REGISTER_ROLES)
def report_csv():
    start, end = _period()
    lines = _report_lines(start, end)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for line in lines:
        writer.writerow({k: _csv_safe(v) for k, v in line.as_row().items()})
    filename = f"impartiality-report-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in free text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
