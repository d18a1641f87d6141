"""Errors the engine raises: values a user (or a client) can act on.

Every error carries a plain message; validation errors also carry per-field messages so the
web layer can show each one next to its field and the API can return them as JSON.
"""

from __future__ import annotations


class CertrailError(Exception):
    """Base class: a refusal the caller can explain to a person."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFoundError(CertrailError):
    """The case, task, person, scheme or model named does not exist."""


class ConflictError(CertrailError):
    """Someone else changed the case or task first (lost an optimistic-lock race)."""


class PermissionDenied(CertrailError):
    """The actor may not do this (wrong role, not the assignee, impartiality rule)."""


class ValidationError(CertrailError):
    """Submitted data is invalid; `fields` maps a field path to its messages."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.fields = fields or {}


class ModelError(CertrailError):
    """A BPMN model or form is broken; `findings` lists each problem with its element."""

    def __init__(self, message: str, findings: list[Finding] | None = None):
        super().__init__(message)
        self.findings = findings or []


class ScriptError(CertrailError):
    """A script task or gateway condition failed or broke the sandbox rules."""

    def __init__(self, message: str, element_id: str | None = None):
        super().__init__(message)
        self.element_id = element_id


class Finding:
    """One problem found in a model or form file: its severity, the element it concerns (id and
    name, when it concerns one) and what is wrong."""

    __slots__ = ("severity", "file", "element_id", "message", "element_name")

    def __init__(
        self,
        severity: str,
        file: str,
        element_id: str | None,
        message: str,
        element_name: str | None = None,
    ):
        self.severity = severity
        self.file = file
        self.element_id = element_id
        self.message = message
        self.element_name = element_name

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.element_id}]" if self.element_id else "")
        return f"{where}: {self.severity}: {self.message}"

    def __repr__(self) -> str:
        return f"Finding({self.severity!r}, {self.element_id!r}, {self.message!r})"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "severity": self.severity,
            "file": self.file,
            "element_id": self.element_id,
            "element_name": self.element_name,
            "message": self.message,
        }
