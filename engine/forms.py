"""JSON Schema forms: load them, check them, validate submitted data, explain errors.

One form per user task (`forms/<name>.json`, draft 2020-12), or one edited with the task's
model version (`ModelVersion.forms_json`), which then takes precedence for cases on that
version. This module is the only place that validates task data, whether it comes from a
page, the API, the CLI or a simulation.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from .errors import Finding, ValidationError

FORMS_DIR = Path(__file__).resolve().parent.parent / "forms"
FORM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")


@dataclass(frozen=True)
class Form:
    name: str
    schema: dict[str, Any]
    validator: Draft202012Validator

    @property
    def title(self) -> str:
        return self.schema.get("title", self.name)

    @property
    def field_names(self) -> list[str]:
        return list(self.schema.get("properties", {}))

    def validate(self, data: Any) -> dict[str, Any]:
        """Return `data` if it satisfies the form, else raise ValidationError listing every
        offending field."""
        if not isinstance(data, dict):
            raise ValidationError("form data must be an object", {"": ["must be an object"]})
        fields: dict[str, list[str]] = {}
        for error in self.validator.iter_errors(data):
            for path, message in _explain(error, self.schema):
                fields.setdefault(path, []).append(message)
        if fields:
            summary = "; ".join(
                f"{k or '(form)'}: {', '.join(v)}" for k, v in sorted(fields.items())
            )
            raise ValidationError(f"Invalid data for form '{self.name}': {summary}", fields)
        return data


class FormRegistry:
    """The forms of one directory, checked against the 2020-12 metaschema when loaded."""

    def __init__(self, directory: Path = FORMS_DIR):
        self.directory = Path(directory)
        self._forms: dict[str, Form] = {}
        self.findings: list[Finding] = []
        self._versions: dict[int, VersionForms] = {}
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        self._forms.clear()
        self.findings = []
        for path in sorted(self.directory.glob("*.json")):
            form, findings = load_form(path)
            self.findings.extend(findings)
            if form is not None:
                self._forms[form.name] = form

    def __contains__(self, name: str) -> bool:
        return name in self._forms

    def names(self) -> list[str]:
        return sorted(self._forms)

    def get(self, name: str) -> Form:
        try:
            return self._forms[name]
        except KeyError:
            raise ValidationError(f"form '{name}' does not exist") from None

    def validate(self, name: str, data: Any) -> dict[str, Any]:
        """Return `data` if it satisfies form `name`, else raise ValidationError listing
        every offending field."""
        return self.get(name).validate(data)

    def of_version(
        self, version_id: int, load: Callable[[], Mapping[str, Any] | None]
    ) -> VersionForms:
        """The forms a model version runs with; `load()` reads its `forms_json`. Only
        published (immutable) versions run cases, so the result is kept per version id."""
        found = self._versions.get(version_id)
        if found is None:
            found = VersionForms(self, load() or {})
            with self._lock:
                self._versions[version_id] = found
        return found


class VersionForms:
    """The forms edited with one model version, in front of the registry's `forms/`."""

    def __init__(self, registry: FormRegistry, forms_json: Mapping[str, Any]):
        self.registry = registry
        self.own: dict[str, Form] = {}
        for name, schema in (forms_json or {}).items():
            form, _findings = form_of_schema(name, schema)
            if form is not None:
                self.own[name] = form

    def __contains__(self, name: str) -> bool:
        return name in self.own or name in self.registry

    def get(self, name: str) -> Form:
        form = self.own.get(name)
        return form if form is not None else self.registry.get(name)


def load_form(path: Path) -> tuple[Form | None, list[Finding]]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, [Finding("error", str(path), None, f"not valid JSON: {exc}")]
    return form_of_schema(path.stem, schema, str(path))


