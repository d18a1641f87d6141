"""Certrail's web application: `create_app(config)` builds it around one Engine.

The web layer translates HTTP into engine calls and renders results; it holds no business
rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, render_template, send_from_directory
from sqlalchemy import func, select

from engine import Engine
from engine.models import Case, Certificate, HumanTask, ModelVersion

NODE_MODULES = Path(__file__).resolve().parent / "node_modules"
VENDOR_FILES = {
    "bpmn-js": (
        "bpmn-js/dist",
        {
            "bpmn-viewer.production.min.js",
            "assets/bpmn-js.css",
            "assets/diagram-js.css",
            "assets/bpmn-font/css/bpmn.css",
        },
    ),
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        DATABASE_URL=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
    )
    app.config.update(config or {})
    engine = app.config.get("ENGINE") or Engine(app.config["DATABASE_URL"])
    app.extensions["certrail"] = engine

    @app.get("/")
    def home():
        with engine.sessions() as session:
            models = session.scalars(
                select(ModelVersion)
                .where(ModelVersion.status == "published")
                .order_by(ModelVersion.process_id)
            ).all()
            counts = {
                "running cases": session.scalar(
                    select(func.count()).where(Case.status == "running")
                ),
                "open tasks": session.scalar(
                    select(func.count()).where(HumanTask.status == "ready")
                ),
                "active certificates": session.scalar(
                    select(func.count()).where(Certificate.status == "active")
                ),
            }
        return render_template("home.html", models=models, counts=counts)

    @app.get("/models/<process_id>/v<int:version>.bpmn")
    def model_source(process_id: str, version: int):
        with engine.sessions() as session:
            model = session.scalars(
                select(ModelVersion).where(
                    ModelVersion.process_id == process_id, ModelVersion.version == version
                )
            ).first()
        if model is None:
            abort(404, description=f"process '{process_id}' has no version {version}")
        return app.response_class(model.bpmn_xml, mimetype="application/xml")

    @app.get("/vendor/<package>/<path:filename>")
    def vendor(package: str, filename: str):
        entry = VENDOR_FILES.get(package)
        if entry is None or filename not in entry[1]:
            abort(404)
        return send_from_directory(NODE_MODULES / entry[0], filename)

    @app.get("/healthz")
    def health():
        with engine.sessions() as session:
            session.execute(select(1))
        return jsonify(status="ok")

    @app.errorhandler(404)
    def not_found(error):
        return render_template(
            "error.html", code=404, message=getattr(error, "description", "not found")
        ), 404

    @app.errorhandler(405)
    def method_not_allowed(error):
        return render_template(
            "error.html", code=405, message="this address does not accept that method"
        ), 405

    @app.errorhandler(500)
    def server_error(error):
        return render_template(
            "error.html", code=500, message="something went wrong; it has been logged"
        ), 500

    return app
