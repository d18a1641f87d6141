"""JSON Schema forms: load them, check them, validate submitted data, explain errors.

One form per user task (`forms/<name>.json`, draft 2020-12). This module is the only place
that validates task data, whether it comes from a page, the API, the CLI or a simulation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from .errors import Finding, ValidationError

FORMS_DIR = Path(__file__).resolve().parent.parent / "forms"


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


class FormRegistry:
    """The forms of one directory, checked against the 2020-12 metaschema when loaded."""

    def __init__(self, directory: Path = FORMS_DIR):
        self.directory = Path(directory)
        self._forms: dict[str, Form] = {}
        self.findings: list[Finding] = []
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
        form = self.get(name)
        if not isinstance(data, dict):
            raise ValidationError("form data must be an object", {"": ["must be an object"]})
        fields: dict[str, list[str]] = {}
        for error in form.validator.iter_errors(data):
            for path, message in _explain(error, form.schema):
                fields.setdefault(path, []).append(message)
        if fields:
            summary = "; ".join(
                f"{k or '(form)'}: {', '.join(v)}" for k, v in sorted(fields.items())
            )
            raise ValidationError(f"Invalid data for form '{name}': {summary}", fields)
        return data


def load_form(path: Path) -> tuple[Form | None, list[Finding]]:
    name = path.stem
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, [Finding("error", str(path), None, f"not valid JSON: {exc}")]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or None
        return None, [Finding("error", str(path), where, f"invalid JSON Schema: {exc.message}")]
    findings = []
    if schema.get("type") != "object":
        findings.append(
            Finding("error", str(path), None, 'a form schema must have "type": "object"')
        )
        return None, findings
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return Form(name, schema, validator), findings


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