def form_of_schema(
    name: str, schema: Any, file: str | None = None
) -> tuple[Form | None, list[Finding]]:
    """Check `schema` against the 2020-12 metaschema and Certrail's rules for a form.

    Findings name the file when there is one (`forms/<name>.json`, element: the path inside
    the schema), else the form (element: the form's name, for forms edited with a model)."""
    where = file or f"form {name}"

    def finding(path: str | None, message: str) -> Finding:
        element = path if file else name
        text = message if file or not path else f"{message} (at {path})"
        return Finding("error", where, element, text)

    if not isinstance(schema, dict):
        return None, [finding(None, "a form schema must be a JSON object")]
    try:
        schema_json = json.dumps(schema)
    except (TypeError, ValueError):
        return None, [finding(None, "a form schema must be plain JSON")]
    invalid = _metaschema_error(schema_json)
    if invalid is not None:
        path, message = invalid
        return None, [finding(path, f"invalid JSON Schema: {message}")]
    if schema.get("type") != "object":
        return None, [finding(None, 'a form schema must have "type": "object"')]
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return Form(name, schema, validator), []


@functools.lru_cache(maxsize=1024)
def _metaschema_error(schema_json: str) -> tuple[str | None, str] | None:
    """How the schema (as JSON text) breaks the 2020-12 metaschema: (path inside it, message),
    or None. The answer depends on the text alone, so a process checks each text once:
    checking takes ~5 ms a form, and every engine loads every form."""
    try:
        Draft202012Validator.check_schema(json.loads(schema_json))
    except SchemaError as exc:
        return "/".join(str(p) for p in exc.path) or None, exc.message
    return None


def check_version_forms(forms: Mapping[str, Any]) -> list[Finding]:
    """Findings for forms edited with a model version: each must be a valid form schema
    under a name a task can refer to (element id: the form's name)."""
    findings: list[Finding] = []
    for name, schema in forms.items():
        if not isinstance(name, str) or not FORM_NAME.match(name):
            findings.append(
                Finding(
                    "error",
                    f"form {name}",
                    str(name),
                    "a form name starts with a letter and has only letters, digits, _ and -",
                )
            )
            continue
        findings.extend(form_of_schema(name, schema)[1])
    return findings


def _explain(error, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Turn a jsonschema error into (field path, readable message) pairs."""
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [
            f for f in error.validator_value if f not in present and f"'{f}'" in error.message
        ]
        field = missing[0] if missing else ""
        return [(".".join(p for p in (path, field) if p), f"{_label(schema, field)} is required")]
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extras = (
            [k for k in error.instance if k not in allowed]
            if isinstance(error.instance, dict)
            else []
        )
        prefix = f"{path}." if path else ""
        return [(prefix + name, "is not a field of this form") for name in extras] or [
            (path, error.message)
        ]
    label = _label(schema, path)
    value = error.validator_value
    templates = {
        "type": "{label} must be of type {value}",
        "const": "{label} must be {json}",
        "minLength": "{label} must have at least {value} characters",
        "maxLength": "{label} must have at most {value} characters",
        "minimum": "{label} must be at least {value}",
        "maximum": "{label} must be at most {value}",
        "exclusiveMinimum": "{label} must be more than {value}",
        "exclusiveMaximum": "{label} must be less than {value}",
        "format": "{label} must be a valid {value}",
        "pattern": "{label} does not have the expected format",
        "minItems": "{label} needs at least {value} item(s)",
        "maxItems": "{label} allows at most {value} item(s)",
    }
    if error.validator == "enum":
        return [(path, f"{label} must be one of: {', '.join(map(str, value))}")]
    template = templates.get(error.validator)
    if template is None:
        return [(path, f"{label}: {error.message}")]
    return [(path, template.format(label=label, value=value, json=json.dumps(value)))]


def _label(schema: dict[str, Any], path: str) -> str:
    top = path.split(".", 1)[0] if path else ""
    prop = schema.get("properties", {}).get(top, {})
    return prop.get("title") or top or "The form"
