"""The REST API (`/api/v1`): JSON in and out, bearer-token authentication.

Every request except certificate verification and the OpenAPI document carries
`Authorization: Bearer <token>` (tokens come from `certrail tokens issue`). Requests are
checked against the marshmallow schemas in `schemas.py` (400 with `fields` per offending
parameter); everything about who may do what is the engine's to decide, and its refusals
become 403/404/409/422 JSON through the app's error handlers.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from engine.accounts import user_for_token
from engine.models import User

from .errors import ApiError, unauthorized

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Bodies are small JSON documents; anything larger is refused before it is read.
MAX_BODY_BYTES = 256 * 1024
MAX_TOKEN_LENGTH = 256
PUBLIC_ENDPOINTS = {"api.certificate", "api.openapi"}


def engine():
    return current_app.extensions["certrail"]


def api_user() -> User:
    return g.api_user


@bp.before_request
def authenticate():
    request.max_content_length = MAX_BODY_BYTES
    g.api_user = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return unauthorized("send an API token: Authorization: Bearer <token>")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
        return unauthorized("the API token is invalid or revoked", invalid=True)
    with engine().unit_of_work() as uow:
        user = user_for_token(uow, token)
    if user is None:
        return unauthorized("the API token is invalid or revoked", invalid=True)
    g.api_user = user
    return None


@bp.errorhandler(ApiError)
def api_error(error: ApiError):
    body: dict[str, Any] = {"error": error.message}
    if error.fields:
        body["fields"] = error.fields
    response = jsonify(body)
    response.status_code = error.status
    return response


from . import views  # noqa: E402,F401  (routes register themselves on bp)
