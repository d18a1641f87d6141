"""The applicant portal: registration, the applicant's cases in plain words, applying for a
scheme, documents, appeals and complaints, and the printable certificate (with its history
below it, and for staff the cases about it and the request for a suspension decision).

Applicants do their own tasks (the application form, more evidence) on the shared task page
at /tasks/<id>. Every rule (who may apply, upload, appeal or see a certificate) is the
engine's; this module only turns requests into engine calls and results into pages.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.exceptions import RequestEntityTooLarge

from engine.case_views import can_view_case, case_detail
from engine.cases import find_user
from engine.certificate_views import certificate_cases, certificate_histories, status_since
from engine.certificates import certificate_for_viewer, public_record
from engine.documents import ALLOWED_TYPES, MAX_DOCUMENT_BYTES, attach_document
from engine.errors import ConflictError, ValidationError
from engine.lifecycle import OPEN_CASE_STATUSES, SUSPENSION_REQUESTERS
from engine.models import Scheme
from engine.models.certificates import HELD_STATUSES
from engine.people import MIN_PASSWORD, registration_problems
from engine.portal import (
    applicant_cases,
    available_schemes,
    lodge_appeal,
    lodge_complaint,
    own_case,
    progress_phrase,
)

from ..auth import current_engine_user, engine, start_session

bp = Blueprint("portal", __name__, template_folder="../templates")

REGISTRATION_FIELDS = ("given_name", "family_name", "email", "password", "password_confirm")


def applicant_required(view: Callable) -> Callable:
    """The portal is for people with a person record (applicants, certified persons)."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any):
        if current_user.person_id is None:
            abort(403, description="the portal is for applicants; staff use the inbox")
        return view(*args, **kwargs)

    return wrapper


# -- registration -----------------------------------------------------------------------


@bp.route("/register", methods=["GET", "POST"])
def register():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("home"))
    values = {name: request.form.get(name, "") for name in ("given_name", "family_name", "email")}
    errors: dict[str, list[str]] = {}
    if request.method == "GET":
        return render_template(
            "portal/register.html", values=values, errors=errors, min_password=MIN_PASSWORD
        )
    password = request.form.get("password", "")
    confirm = request.form.get("password_confirm", "")
    errors = registration_problems(
        values["given_name"], values["family_name"], values["email"], password
    )
    if not confirm:
        errors["password_confirm"] = ["Repeat your password"]
    elif password != confirm:
        errors["password_confirm"] = ["The two passwords are not the same"]
    if not errors:
        try:
            user = engine().register_applicant(
                values["given_name"], values["family_name"], values["email"], password
            )
        except ValidationError as invalid:
            errors = invalid.fields
        except ConflictError as taken:
            errors = {"email": [_sentence(taken.message)]}
    if errors:
        return render_template(
            "portal/register.html", values=values, errors=errors, min_password=MIN_PASSWORD
        ), 422
    start_session(user)
    flash(
        "Welcome to Certrail. Your account is ready: choose a certification to apply for.",
        "success",
    )
    return redirect(url_for("portal.index"), 303)


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:]


# -- the applicant's home ---------------------------------------------------------------


@bp.get("/portal")
@applicant_required
def index():
    with engine().sessions() as session:
        cases = applicant_cases(session, current_engine_user())
        schemes = available_schemes(session)
    open_for = {c.scheme_name for c in cases if c.status in ("running", "errored")}
    return render_template("portal/index.html", cases=cases, schemes=schemes, open_for=open_for)


@bp.post("/portal/apply")
@applicant_required
def apply():
    code = request.form.get("scheme", "").strip()
    if not code:
        flash("Choose the certification you want to apply for.", "error")
        return redirect(url_for("portal.index"), 303)
    try:
        started = engine().apply_for_certification(current_user.username, code)
    except (ConflictError, ValidationError) as refused:
        details = [m for ms in getattr(refused, "fields", {}).values() for m in ms]
        reason = "; ".join([refused.message, *details])
        flash(f"Your application was not started: {reason}.", "error")
        return redirect(url_for("portal.index"), 303)
    flash("Your application has been opened. Fill in the application form to submit it.", "success")
    return redirect(url_for("portal.case", case_id=started.case_id), 303)


