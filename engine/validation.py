"""Validation of a model edited or uploaded in the browser: untrusted input, any bytes at all.

The checks are `certrail models lint`'s (engine.lint): hardened XML, one BPMN process, the
BPMN 2.0 XSD, the SpiffWorkflow parse, the flow rules and Certrail's semantics. Whatever the
input, the answer is a Validation, never an exception: a problem is a finding naming the
element's id and name, and errors block submitting and publishing while warnings do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import Finding
from .forms import FormRegistry
from .lint import lint_source
from .runtime.specs import ParsedModel


@dataclass
class Validation:
    findings: list[Finding]
    model: ParsedModel | None  # None when the source did not parse

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_model_source(
    source: bytes | str,
    forms: FormRegistry,
    *,
    known_processes: set[str],
    task_ids: set[str] = frozenset(),
    extra_forms: Mapping[str, dict] | None = None,
    filename: str = "<upload>",
) -> Validation:
    """Check a model's BPMN. `known_processes` are the process ids a call activity may call,
    `task_ids` the element ids `exclude_performers_of` may name (the model's own count too),
    `extra_forms` the forms edited with this model version (name -> JSON Schema)."""
    try:
        if not isinstance(source, (bytes, str)):
            raise TypeError(f"expected the file's bytes, got {type(source).__name__}")
        findings, model = lint_source(
            source, filename, forms, set(known_processes), set(task_ids), extra_forms
        )
    except RecursionError:
        findings, model = [_failure(filename, "the model is nested too deeply to check")], None
    except Exception as exc:  # noqa: BLE001 - the validator answers every input with findings
        message = f"the model could not be checked: {type(exc).__name__}: {exc}"
        findings, model = [_failure(filename, message)], None
    return Validation(findings, model)


def _failure(filename: str, message: str) -> Finding:
    return Finding("error", filename, None, message)
