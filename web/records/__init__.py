"""Records pages: the public feedback form, feedback aggregates, records retention (legal
holds, disposal under four eyes) and the accreditation evidence pack.

    GET  /feedback/<token>                        records.feedback            public, single-use link
    POST /feedback/<token>                        records.give_feedback       public
    GET  /records/feedback?from=&to=              records.feedback_summary    manager, quality
    GET  /records/retention                       records.retention           manager, quality
    POST /records/retention/propose               records.propose             manager, quality
    POST /records/retention/<id>/approve          records.approve             another manager/quality
    POST /records/retention/<id>/withdraw         records.withdraw            manager, quality
    POST /records/retention/hold                  records.hold                manager, quality
    POST /records/retention/period                records.set_period          quality (scheme editor)
    GET  /records/evidence-pack                   records.evidence_pack       manager, quality
    GET  /records/evidence-pack.zip?from=&to=     records.evidence_pack_zip   manager, quality

The rules live in `engine.feedback`, `engine.retention` and `engine.evidence_pack`; this
module parses input, calls them and renders.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from engine.errors import CertrailError, ConflictError, NotFoundError, ValidationError
from engine.evidence_pack import build_pack, period_bounds
from engine.feedback import MAX_COMMENT, RATINGS, feedback_summary, open_invitation, submit_feedback
from engine.models import Case, Person, Scheme, User
from engine.retention import (
    MAX_RETENTION_MONTHS,
    SCHEME_EDITOR_ROLES,
    approve_disposal,
    due_for_disposal,
    held_cases,
    proposals,
    propose_disposal,
    set_legal_hold,
    set_retention_period,
    withdraw_disposal,
)

from ..auth import current_engine_user, engine, roles_required

bp = Blueprint("records", __name__, template_folder="../templates")

RECORDS_ROLES = ("manager", "quality_manager")
MAX_TOKEN = 100
MAX_PARAM = 40


# -- input helpers ---------------------------------------------------------------------------------


def _date_arg(name: str, default: date) -> date:
    value = request.args.get(name, "").strip()
    if not value:
        return default
    if len(value) > MAX_PARAM:
        abort(400, description=f"the parameter '{name}' is too long")
    try:
        return date.fromisoformat(value)
    except ValueError:
        abort(400, description=f"the parameter '{name}' must be a date (YYYY-MM-DD), not {value!r}")


def _period() -> tuple[date, date]:
    """The requested period, by default the last twelve months up to today."""
    today = engine().clock.now().date()
    start = _date_arg("from", today - timedelta(days=365))
    end = _date_arg("to", today)
    if end < start:
        abort(400, description="the parameter 'to' must be on or after 'from'")
    return start, end


def _whole_number(field: str, value: str, message: str, hint: str) -> int:
    # isdigit() alone also accepts digits such as "²" that int() refuses.
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise ValidationError(message, {field: [hint]})
    return int(value)


def _case_id(field: str = "case_id") -> int:
    value = request.form.get(field, "").strip().lstrip("#")
    return _whole_number(field, value, "enter a case number", "enter the case number, e.g. 42")


def _user(session) -> User:
    user = session.get(User, current_engine_user().id)
    if user is None:
        abort(403)
    return user


# -- the public feedback form ------------------------------------------------------------------------


def _feedback_page(token: str, values=None, errors=None, closed: str | None = None, status=200):
    return render_template(
        "records/feedback_form.html",
        token=token,
        ratings=RATINGS,
        max_comment=MAX_COMMENT,
        values=values or {},
        errors=errors or {},
        closed=closed,
    ), status


def _check_token(token: str) -> str | None:
    """Why the link cannot be answered (None: it can); unknown links are 404."""
    if len(token) > MAX_TOKEN:
        abort(404, description="this feedback link is not valid; check that it was copied whole")
    with engine().sessions() as session:
        try:
            open_invitation(session, token, engine().clock.now())
        except NotFoundError as unknown:
            abort(404, description=unknown.message)
        except ConflictError as closed:
            return closed.message
    return None


@bp.get("/feedback/<token>")
def feedback(token: str):
    closed = _check_token(token)
    if closed:
        return _feedback_page(token, closed=closed, status=410)
    return _feedback_page(token)


@bp.post("/feedback/<token>")
def give_feedback(token: str):
    closed = _check_token(token)
    if closed:
        return _feedback_page(token, closed=closed, status=410)
    values = {
        name: request.form.get(name, "")[: MAX_COMMENT + 1000] for name in (*RATINGS, "comment")
    }
    try:
        with engine().unit_of_work() as uow:
            submit_feedback(uow, token, values)
    except ValidationError as invalid:
        return _feedback_page(token, values, invalid.fields, status=422)
    except ConflictError as closed:
        return _feedback_page(token, closed=closed.message, status=410)
    return render_template("records/feedback_thanks.html")


# -- feedback aggregates --------------------------------------------------------------------------------


@bp.get("/records/feedback")
@roles_required(*RECORDS_ROLES)
def feedback_summary_page():
    start, end = _period()
    with engine().sessions() as session:
        summaries = feedback_summary(session, *period_bounds(start, end))
    return render_template(
        "records/feedback_summary.html", summaries=summaries, start=start, end=end
    )


# -- retention -------------------------------------------------------------------------------------------


def _retention_page(errors=None, values=None, status=200):
    now = engine().clock.now()
    with engine().sessions() as session:
        due = due_for_disposal(session, now)
        pending = proposals(session)
        held = held_cases(session)
        person_ids = {r.person_id for r in due} | {c.person_id for c in held}
        people = {
            p.id: p.full_name
            for p in session.scalars(select(Person).where(Person.id.in_(person_ids)))
        }
        case_ids = {p.case_id for p in pending}
        cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(case_ids)))}
        users = dict(session.execute(select(User.id, User.username)).all())
        schemes = {
            s.id: s for s in session.scalars(select(Scheme).order_by(Scheme.code, Scheme.version))
        }
        session.expunge_all()
    return render_template(
        "records/retention.html",
        due=due,
        pending=pending,
        held=held,
        people=people,
        cases=cases,
        users=users,
        schemes=schemes,
        me=current_engine_user().id,
        can_set_periods=bool(current_engine_user().role_names & SCHEME_EDITOR_ROLES),
        max_retention_months=MAX_RETENTION_MONTHS,
        errors=errors or {},
        values=values or {},
    ), status


@bp.get("/records/retention")
@roles_required(*RECORDS_ROLES)
def retention():
    return _retention_page()


def _act(action, success: str | Callable[[Any], str], values: dict | None = None):
    """Run one retention operation; refusals are shown on the page with their reason.
    `success` is the message, or makes it from what the operation returned."""
    try:
        with engine().unit_of_work() as uow:
            done = action(uow)
            message = success(done) if callable(success) else success
    except ValidationError as invalid:
        flash(f"Nothing was changed: {invalid.message}.", "error")
        return _retention_page(invalid.fields, values, status=422)
    except CertrailError as refused:
        flash(f"Nothing was changed: {refused.message}.", "error")
        return redirect(url_for("records.retention"), code=303)
    flash(message, "success")
    return redirect(url_for("records.retention"), code=303)


@bp.post("/records/retention/propose")
@roles_required(*RECORDS_ROLES)
def propose():
    values = {"case_id": request.form.get("case_id", "")[:20]}
    try:
        case_id = _case_id()
    except ValidationError as invalid:
        return _retention_page(invalid.fields, values, status=422)
    reason = request.form.get("reason", "")[:3000]
    return _act(
        lambda uow: propose_disposal(uow, case_id, _user(uow.session), reason),
        f"Disposal of the records of case {case_id} proposed; another quality manager or "
        "manager must approve it.",
        values,
    )


@bp.post("/records/retention/<int:disposal_id>/approve")
@roles_required(*RECORDS_ROLES)
def approve(disposal_id: int):
    return _act(
        lambda uow: approve_disposal(uow, disposal_id, _user(uow.session)),
        f"Disposal {disposal_id} approved and carried out.",
    )


def _named(invalid: ValidationError, engine_field: str, form_field: str) -> ValidationError:
    """The engine's refusal of `engine_field`, told about the page's form field for it."""
    return ValidationError(invalid.message, {form_field: invalid.fields.get(engine_field, [])})


@bp.post("/records/retention/<int:disposal_id>/withdraw")
@roles_required(*RECORDS_ROLES)
def withdraw(disposal_id: int):
    reason = request.form.get("reason", "")[:3000]
    values = {"withdraw_id": disposal_id, "withdraw_reason": reason}

    def withdraw_proposal(uow):
        try:
            withdraw_disposal(uow, disposal_id, _user(uow.session), reason)
        except ValidationError as invalid:
            # The page has other reason fields (the legal hold's): name this row's.
            raise _named(invalid, "reason", "withdraw_reason") from invalid

    return _act(
        withdraw_proposal,
        f"Disposal {disposal_id} withdrawn; its case is listed as due again.",
        values,
    )


@bp.post("/records/retention/hold")
@roles_required(*RECORDS_ROLES)
def hold():
    values = {"hold_case_id": request.form.get("case_id", "")[:20]}
    action = request.form.get("action", "place")
    if action not in ("place", "lift"):
        abort(400, description="the field 'action' must be 'place' or 'lift'")
    try:
        case_id = _case_id()
    except ValidationError as invalid:
        return _retention_page({"hold_case_id": invalid.fields["case_id"]}, values, status=422)
    reason = request.form.get("reason", "")[:3000]
    placed = action == "place"
    return _act(
        lambda uow: set_legal_hold(uow, case_id, _user(uow.session), placed, reason),
        f"Legal hold {'placed on' if placed else 'lifted from'} case {case_id}.",
        values,
    )


@bp.post("/records/retention/period")
@roles_required(*RECORDS_ROLES)
def set_period():
    """Set how long a scheme's records are kept; the engine allows it to scheme editors only,
    so a manager who is not a quality manager is refused with a message."""
    values = {
        "period_scheme_id": request.form.get("scheme_id", "").strip()[:20],
        "months": request.form.get("months", "").strip()[:20],
    }
    try:
        scheme_id = _whole_number(
            "scheme_id",
            values["period_scheme_id"],
            "choose a scheme",
            "choose a scheme from the table",
        )
        months = _whole_number(
            "months",
            values["months"],
            "enter the retention period in months",
            "enter the number of months as a whole number, e.g. 60",
        )
    except ValidationError as invalid:
        return _retention_page(invalid.fields, values, status=422)

    def set_months(uow):
        try:
            return set_retention_period(uow, scheme_id, _user(uow.session), months)
        except NotFoundError as unknown:
            # The scheme is picked from the table: an unknown one is bad input, not a refusal.
            raise ValidationError(
                unknown.message, {"scheme_id": ["choose a scheme from the table"]}
            ) from unknown
        except ValidationError as invalid:
            raise _named(invalid, "retention_months", "months") from invalid

    return _act(
        set_months,
        lambda scheme: (
            f"Records of {scheme.code} v{scheme.version} are now kept {months} months after a "
            "case ends."
        ),
        values,
    )


# -- the evidence pack -------------------------------------------------------------------------------


@bp.get("/records/evidence-pack")
@roles_required(*RECORDS_ROLES)
def evidence_pack():
    start, end = _period()
    return render_template("records/evidence_pack.html", start=start, end=end)


@bp.get("/records/evidence-pack.zip")
@roles_required(*RECORDS_ROLES)
def evidence_pack_zip():
    if not (request.args.get("from") and request.args.get("to")):
        # The pack is for a period the manager chooses: the form asks for it.
        return redirect(url_for("records.evidence_pack"), code=303)
    start, end = _period()
    pack = build_pack(engine(), start, end)
    filename = f"certrail-evidence-{start.isoformat()}-{end.isoformat()}.zip"
    return Response(
        pack,
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
