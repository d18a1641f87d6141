"""Render a task's JSON Schema form as HTML, and turn a submitted HTML form back into data.

The engine's forms are JSON Schema 2020-12 objects with a few presentation keywords:
`title`/`description` (label and help text), `x-widget` (`textarea`, `file`), `x-enum-labels`
(labels for `enum` values, same order) and `x-prefill` (the case data key a field starts
from). This module only presents and converts: validation is the engine's
(`engine.forms.FormRegistry.validate`), so an HTML form, the API and the CLI all meet the
same rules.

    fields = build_fields(schema, values, errors)      # what to draw
    html = render_fields(fields, readonly=False)       # Markup, inputs named by property
    data, errors = parse_submission(schema, request.form)

Input `name` is always the JSON property name; the error paragraph of a field has the id
`error-<name>`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

RADIO_MAX_OPTIONS = 3
SIMPLE_TYPES = ("string", "integer", "number", "boolean")


@dataclass
class Field:
    """One form property as it is drawn."""

    name: str
    kind: str  # text, textarea, integer, number, checkbox, declaration, select, radio,
    # date, lines, choices (array of enum), file
    label: str
    help: str | None
    required: bool
    value: Any  # what the input shows (str), or a bool/list for checkboxes
    options: list[tuple[str, str]] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    errors: list[str] = field(default_factory=list)


def _type(prop: Mapping[str, Any]) -> str | None:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "enum" in prop:
        kind = "string"
    return kind


def _options(prop: Mapping[str, Any]) -> list[tuple[str, str]]:
    values = list(prop.get("enum", []))
    labels = prop.get("x-enum-labels") or []
    return [
        (_as_text(v), str(labels[i]) if i < len(labels) else _as_text(v))
        for i, v in enumerate(values)
    ]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def widget(prop: Mapping[str, Any]) -> str:
    """The kind of input a property gets."""
    kind = _type(prop)
    if prop.get("x-widget") == "file":
        return "file"
    if kind == "boolean":
        return "declaration" if prop.get("const") is True else "checkbox"
    if "enum" in prop:
        return "radio" if len(prop["enum"]) <= RADIO_MAX_OPTIONS else "select"
    if kind in ("integer", "number"):
        return kind
    if kind == "array":
        items = prop.get("items") or {}
        return "choices" if "enum" in items else "lines"
    if prop.get("format") == "date":
        return "date"
    if prop.get("x-widget") == "textarea":
        return "textarea"
    return "text"


def _display_value(kind: str, value: Any) -> Any:
    if kind in ("checkbox", "declaration"):
        return value is True or value in ("on", "true", "1", "yes")
    if kind == "choices":
        if isinstance(value, list):
            return [_as_text(v) for v in value]
        return [] if value in (None, "") else [_as_text(value)]
    if kind == "lines":
        if isinstance(value, list):
            return "\n".join(_as_text(v) for v in value)
        return _as_text(value)
    return _as_text(value)


def build_fields(
    schema: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> list[Field]:
    """The form's fields in schema order, each with its current value and its errors.

    `values` may hold typed data (pre-fill, submitted data) or the raw submitted strings.
    Errors keyed by a nested path (`a.b`) go to the top-level field `a`.
    """
    values = values or {}
    errors = errors or {}
    required = set(schema.get("required", []))
    by_field: dict[str, list[str]] = {}
    for path, messages in errors.items():
        by_field.setdefault(path.split(".", 1)[0], []).extend(messages)
    result = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        kind = widget(prop)
        items = prop.get("items") or {}
        result.append(
            Field(
                name=name,
                kind=kind,
                label=prop.get("title") or name.replace("_", " ").capitalize(),
                help=prop.get("description"),
                required=name in required,
                value=_display_value(kind, values.get(name)),
                options=_options(items if kind == "choices" else prop),
                minimum=prop.get("minimum", prop.get("exclusiveMinimum")),
                maximum=prop.get("maximum", prop.get("exclusiveMaximum")),
                max_length=prop.get("maxLength"),
                errors=by_field.get(name, []),
            )
        )
    return result


def form_errors(errors: Mapping[str, list[str]] | None, schema: Mapping[str, Any]) -> list[str]:
    """Messages that belong to no field of the form (shown above it)."""
    names = set((schema.get("properties") or {}).keys())
    return [
        message
        for path, messages in (errors or {}).items()
        if path.split(".", 1)[0] not in names
        for message in messages
    ]


# -- HTML ------------------------------------------------------------------------------------


def _attrs(**attrs: Any) -> Markup:
    parts = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        if value is True:
            parts.append(f" {key}")
        else:
            parts.append(f' {key}="{escape(_as_text(value))}"')
    return Markup("".join(parts))


def _number_text(value: float | None) -> str | None:
    return None if value is None else _as_text(value)


def render_field(f: Field, readonly: bool = False) -> Markup:
    fid = f"field-{f.name}"
    help_id = f"help-{f.name}" if f.help else None
    error_id = f"error-{f.name}" if f.errors else None
    described = " ".join(i for i in (help_id, error_id) if i) or None
    common = dict(
        name=f.name,
        disabled=readonly,
        aria_describedby=described,
        aria_invalid="true" if f.errors else None,
    )
    required_mark = (
        Markup(' <span class="required" title="required" aria-hidden="true">*</span>')
        if f.required
        else Markup("")
    )
    label = Markup('<label for="{}">{}{}</label>').format(fid, f.label, required_mark)
    out: list[Markup] = []

    if f.kind in ("checkbox", "declaration"):
        box = Markup("<input{}>").format(
            _attrs(type="checkbox", id=fid, value="true", checked=bool(f.value), **common)
        )
        text = f.help if f.kind == "declaration" and f.help else f.label
        heading = (
            Markup('<span class="field-label">{}{}</span>').format(f.label, required_mark)
            if f.kind == "declaration"
            else Markup("")
        )
        out.append(heading)
        out.append(
            Markup('<label class="check{}" for="{}">{} <span>{}</span>{}</label>').format(
                " declaration" if f.kind == "declaration" else "",
                fid,
                box,
                text,
                required_mark if f.kind == "checkbox" else Markup(""),
            )
        )
        if f.kind == "checkbox" and f.help:
            out.append(Markup('<p class="help" id="{}">{}</p>').format(help_id, f.help))
        help_done = True
    elif f.kind == "radio":
        out.append(
            Markup('<fieldset class="radios"{}><legend>{}{}</legend>').format(
                _attrs(aria_describedby=described), f.label, required_mark
            )
        )
        for i, (value, text) in enumerate(f.options):
            oid = f"{fid}-{i}"
            out.append(
                Markup('<label class="check" for="{}"><input{}> <span>{}</span></label>').format(
                    oid,
                    _attrs(
                        type="radio",
                        id=oid,
                        name=f.name,
                        value=value,
                        checked=f.value == value,
                        disabled=readonly,
                    ),
                    text,
                )
            )
        out.append(Markup("</fieldset>"))
        help_done = False
    elif f.kind == "choices":
        out.append(
            Markup('<fieldset class="radios"{}><legend>{}{}</legend>').format(
                _attrs(aria_describedby=described), f.label, required_mark
            )
        )
        for i, (value, text) in enumerate(f.options):
            oid = f"{fid}-{i}"
            out.append(
                Markup('<label class="check" for="{}"><input{}> <span>{}</span></label>').format(
                    oid,
                    _attrs(
                        type="checkbox",
                        id=oid,
                        name=f.name,
                        value=value,
                        checked=value in f.value,
                        disabled=readonly,
                    ),
                    text,
                )
            )
        out.append(Markup("</fieldset>"))
        help_done = False
    elif f.kind == "select":
        out.append(label)
        options = [Markup('<option value="">Choose…</option>')]
        for value, text in f.options:
            options.append(
                Markup("<option{}>{}</option>").format(
                    _attrs(value=value, selected=f.value == value), text
                )
            )
        out.append(
            Markup("<select{}>{}</select>").format(
                _attrs(id=fid, required=f.required, **common), Markup("").join(options)
            )
        )
        help_done = False
    elif f.kind in ("textarea", "lines"):
        out.append(label)
        out.append(
            Markup("<textarea{}>{}</textarea>").format(
                _attrs(
                    id=fid,
                    rows=5 if f.kind == "textarea" else 4,
                    maxlength=f.max_length if f.kind == "textarea" else None,
                    required=f.required,
                    **common,
                ),
                f.value,
            )
        )
        if f.kind == "lines":
            out.append(Markup('<p class="help">One entry per line.</p>'))
        help_done = False
    elif f.kind == "file":
        out.append(label)
        out.append(
            Markup("<input{}>").format(
                _attrs(
                    type="file",
                    id=fid,
                    accept=".pdf,.png,.jpg,.jpeg,.txt",
                    required=f.required and not readonly,
                    **common,
                )
            )
        )
        help_done = False
    else:
        out.append(label)
        input_type = {"integer": "number", "number": "number", "date": "date"}.get(f.kind, "text")
        out.append(
            Markup("<input{}>").format(
                _attrs(
                    type=input_type,
                    id=fid,
                    value=f.value,
                    min=_number_text(f.minimum) if f.kind in ("integer", "number") else None,
                    max=_number_text(f.maximum) if f.kind in ("integer", "number") else None,
                    step="1" if f.kind == "integer" else ("any" if f.kind == "number" else None),
                    inputmode="numeric" if f.kind == "integer" else None,
                    maxlength=f.max_length if f.kind == "text" else None,
                    required=f.required,
                    **common,
                )
            )
        )
        help_done = False

    if f.help and not help_done and f.kind != "declaration":
        out.insert(
            len(out),
            Markup('<p class="help" id="{}">{}</p>').format(help_id, f.help),
        )
    for message in f.errors:
        out.append(Markup('<p class="field-error" id="{}">{}</p>').format(error_id, message))
    css = "field" + (" has-error" if f.errors else "") + f" field-{f.kind}"
    return Markup('<div class="{}">{}</div>').format(css, Markup("").join(out))


def render_fields(fields: list[Field], readonly: bool = False) -> Markup:
    return Markup("\n").join(render_field(f, readonly) for f in fields)


def has_file_fields(schema: Mapping[str, Any]) -> bool:
    return any(
        isinstance(p, Mapping) and p.get("x-widget") == "file"
        for p in (schema.get("properties") or {}).values()
    )


# -- submitted form -> data ------------------------------------------------------------------


def _convert(kind: str | None, text: str, label: str) -> tuple[Any, str | None]:
    if kind == "integer":
        try:
            return int(text, 10), None
        except ValueError:
            return None, f"{label} must be a whole number"
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return None, f"{label} must be a number"
        if not math.isfinite(number):
            return None, f"{label} must be a number"
        return (int(number) if number.is_integer() else number), None
    if kind == "boolean":
        if text.lower() in ("true", "on", "1", "yes"):
            return True, None
        if text.lower() in ("false", "off", "0", "no"):
            return False, None
        return None, f"{label} must be yes or no"
    return text, None


def _enum_value(prop: Mapping[str, Any], text: str) -> Any:
    """The enum member whose text form is `text` (keeps numbers numbers), else `text`."""
    for member in prop.get("enum", []):
        if _as_text(member) == text:
            return member
    return text


def parse_submission(
    schema: Mapping[str, Any], form: Any
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Convert an HTML form (a werkzeug MultiDict) to data of the schema's types.

    Empty optional inputs are left out; an unchecked checkbox is `false` except for a
    `const: true` declaration, which is then left out (so "required" explains it). Values
    that cannot be converted become that field's error. File inputs are left to the caller.
    """
    data: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        kind = widget(prop)
        label = prop.get("title") or name
        if kind == "file":
            continue
        if kind in ("checkbox", "declaration"):
            raw = form.get(name)
            if raw is None or raw == "":
                if kind == "checkbox":
                    data[name] = False
                continue
            value, error = _convert("boolean", raw, label)
            if error:
                errors[name] = [error]
            else:
                data[name] = value
            continue
        if kind in ("lines", "choices"):
            items = prop.get("items") or {}
            if kind == "lines":
                raw_items = [line.strip() for line in form.get(name, "").splitlines()]
            else:
                raw_items = [v.strip() for v in form.getlist(name)]
            raw_items = [v for v in raw_items if v]
            if not raw_items:
                continue
            converted = []
            for text in raw_items:
                value, error = _convert(_type(items), text, label)
                if error:
                    errors.setdefault(name, []).append(f"{error} ({text!r})")
                else:
                    converted.append(_enum_value(items, value) if "enum" in items else value)
            if name not in errors:
                data[name] = converted
            continue
        raw = form.get(name)
        if raw is None:
            continue
        text = raw.strip()
        if text == "":
            continue
        if "enum" in prop:
            data[name] = _enum_value(prop, text)
            continue
        value, error = _convert(_type(prop), text, label)
        if error:
            errors[name] = [error]
        else:
            data[name] = value
    return data, errors


