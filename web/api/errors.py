"""API refusals raised by the web layer itself (malformed requests, missing tokens)."""

from __future__ import annotations

from typing import Any

from flask import jsonify


class ApiError(Exception):
    """A request the API cannot accept: `status` and a message, `fields` per parameter."""

    def __init__(self, status: int, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}


def unauthorized(message: str, *, invalid: bool = False):
    response = jsonify({"error": message})
    response.status_code = 401
    challenge = 'Bearer realm="certrail"'
    if invalid:
        challenge += ', error="invalid_token"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def field_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error messages as `{"dotted.path": ["message", ...]}`."""
    found: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            path = ".".join(p for p in (prefix, name) if p)
            for sub_path, texts in field_messages(value, path).items():
                found.setdefault(sub_path, []).extend(texts)
    elif isinstance(messages, list | tuple):
        for item in messages:
            if isinstance(item, dict | list | tuple):
                for sub_path, texts in field_messages(item, prefix).items():
                    found.setdefault(sub_path, []).extend(texts)
            else:
                found.setdefault(prefix, []).append(str(item))
    else:
        found.setdefault(prefix, []).append(str(messages))
    return found
