"""Editing process models: the bpmn-js modeler page, its JSON endpoints, `.bpmn` uploads
(Camunda Modeler files mapped to Certrail's properties) and the forms edited with a version.

    GET  /models/<pid>/edit                 models.edit          process owner, quality manager (read only)
    POST /models/validate                   models.validate      JSON {xml, forms?} -> {findings}
    POST /models/<pid>/draft                models.save_draft    JSON {xml, change_summary?, forms?}
                                                                 -> {version, status, findings}
    POST /models/upload                     models.upload        multipart `file`, `change_summary`
    GET  /models/<pid>/forms/<name>         models.form_editor   the JSON Schema and its preview
    POST /models/<pid>/forms/<name>         models.form_editor   save the schema into the draft
    POST /models/forms/preview              models.form_preview  JSON {schema} -> HTML fragment

Uploaded and posted XML is untrusted: the engine parses it hardened and refuses unsafe or
unreadable files (ModelError), which is answered with a 400 naming the problem; nothing is
stored then.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from engine.errors import ModelError
from engine.forms import FORM_NAME, form_of_schema
from engine.impartiality.policy import RULE_IDS
from engine.models import ModelVersion
from engine.models.people import ROLES

from .. import forms_render
from . import (
    APPROVER_ROLE,
    EDITOR_ROLE,
    bp,
    can_edit,
    engine,
    form_text,
    history_or_404,
    people,
    require_role,
)

TASK_ROLES = [r for r in ROLES if r not in ("certified_person", "admin")]
MAX_UPLOAD_BYTES = 8 * 1024 * 1024


def _require_modeller() -> None:
    if not current_user.has_role(EDITOR_ROLE, APPROVER_ROLE):
        abort(403, description="only process owners and quality managers may open the editor")


def _open_version(history: list[ModelVersion]) -> ModelVersion:
    """The version the editor opens: the open draft, else the published one, else the newest."""
    for status in ("draft", "published"):
        found = next((v for v in history if v.status == status), None)
        if found is not None:
            return found
    return history[0]


def _version_json(version: ModelVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "process_id": version.process_id,
        "version": version.version,
        "status": version.status,
        "checksum": version.checksum,
    }


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="send a JSON object with the field 'xml'")
    return body


def _xml_field(body: dict[str, Any]) -> str:
    xml = body.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        abort(400, description="the field 'xml' must be the BPMN document as text")
    return xml


def _forms_field(body: dict[str, Any]) -> dict[str, dict] | None:
    forms = body.get("forms")
    if forms is None:
        return None
    if not isinstance(forms, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in forms.items()
    ):
        abort(400, description="the field 'forms' must map form names to JSON Schema objects")
    return forms


def _refused_json(error: ModelError):
    return jsonify(error=error.message, findings=[f.as_dict() for f in error.findings]), 400


# -- the modeler --------------------------------------------------------------------------


@bp.get("/models/<process_id>/edit")
@login_required
def edit(process_id: str):
    _require_modeller()
    history = history_or_404(process_id)
    opened = _open_version(history)
    number = request.args.get("v", "")
    if number.isdigit():
        opened = next((v for v in history if v.version == int(number)), opened)
    forms = engine().version_forms(opened.id)
    findings = [f.as_dict() for f in engine().validate_model(opened.bpmn_xml, forms=forms or None)]
    config = {
        "process_id": process_id,
        "version": _version_json(opened),
        "source_url": url_for("models.source", process_id=process_id, number=opened.version),
        "moddle_url": url_for("static", filename="spiffworkflow-moddle.json"),
        "validate_url": url_for("models.validate"),
        "draft_url": url_for("models.save_draft", process_id=process_id),
        "submit_url_template": url_for("models.submit", version_id=0).replace("/0/", "/__ID__/"),
        "form_url_template": url_for("models.form_editor", process_id=process_id, name="__NAME__"),
        "can_edit": can_edit(),
        "findings": findings,
    }
    return render_template(
        "models/edit.html",
        model=opened,
        config=config,
        roles=TASK_ROLES,
        rule_ids=RULE_IDS,
        form_names=sorted(set(engine().forms.names()) | set(forms)),
        names=people(opened),
        can_edit=can_edit(),
    )


@bp.post("/models/validate")
@login_required
def validate():
    _require_modeller()
    body = _json_body()
    findings = engine().validate_model(_xml_field(body), forms=_forms_field(body))
    return jsonify(findings=[f.as_dict() for f in findings])


@bp.post("/models/<process_id>/draft")
@login_required
def save_draft(process_id: str):
    require_role(EDITOR_ROLE, "save a model draft")
    body = _json_body()
    summary = body.get("change_summary")
    if summary is not None and (not isinstance(summary, str) or len(summary) > 4000):
        abort(400, description="the field 'change_summary' must be text of at most 4000 characters")
    try:
        saved = engine().save_model_draft(
            current_user.username,
            _xml_field(body),
            change_summary=(summary or "").strip() or None,
            forms=_forms_field(body),
        )
    except ModelError as refused:
        return _refused_json(refused)
    version = saved.version
    return jsonify(
        version=_version_json(version),
        status=version.status,
        findings=[f.as_dict() for f in saved.findings],
        edit_url=url_for("models.edit", process_id=version.process_id),
    )


# -- uploads ------------------------------------------------------------------------------


@bp.post("/models/upload")
@login_required
def upload():
    require_role(EDITOR_ROLE, "upload a model")
    file = request.files.get("file")
    if file is None or not file.filename:
        abort(400, description="choose a .bpmn file to upload (field 'file')")
    data = file.read(MAX_UPLOAD_BYTES + 1)
    summary = form_text("change_summary") or f"uploaded from {file.filename}"
    try:
        uploaded = engine().upload_model(current_user.username, data, summary)
    except ModelError as refused:
        return render_template(
            "models/upload_refused.html",
            filename=file.filename,
            message=refused.message,
            findings=refused.findings,
        ), 400
    return render_template(
        "models/uploaded.html",
        filename=file.filename,
        model=uploaded.version,
        warnings=uploaded.import_warnings,
        findings=uploaded.findings,
    )


# -- forms ---------------------------------------------------------------------------------


def _form_name(name: str) -> str:
    if not FORM_NAME.match(name):
        abort(
            400,
            description="a form name starts with a letter and has only letters, digits, "
            f"_ and -; not {name!r}",
        )
    return name


def _schema_for(name: str, draft: ModelVersion | None, fallback: ModelVersion) -> dict:
    if draft is not None:
        forms = engine().version_forms(draft.id)
        if name in forms:
            return forms[name]
    forms = engine().version_forms(fallback.id)
    if name in forms:
        return forms[name]
    if name in engine().forms:
        return engine().forms.get(name).schema
    return {"title": name.replace("_", " ").capitalize(), "type": "object", "properties": {}}


def _parse_schema(text: str) -> tuple[dict | None, str | None]:
    try:
        schema = json.loads(text)
    except ValueError as exc:
        return None, f"the schema is not valid JSON: {exc}"
    if not isinstance(schema, dict):
        return None, "the schema must be a JSON object"
    return schema, None


@bp.route("/models/<process_id>/forms/<name>", methods=["GET", "POST"])
@login_required
def form_editor(process_id: str, name: str):
    _require_modeller()
    name = _form_name(name)
    history = history_or_404(process_id)
    draft = next((v for v in history if v.status == "draft"), None)
    base = draft or _open_version(history)
    error = None
    findings = []
    status = 200
    if request.method == "POST":
        require_role(EDITOR_ROLE, "edit a form")
        text = request.form.get("schema", "")
        schema, error = _parse_schema(text)
        if schema is not None:
            try:
                saved = engine().save_model_draft(
                    current_user.username,
                    base.bpmn_xml,
                    change_summary=form_text("change_summary") or None,
                    forms={name: schema},
                )
            except ModelError as refused:
                error = refused.message
            else:
                flash(
                    f"Form {name} saved with draft v{saved.version.version} of {process_id}.",
                    "success",
                )
                return redirect(
                    url_for("models.form_editor", process_id=process_id, name=name), code=303
                )
        status = 422
    else:
        text = json.dumps(_schema_for(name, draft, base), indent=2, ensure_ascii=False)
    if draft is not None:
        forms = engine().version_forms(draft.id)
        findings = [
            f
            for f in engine().validate_model(draft.bpmn_xml, forms=forms or None)
            if name in (f.file or "") or name in f.message
        ]
    return render_template(
        "models/form_editor.html",
        process_id=process_id,
        name=name,
        model=base,
        draft=draft,
        schema_text=text,
        error=error,
        findings=findings,
        can_edit=can_edit(),
    ), status


@bp.post("/models/forms/preview")
@login_required
def form_preview():
    _require_modeller()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "schema" not in body:
        abort(400, description="send a JSON object with the field 'schema'")
    schema = body["schema"]
    if isinstance(schema, str):
        schema, error = _parse_schema(schema)
        if error:
            return jsonify(error=error), 422
    form, findings = form_of_schema(str(body.get("name") or "preview"), schema)
    if form is None:
        return jsonify(
            error="; ".join(f.message for f in findings),
            findings=[f.as_dict() for f in findings],
        ), 422
    try:
        fields = forms_render.build_fields(schema, {}, None)
        html = forms_render.render_fields(fields)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        return jsonify(error=f"the schema cannot be drawn as a form: {exc}"), 422
    return render_template("models/_form_preview.html", schema=schema, form_html=html)