def raw_values(schema: Mapping[str, Any], form: Any) -> dict[str, Any]:
    """The submitted inputs as they were typed, to show them again after an error."""
    values: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        kind = widget(prop)
        if kind == "choices":
            values[name] = form.getlist(name)
        elif kind != "file":
            values[name] = form.get(name, "")
    return values


def prefill_values(schema: Mapping[str, Any], case_data: Mapping[str, Any]) -> dict[str, Any]:
    """Starting values from the case data for properties that name an `x-prefill` key
    (a dotted key reaches into nested objects)."""
    values: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        key = prop.get("x-prefill") if isinstance(prop, Mapping) else None
        if not isinstance(key, str):
            continue
        current: Any = case_data
        for part in key.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        if current is not None:
            values[name] = current
    return values


def prefill_keys(schema: Mapping[str, Any]) -> bool:
    return any(
        isinstance(p, Mapping) and "x-prefill" in p
        for p in (schema.get("properties") or {}).values()
    )


def display_value(prop: Mapping[str, Any], value: Any) -> str:
    """A submitted value as a person reads it (enum labels, yes/no)."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if "enum" in prop:
        options = dict(_options(prop))
        return options.get(_as_text(value), _as_text(value))
    if isinstance(value, list):
        items = prop.get("items") or {}
        return ", ".join(display_value(items, v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_as_text(v)}" for k, v in value.items())
    return _as_text(value)
