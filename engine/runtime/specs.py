"""Parsing BPMN models into SpiffWorkflow specs, and reading Certrail's task properties.

A model file holds one executable process. Its user tasks carry Certrail's properties as
`spiffworkflow:properties`: `role`, `form`, `due` (ISO 8601 duration), `instructions`, and
the impartiality declarations `sod`, `exclude_performers_of`, `auto_assign`, and
`assignee_from` (a data field naming the user the task goes to, e.g. the examiner a clerk
assigned).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from ..errors import Finding, ModelError
from .xml import UnsafeXMLError, parse_untrusted_xml

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NS = {"bpmn": BPMN_NS, "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI"}


@dataclass(frozen=True)
class TaskProperties:
    """What Certrail reads from a user task's extension properties."""

    spec_id: str
    name: str
    role: str | None
    form: str | None
    due: str | None
    instructions: str | None
    sod: tuple[str, ...] = ()
    exclude_performers_of: tuple[str, ...] = ()
    auto_assign: bool = False
    assignee_from: str | None = None
    # Service levels: count the days of `due` as business days; when to remind and escalate.
    due_business_days: bool = False
    remind_before: str | None = None
    escalate_after: str | None = None

    @classmethod
    def of(cls, task_spec) -> TaskProperties:
        props = (getattr(task_spec, "extensions", None) or {}).get("properties", {}) or {}
        return cls(
            spec_id=task_spec.bpmn_id or task_spec.name,
            name=task_spec.bpmn_name or task_spec.bpmn_id or task_spec.name,
            role=props.get("role") or getattr(task_spec, "lane", None),
            form=props.get("form"),
            due=props.get("due"),
            instructions=props.get("instructions"),
            sod=_split(props.get("sod")),
            exclude_performers_of=_split(props.get("exclude_performers_of")),
            auto_assign=_flag(props.get("auto_assign")),
            assignee_from=props.get("assignee_from") or None,
            due_business_days=_flag(props.get("due_business_days")),
            remind_before=props.get("remind_before") or None,
            escalate_after=props.get("escalate_after") or None,
        )


def _flag(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("true", "yes", "1")


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


def due_at(start: datetime, duration: str | None) -> datetime | None:
    """`start` plus an ISO 8601 duration (`P10D`, `P1M`, `PT4H`), calendar-aware."""
    if not duration:
        return None
    parsed = TimerEventDefinition.parse_iso_duration(duration)
    return start + TimerEventDefinition.get_timedelta_from_start(parsed, start)


def is_valid_duration(duration: str) -> bool:
    try:
        if not duration.upper().startswith("P"):
            return False
        delta = due_at(datetime(2000, 1, 1), duration)
        return delta is not None and delta > datetime(2000, 1, 1)
    except Exception:  # noqa: BLE001 - SpiffWorkflow raises a bare Exception on bad input
        return False


@dataclass
class ParsedModel:
    """One BPMN file parsed: its process spec and what Certrail needs to know of it."""

    process_id: str
    name: str
    spec: BpmnProcessSpec
    source: bytes
    tree: etree._ElementTree
    filename: str
    user_tasks: dict[str, TaskProperties] = field(default_factory=dict)
    called_processes: set[str] = field(default_factory=set)

    @property
    def checksum(self) -> str:
        return checksum(self.source)


def checksum(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


_SCHEMA_LOCK = threading.Lock()


def schema_violations(tree: etree._ElementTree) -> list[tuple[int | None, str]]:
    """Every BPMN 2.0 XSD violation of `tree` as (line, message), with the schema SpiffWorkflow
    validates against (BPMN 2.0 plus the spiffworkflow extensions), loaded once per process."""
    VALIDATOR.preprocess(tree)
    schema = VALIDATOR.validator
    with _SCHEMA_LOCK:  # the error log lives on the shared schema object
        if schema.validate(tree):
            return []
        return [(error.line or None, error.message) for error in schema.error_log]


def parse_model(
    source: bytes | str, filename: str = "<upload>", *, check_schema: bool = True
) -> ParsedModel:
    """Parse untrusted BPMN into a ParsedModel, or raise ModelError with findings.

    `check_schema=False` skips the XSD validation, for a caller that has just done it."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    try:
        tree = parse_untrusted_xml(data)
    except UnsafeXMLError as exc:
        raise ModelError(str(exc), [Finding("error", filename, None, str(exc))]) from None
    parser = SpiffBpmnParser(validator=VALIDATOR if check_schema else None)
    try:
        parser.add_bpmn_xml(tree, filename)
        process_ids = parser.get_process_ids()
        if len(process_ids) != 1:
            msg = f"a model file must hold exactly one executable process, found {len(process_ids)}"
            raise ModelError(msg, [Finding("error", filename, None, msg)])
        process_id = process_ids[0]
        spec = parser.get_spec(process_id)
    except ValidationException as exc:
        element = getattr(exc, "id", None) or None
        msg = _validation_message(exc)
        raise ModelError(msg, [Finding("error", filename, element, msg)]) from None
    except RecursionError:
        msg = _TOO_LONG
        raise ModelError(msg, [Finding("error", filename, None, msg)]) from None
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the parser raises many types on bad models
        msg = f"the model could not be parsed: {type(exc).__name__}: {exc}"
        raise ModelError(msg, [Finding("error", filename, None, msg)]) from None

    model = ParsedModel(
        process_id=process_id,
        name=spec.description or process_id,
        spec=spec,
        source=data,
        tree=tree,
        filename=filename,
    )
    for task_spec in spec.task_specs.values():
        if isinstance(task_spec, UserTask):
            props = TaskProperties.of(task_spec)
            model.user_tasks[props.spec_id] = props
        if isinstance(task_spec, SubWorkflowTask):
            model.called_processes.add(task_spec.spec)
    return model


_TOO_LONG = "the process is too long to parse (more than a few hundred steps in one chain)"


def _validation_message(exc: ValidationException) -> str:
    if "RecursionError" in str(exc):  # the parser wraps it with the element it was at
        return _TOO_LONG
    text = str(exc).splitlines()[0].strip().rstrip(".") if str(exc) else type(exc).__name__
    line = getattr(exc, "line_number", None)
    return f"{text} (line {line})" if line else text