# -- one case -----------------------------------------------------------------------------


def _case_page(case_id: int, errors: dict[str, list[str]] | None = None, status: int = 200):
    user = current_engine_user()
    with engine().sessions() as session:
        case = own_case(session, user, case_id)
        detail = case_detail(session, user, case.id)
        progress = progress_phrase(
            case,
            detail.ready_tasks,
            detail.certificates[0] if detail.certificates else None,
        )
    my_tasks = [t for t in detail.ready_tasks if t.role == "applicant"]
    return render_template(
        "portal/case.html",
        detail=detail,
        case=detail.case,
        progress=progress,
        my_tasks=my_tasks,
        errors=errors or {},
        allowed_types=", ".join(ext for exts in ALLOWED_TYPES.values() for ext in exts),
        max_mb=MAX_DOCUMENT_BYTES // (1024 * 1024),
    ), status


@bp.get("/portal/cases/<int:case_id>")
@applicant_required
def case(case_id: int):
    return _case_page(case_id)


@bp.post("/portal/cases/<int:case_id>/documents")
@applicant_required
def upload_document(case_id: int):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _case_page(case_id, {"file": ["Choose a file to upload"]}, 422)
    content = upload.stream.read(MAX_DOCUMENT_BYTES + 1)
    eng = engine()
    try:
        with eng.unit_of_work() as uow:
            user = find_user(uow, current_user.username)
            case = own_case(uow.session, user, case_id)
            document = attach_document(
                uow, case, user, upload.filename, upload.mimetype or "", content
            )
            name = document.filename
    except ValidationError as refused:
        return _case_page(case_id, refused.fields or {"file": [refused.message]}, 422)
    flash(f"{name} was added to your case.", "success")
    return redirect(url_for("portal.case", case_id=case_id), 303)


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(error):
    """Bodies over the app's MAX_CONTENT_LENGTH are cut off before the view (even before the
    CSRF check reads the form): explain it next to the upload field of the case page."""
    message = (
        f"The file is too large: documents may be up to {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB"
    )
    case_id = (request.view_args or {}).get("case_id")
    if (
        request.endpoint == "portal.upload_document"
        and current_user.is_authenticated
        and current_user.person_id is not None
        and case_id
    ):
        return _case_page(case_id, {"file": [message]}, 413)
    from .. import error_response

    return error_response(413, message)


# -- appeals and complaints ---------------------------------------------------------------


@bp.route("/portal/cases/<int:case_id>/appeal", methods=["GET", "POST"])
@applicant_required
def appeal(case_id: int):
    eng = engine()
    with eng.sessions() as session:
        case = own_case(session, current_engine_user(), case_id)
        scheme = session.get(Scheme, case.scheme_id) if case.scheme_id else None
    text = request.form.get("text", "")
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            with eng.unit_of_work() as uow:
                user = find_user(uow, current_user.username)
                lodge_appeal(eng, uow, own_case(uow.session, user, case_id), user, text)
                at = uow.now
        except ValidationError as invalid:
            errors = invalid.fields or {"text": [invalid.message]}
        except ConflictError as refused:
            errors = {"text": [_sentence(refused.message)]}
        else:
            return render_template(
                "portal/lodged.html", kind="appeal", case=case, scheme=scheme, at=at
            )
    return render_template(
        "portal/statement.html",
        kind="appeal",
        case=case,
        scheme=scheme,
        cases=None,
        text=text,
        errors=errors,
    ), (422 if errors else 200)


