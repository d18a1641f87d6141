"""Process models as controlled documents: the library, each model's history, a version's
diagram, the differences between two versions, and the document-control actions.

    GET  /models                                   models.index      staff
    GET  /models/<pid>                             models.history    staff
    GET  /models/<pid>/v<n>                        models.version    staff
    GET  /models/<pid>/v<n>.bpmn                   models.source     signed in (staff: any status)
    GET  /models/<pid>/diff?from=<n>&to=<m>        models.diff       staff
    POST /models/versions/<id>/submit              models.submit     process owner
    POST /models/versions/<id>/approve             models.approve    quality manager
    POST /models/versions/<id>/return              models.return_to_draft  quality manager
    POST /models/versions/<id>/publish             models.publish    quality manager
    POST /models/versions/<id>/retire              models.retire     quality manager

The editor, uploads and forms are in `editing`, migration of running cases in `migration`.
Every change is an Engine call; the engine checks roles and SOD-4EYES again, and a refusal
is shown as a 403 (role) or 409 (status) with the engine's message.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from engine.errors import ConflictError, PermissionDenied, ValidationError
from engine.models import ModelVersion, User

from ..auth import engine, staff_required

bp = Blueprint("models", __name__, template_folder="../templates")

EDITOR_ROLE = "process_owner"
APPROVER_ROLE = "quality_manager"
STATUS_LABELS = {
    "draft": "draft",
    "in_review": "in review",
    "approved": "approved",
    "published": "published",
    "retired": "retired",
}
RUN_STATUSES = ("published", "retired")
MAX_TEXT = 4000


def can_edit() -> bool:
    return current_user.is_authenticated and current_user.has_role(EDITOR_ROLE)


def can_approve() -> bool:
    return current_user.is_authenticated and current_user.has_role(APPROVER_ROLE)


def require_role(role: str, action: str) -> None:
    if not current_user.has_role(role):
        label = role.replace("_", " ")
        abort(403, description=f"only a {label} may {action}")


@bp.app_context_processor
def model_helpers() -> dict[str, Any]:
    return {"status_label": lambda status: STATUS_LABELS.get(status, status)}


def people(*versions: ModelVersion) -> dict[int, str]:
    """Display names of everyone named on these versions."""
    ids = {
        i
        for v in versions
        for i in (v.author_id, v.reviewer_id, v.published_by_id, *(v.contributor_ids or []))
        if i is not None
    }
    if not ids:
        return {}
    with engine().sessions() as session:
        rows = session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
        return {row.id: row.display_name for row in rows}


def version_by_number(process_id: str, number: int) -> ModelVersion:
    for version in engine().model_history(process_id):
        if version.version == number:
            return version
    abort(404, description=f"process '{process_id}' has no version {number}")


def history_or_404(process_id: str) -> list[ModelVersion]:
    history = engine().model_history(process_id)
    if not history:
        abort(404, description=f"there is no process '{process_id}'")
    return history


def findings_of(version: ModelVersion) -> list[dict[str, Any]]:
    forms = engine().version_forms(version.id)
    return [f.as_dict() for f in engine().validate_model(version.bpmn_xml, forms=forms or None)]


def form_text(name: str, required: bool = False) -> str:
    value = (request.form.get(name) or "").strip()
    if len(value) > MAX_TEXT:
        abort(400, description=f"the field '{name}' is longer than {MAX_TEXT} characters")
    if required and not value:
        abort(400, description=f"the field '{name}' is required")
    return value


# -- pages --------------------------------------------------------------------------------


@bp.get("/models")
@staff_required
def index():
    library = engine().model_library()
    versions = [
        v for s in library for v in ([s.published] if s.published else []) + s.open_versions
    ]
    return render_template(
        "models/index.html",
        library=library,
        names=people(*versions),
        today=engine().clock.now().date(),
        can_edit=can_edit(),
        can_approve=can_approve(),
    )


@bp.get("/models/<process_id>")
@staff_required
def history(process_id: str):
    versions = history_or_404(process_id)
    published = next((v for v in versions if v.status == "published"), None)
    newest_run = max((v.version for v in versions if v.status in RUN_STATUSES), default=None)
    running = engine().running_cases(process_id) if can_approve() else []
    behind = [c for c in running if published and c.version != published.version]
    return render_template(
        "models/history.html",
        process_id=process_id,
        versions=versions,
        published=published,
        newest_run=newest_run,
        cases_behind=behind,
        names=people(*versions),
        today=engine().clock.now().date(),
        default_review_due=_default_review_due(),
        can_edit=can_edit(),
        can_approve=can_approve(),
    )


def _default_review_due() -> date:
    today = engine().clock.now().date()
    try:
        return today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        return today.replace(year=today.year + 1, day=28)


@bp.get("/models/<process_id>/v<int:number>")
@staff_required
def version(process_id: str, number: int):
    found = version_by_number(process_id, number)
    return render_template(
        "models/version.html",
        model=found,
        findings=findings_of(found),
        forms=sorted(engine().version_forms(found.id)),
        names=people(found),
        can_edit=can_edit(),
    )


@bp.get("/models/<process_id>/v<int:number>.bpmn")
@login_required
def source(process_id: str, number: int):
    with engine().sessions() as session:
        model = session.scalars(
            select(ModelVersion).where(
                ModelVersion.process_id == process_id, ModelVersion.version == number
            )
        ).first()
    if model is None or (model.status not in RUN_STATUSES and not current_user.is_staff):
        abort(404, description=f"process '{process_id}' has no version {number}")
    response = current_app.response_class(model.bpmn_xml, mimetype="application/xml")
    if request.args.get("download"):
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{process_id}-v{number}.bpmn"'
        )
    return response


def _number_arg(name: str) -> int:
    value = request.args.get(name, "").strip().lstrip("v")
    if not value.isdigit() or len(value) > 9:
        abort(400, description=f"the parameter '{name}' must be a version number, not {value!r}")
    return int(value)


@bp.get("/models/<process_id>/diff")
@staff_required
def diff(process_id: str):
    old = version_by_number(process_id, _number_arg("from"))
    new = version_by_number(process_id, _number_arg("to"))
    changes = engine().diff_model_versions(old.id, new.id)
    markers = {
        "old": {
            "removed": [c.element_id for c in changes.removed],
            "changed": [c.element_id for c in changes.changed],
        },
        "new": {
            "added": [c.element_id for c in changes.added],
            "changed": [c.element_id for c in changes.changed],
        },
    }
    return render_template(
        "models/diff.html",
        process_id=process_id,
        old=old,
        new=new,
        changes=changes,
        markers=markers,
        names=people(old, new),
    )


# -- document-control actions --------------------------------------------------------------


def _act(version_id: int, verb: str, call) -> Any:
    """Run one engine action; a refusal becomes a flash on the history page (403/409/422)."""
    try:
        found = call()
    except (PermissionDenied, ConflictError, ValidationError) as refused:
        status = (
            403
            if isinstance(refused, PermissionDenied)
            else 422
            if isinstance(refused, ValidationError)
            else 409
        )
        target = engine().model_version(version_id)
        flash(f"Version {target.version} was not {verb}: {refused.message}", "error")
        return _history_page(target.process_id, status)
    flash(f"{found.process_id} v{found.version} {verb}.", "success")
    return redirect(url_for("models.history", process_id=found.process_id), code=303)


def _history_page(process_id: str, status: int):
    response = current_app.make_response(history(process_id))
    response.status_code = status
    return response


@bp.post("/models/versions/<int:version_id>/submit")
@login_required
def submit(version_id: int):
    require_role(EDITOR_ROLE, "submit a model version for review")
    summary = form_text("change_summary") or None
    return _act(
        version_id,
        "submitted for review",
        lambda: engine().submit_model_for_review(
            version_id, current_user.username, change_summary=summary
        ),
    )


@bp.post("/models/versions/<int:version_id>/approve")
@login_required
def approve(version_id: int):
    require_role(APPROVER_ROLE, "approve a model version")
    return _act(
        version_id,
        "approved",
        lambda: engine().approve_model_version(version_id, current_user.username),
    )


@bp.post("/models/versions/<int:version_id>/return")
@login_required
def return_to_draft(version_id: int):
    require_role(APPROVER_ROLE, "return a model version to its author")
    comment = form_text("comment", required=True)
    return _act(
        version_id,
        "returned to draft",
        lambda: engine().return_model_to_draft(version_id, current_user.username, comment),
    )


@bp.post("/models/versions/<int:version_id>/publish")
@login_required
def publish(version_id: int):
    require_role(APPROVER_ROLE, "publish a model version")
    due_text = form_text("review_due_on")
    review_due = None
    if due_text:
        try:
            review_due = date.fromisoformat(due_text)
        except ValueError:
            abort(
                400,
                description=f"the field 'review_due_on' must be a date (YYYY-MM-DD), not {due_text!r}",
            )
    return _act(
        version_id,
        "published",
        lambda: engine().publish_model_version(
            version_id, current_user.username, review_due_on=review_due
        ),
    )


@bp.post("/models/versions/<int:version_id>/retire")
@login_required
def retire(version_id: int):
    require_role(APPROVER_ROLE, "retire a model version")
    return _act(
        version_id,
        "retired",
        lambda: engine().retire_model_version(version_id, current_user.username),
    )


from . import editing, migration  # noqa: E402,F401  (routes on the same blueprint)
