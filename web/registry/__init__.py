"""Public certificate verification (ISO/IEC 17024 clause 7.2): anyone may check a
certificate by its number and learn the holder's name, the scheme and scope, the status and
the dates (including the day a suspension, withdrawal or scope reduction took effect), and
nothing else about the person (never the reasons for a status change). No login;
rate-limited per client address, counted in the database so that every web process shares
the count.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, render_template, request

from engine.certificate_views import public_status_since
from engine.certificates import public_record

from ..auth import engine

bp = Blueprint("registry", __name__, template_folder="../templates")

MAX_NUMBER_LENGTH = 40
# Certificate numbers are scheme code, year and serial: letters, digits and hyphens.
_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9-]*$")
DEFAULT_LIMIT_PER_MINUTE = 30


@bp.before_request
def _rate_limit():
    limit = current_app.config.get("VERIFY_RATE_LIMIT", DEFAULT_LIMIT_PER_MINUTE)
    decision = engine().count_request(f"verify:{request.remote_addr or 'unknown'}", limit)
    if not decision.allowed:
        retry_after = decision.retry_after_seconds
        response = current_app.make_response(
            (render_template("registry/too_many.html", retry_after=retry_after), 429)
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    return None


@bp.get("/verify")
def verify():
    raw = request.args.get("number")
    if raw is None or not raw.strip():
        return render_template("registry/verify.html", number="", record=None)
    number = raw.strip().upper()
    if len(number) > MAX_NUMBER_LENGTH or not _NUMBER.match(number):
        return render_template(
            "registry/verify.html",
            number=raw[:MAX_NUMBER_LENGTH],
            record=None,
            error="A certificate number has letters, digits and hyphens only, "
            "like CWI-2026-000001.",
        ), 400
    with engine().sessions() as session:
        record = public_record(session, number)
        # The day the current status began, for "suspended since" / "withdrawn on".
        since = public_status_since(session, number) if record is not None else None
    if record is None:
        return render_template(
            "registry/verify.html", number=number, record=None, not_found=True
        ), 404
    return render_template("registry/verify.html", number=number, record=record, since=since)


@bp.after_request
def _no_store(response):
    # A certificate's status can change at any time: never serve it from a cache.
    response.headers.setdefault("Cache-Control", "no-store")
    return response