@bp.route("/portal/complaint", methods=["GET", "POST"])
@applicant_required
def complaint():
    eng = engine()
    user = current_engine_user()
    with eng.sessions() as session:
        cases = applicant_cases(session, user)
    text = request.form.get("text", "")
    chosen = request.form.get("case_id", "") or request.args.get("case", "")
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        if not chosen.isdigit():
            errors["case_id"] = ["Choose the case your complaint is about"]
        else:
            try:
                with eng.unit_of_work() as uow:
                    user = find_user(uow, current_user.username)
                    case = own_case(uow.session, user, int(chosen))
                    lodge_complaint(eng, uow, case, user, text)
                    at = uow.now
            except ValidationError as invalid:
                errors = invalid.fields or {"text": [invalid.message]}
            else:
                return render_template(
                    "portal/lodged.html", kind="complaint", case=case, scheme=None, at=at
                )
    return render_template(
        "portal/statement.html",
        kind="complaint",
        case=None,
        scheme=None,
        cases=cases,
        chosen=chosen,
        text=text,
        errors=errors,
    ), (422 if errors else 200)


# -- the printable certificate -----------------------------------------------------------


MAX_NUMBER_LENGTH = 40


@bp.get("/certificates/<number>")
@login_required
def certificate(number: str):
    return _certificate_page(number)


@bp.post("/certificates/<number>/suspension-request")
@login_required
def request_suspension(number: str):
    """Staff ask a decision maker to decide on suspending, reducing or withdrawing the
    certificate; the engine decides who may ask, and opens the suspension case."""
    if len(number) > MAX_NUMBER_LENGTH:
        abort(404)
    reasons = request.form.get("reasons", "")
    try:
        case_id = engine().request_suspension(number, current_user.username, reasons)
    except ValidationError as invalid:
        errors = {
            name: [_sentence(m) for m in messages] for name, messages in invalid.fields.items()
        }
        return _certificate_page(
            number, reasons=reasons, errors=errors or {"reasons": [_sentence(invalid.message)]}
        ), 400
    except ConflictError as refused:
        return _certificate_page(
            number, reasons=reasons, errors={"request": [_sentence(refused.message)]}
        ), 409
    flash(
        f"Case #{case_id} was opened: a decision maker will decide whether certificate "
        f"{number.strip().upper()} is suspended, reduced in scope or withdrawn.",
        "success",
    )
    return redirect(url_for("cases.detail", case_id=case_id), 303)


def _certificate_page(number: str, reasons: str = "", errors: dict[str, list[str]] | None = None):
    """The printable certificate, and below it (not printed) its history; for staff also the
    cases about it and the form asking for a suspension decision."""
    if len(number) > MAX_NUMBER_LENGTH:
        abort(404)
    user = current_engine_user()
    with engine().sessions() as session:
        cert = certificate_for_viewer(session, user, number)
        record = public_record(session, cert.number)
        history = certificate_histories(session, [cert.id])[cert.id]
        since = status_since(session, cert)
        cases = certificate_cases(session, cert) if user.is_staff else []
        case_ids = {h.case_id for h in history if h.case_id} | {c.id for c in cases}
        visible = {cid for cid in case_ids if can_view_case(session, user, cid)}
    case_endpoint = "cases.detail" if user.is_staff else "portal.case"
    links = {
        cid: url_for(case_endpoint, case_id=cid) if cid in visible else None for cid in case_ids
    }
    open_suspension = next(
        (c for c in cases if c.process_id == "suspension" and c.status in OPEN_CASE_STATUSES),
        None,
    )
    verify_url = (
        url_for("registry.verify", number=cert.number, _external=True)
        if ("registry.verify" in current_app.view_functions)
        else None
    )
    return render_template(
        "portal/certificate.html",
        certificate=cert,
        record=record,
        since=since,
        history=history,
        links=links,
        lifecycle_cases=cases,
        open_suspension=open_suspension,
        can_request_suspension=user.is_staff
        and bool(user.role_names & SUSPENSION_REQUESTERS)
        and cert.status in HELD_STATUSES,
        reasons=reasons,
        errors=errors or {},
        verify_url=verify_url,
        qr=qr_svg(verify_url) if verify_url else None,
    )


def qr_svg(url: str) -> Markup | None:
    """The verify URL as an inline SVG QR code (None when segno is not installed)."""
    try:
        import segno
    except ImportError:
        return None
    code = segno.make(url, error="m")
    return Markup(code.svg_inline(scale=4, dark="#17324d", title="Verify this certificate"))
