"""Certrail's web application: `create_app(config)` builds it around one Engine.

The web layer translates HTTP into engine calls and renders results; it holds no business
rules. Blueprints: auth (login), inbox (staff tasks), cases (case pages and list), portal
(applicants), registry (public certificate verification), api (REST, token auth), impartiality
(declarations, register, eligibility, report), dashboard (managers: overdue steps, expiring
certificates), models (process models as controlled documents: editor, review, versions).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from engine import Engine
from engine.errors import (
    CertrailError,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)

from .auth import login_manager

NODE_MODULES = Path(__file__).resolve().parent / "node_modules"
VENDOR_FILES = {
    "bpmn-js": (
        "bpmn-js/dist",
        {
            "bpmn-viewer.production.min.js",
            "bpmn-modeler.production.min.js",
            "assets/bpmn-js.css",
            "assets/diagram-js.css",
            "assets/bpmn-font/css/bpmn.css",
            "assets/bpmn-font/css/bpmn-embedded.css",
        },
    ),
}
csrf = CSRFProtect()

ERROR_STATUS = {NotFoundError: 404, PermissionDenied: 403, ConflictError: 409, ValidationError: 422}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        DATABASE_URL=None,
        SECRET_KEY=os.environ.get("CERTRAIL_SECRET_KEY") or _instance_secret(app),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Served over plain HTTP on 127.0.0.1 by `make run`; set CERTRAIL_SECURE_COOKIES=1 behind TLS.
        SESSION_COOKIE_SECURE=bool(os.environ.get("CERTRAIL_SECURE_COOKIES")),
        REMEMBER_COOKIE_HTTPONLY=True,
        MAX_CONTENT_LENGTH=12 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.update(config or {})
    engine = app.config.get("ENGINE") or Engine(app.config["DATABASE_URL"])
    app.extensions["certrail"] = engine

    csrf.init_app(app)
    login_manager.init_app(app)
    _register_blueprints(app)
    _register_error_handlers(app)
    _register_core_routes(app, engine)

    @app.context_processor
    def navigation():
        return {"nav_endpoints": set(app.view_functions)}

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app


def _instance_secret(app: Flask) -> str:
    """A per-installation secret kept in instance/, so sessions survive restarts."""
    path = Path(app.instance_path) / "secret_key"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Created exclusively: web workers starting together must all read one secret.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
        return path.read_text().strip()
    except OSError:
        return secrets.token_hex(32)


def _register_blueprints(app: Flask) -> None:
    from .auth import bp as auth_bp

    app.register_blueprint(auth_bp)
    for module_name in (
        "inbox",
        "cases",
        "portal",
        "registry",
        "api",
        "impartiality",
        "dashboard",
        "models",
        "quality",
        "records",
    ):
        module = _optional_blueprint(module_name)
        if module is not None:
            app.register_blueprint(module.bp)
            if module_name == "api":
                csrf.exempt(module.bp)


def _optional_blueprint(name: str):
    import importlib

    try:
        return importlib.import_module(f"web.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"web.{name}":
            return None
        raise


def wants_json() -> bool:
    return request.path.startswith("/api/") or (request.accept_mimetypes.best == "application/json")


def error_response(status: int, message: str, fields: dict[str, list[str]] | None = None):
    if wants_json():
        body: dict[str, Any] = {"error": message}
        if fields:
            body["fields"] = fields
        return jsonify(body), status
    return render_template("error.html", code=status, message=message, fields=fields or {}), status


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CertrailError)
    def engine_error(error: CertrailError):
        status = next((s for cls, s in ERROR_STATUS.items() if isinstance(error, cls)), 400)
        return error_response(status, error.message, getattr(error, "fields", None))

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return error_response(
            400, f"the form was not accepted: {error.description} Reload the page and try again."
        )

    for status, text in (
        (400, "the request was not understood"),
        (401, "please log in"),
        (403, "you may not do this"),
        (404, "not found"),
        (405, "this address does not accept that method"),
        (413, "the upload is too large"),
        (429, "too many requests; wait a minute and try again"),
    ):
        app.register_error_handler(status, _http_error(status, text))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(error):
        """The database went away (a restart, a failover, a lock held too long): say so and
        let the client retry; the connection pool replaces broken connections by itself."""
        app.logger.warning("database unavailable: %s", error.orig or error)
        response = error_response(
            503, "the database is not reachable just now; nothing was changed, try again shortly"
        )
        response = app.make_response(response)
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(500)
    def server_error(error):
        return error_response(500, "something went wrong on our side; it has been logged")


def _http_error(status: int, default: str):
    def handler(error):
        description = getattr(error, "description", None)
        message = (
            description
            if isinstance(description, str) and not description.startswith("The ")
            else default
        )
        return error_response(status, message)

    return handler


def _register_core_routes(app: Flask, engine: Engine) -> None:
    @app.get("/")
    def home():
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login"))
        if current_user.is_staff and "inbox" in app.blueprints:
            return redirect(url_for("inbox.index"))
        if "portal" in app.blueprints:
            return redirect(url_for("portal.index"))
        return redirect(url_for("models.index"))

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
