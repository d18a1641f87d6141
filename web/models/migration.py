"""Moving selected running cases to a newer published version of their process, after a
preview of what changes for each case (quality managers).

    GET  /models/<pid>/migrate?to=<version_id>     models.migrate   the running cases on older versions
    POST /models/<pid>/migrate                     models.migrate   action=preview | migrate

A publish never moves a running case; only this explicit, audited step does, and the engine
refuses a case whose current task would disappear.
"""

from __future__ import annotations

from flask import abort, render_template, request
from flask_login import current_user, login_required

from . import APPROVER_ROLE, bp, engine, history_or_404, require_role


def _target(process_id: str, raw: str | None):
    if not raw or not raw.isdigit() or len(raw) > 12:
        abort(400, description=f"the parameter 'to' must be a version id, not {raw!r}")
    target = engine().model_version(int(raw))
    if target.process_id != process_id:
        abort(400, description=f"version {raw} is not a version of {process_id}")
    return target


def _case_ids() -> list[int]:
    raw = request.form.getlist("case_id")
    if not raw:
        abort(400, description="choose at least one case (field 'case_id')")
    if not all(v.isdigit() and len(v) <= 12 for v in raw):
        abort(400, description="the field 'case_id' must hold case numbers")
    return sorted({int(v) for v in raw})


@bp.route("/models/<process_id>/migrate", methods=["GET", "POST"])
@login_required
def migrate(process_id: str):
    require_role(APPROVER_ROLE, "migrate running cases")
    history_or_404(process_id)
    raw_target = request.values.get("to")
    if raw_target is None:
        published = next(
            (v for v in engine().model_history(process_id) if v.status == "published"), None
        )
        if published is None:
            abort(404, description=f"{process_id} has no published version to migrate to")
        raw_target = str(published.id)
    target = _target(process_id, raw_target)
    cases = [c for c in engine().running_cases(process_id) if c.version != target.version]
    previews = results = None
    chosen: set[int] = set()
    if request.method == "POST":
        chosen = set(_case_ids())
        if request.form.get("action") == "migrate":
            results = engine().migrate_cases(sorted(chosen), target.id, current_user.username)
            cases = [c for c in engine().running_cases(process_id) if c.version != target.version]
        else:
            previews = engine().preview_migration(sorted(chosen), target.id)
    return render_template(
        "models/migrate.html",
        process_id=process_id,
        target=target,
        cases=cases,
        chosen=chosen,
        previews=previews,
        results=results,
    )
