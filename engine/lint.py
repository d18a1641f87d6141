"""`certrail models lint`: every check a model must pass before it runs.

Parsing (hardened XML, BPMN 2.0 XSD, SpiffWorkflow) comes from `runtime.specs`; this module
adds Certrail's semantics: each user task's role, form and due duration, impartiality
references, scripts and conditions that compile in the sandbox, quoted timer expressions,
known system operations, call activities that resolve, and diagram interchange for bpmn-js.
Each finding names the file and the element id.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from lxml import etree

from .errors import Finding, ModelError
from .forms import FormRegistry
from .impartiality.policy import RULE_IDS
from .models.people import ROLES
from .runtime.sandbox import SandboxViolation, compile_restricted
from .runtime.specs import NS, ParsedModel, is_valid_duration, parse_model
from .system_actions import SYSTEM_OPERATIONS

KNOWN_ROLES = set(ROLES)
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
_FLOW_NODES = (
    "startEvent",
    "endEvent",
    "userTask",
    "task",
    "manualTask",
    "serviceTask",
    "scriptTask",
    "sendTask",
    "receiveTask",
    "businessRuleTask",
    "callActivity",
    "subProcess",
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
    "eventBasedGateway",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
)


def lint_files(
    paths: Iterable[Path],
    forms: FormRegistry,
    known_processes: set[str] | None = None,
    context: Iterable[Path] = (),
) -> list[Finding]:
    """Parse and check each BPMN file; a file that does not parse yields its parse findings.

    `context` names further model files (the shipped library) whose processes and task ids
    references may point at.
    """
    parsed: list[ParsedModel] = []
    findings: list[Finding] = []
    for path in paths:
        path = Path(path)
        try:
            source = path.read_bytes()
        except OSError as exc:
            findings.append(
                Finding("error", str(path), None, f"cannot read the file: {exc.strerror}")
            )
            continue
        try:
            parsed.append(parse_model(source, str(path)))
        except ModelError as exc:
            findings.extend(exc.findings or [Finding("error", str(path), None, exc.message)])
    processes = set(known_processes or ()) | {m.process_id for m in parsed}
    all_task_ids = _element_ids_of_files(context)
    for model in parsed:
        all_task_ids |= _element_ids(model)
    for model in parsed:
        findings.extend(lint_model(model, forms, processes, all_task_ids))
    return findings


def lint_model(
    model: ParsedModel, forms: FormRegistry, processes: set[str], task_ids: set[str]
) -> list[Finding]:
    found: list[Finding] = []

    def add(severity: str, element: str | None, message: str) -> None:
        found.append(Finding(severity, model.filename, element, message))

    root = model.tree.getroot()
    process = root.find(f"{{{NS['bpmn']}}}process")
    for props in model.user_tasks.values():
        tid = props.spec_id
        if not props.role:
            add("error", tid, "user task has no role (set the lane or the 'role' property)")
        elif props.role not in KNOWN_ROLES:
            add(
                "error",
                tid,
                f"role '{props.role}' is not a Certrail role ({', '.join(sorted(KNOWN_ROLES))})",
            )
        if not props.form:
            add("error", tid, "user task has no 'form' property")
        elif props.form not in forms:
            add("error", tid, f"form '{props.form}' does not exist in forms/")
        if not props.due:
            add("warning", tid, "user task has no 'due' duration; it can never be overdue")
        elif not is_valid_duration(props.due):
            add("error", tid, f"due '{props.due}' is not an ISO 8601 duration such as P10D")
        for name in ("remind_before", "escalate_after"):
            value = getattr(props, name)
            if value and not is_valid_duration(value):
                add("error", tid, f"{name} '{value}' is not an ISO 8601 duration such as P2D")
        for rule in props.sod:
            if rule not in RULE_IDS:
                add(
                    "error",
                    tid,
                    f"unknown impartiality rule '{rule}' (known: {', '.join(RULE_IDS)})",
                )
        for ref in props.exclude_performers_of:
            if ref not in task_ids:
                add(
                    "error",
                    tid,
                    f"exclude_performers_of names '{ref}', which is no task of these models",
                )
        if props.assignee_from and props.form in forms:
            if props.assignee_from not in _all_form_fields(forms):
                add(
                    "warning",
                    tid,
                    f"assignee_from names field '{props.assignee_from}', which no form has",
                )
    if process is not None:
        _lint_xml(model, process, processes, add)
    return found


def _lint_xml(model: ParsedModel, process: etree._Element, processes: set[str], add) -> None:
    bpmn = NS["bpmn"]
    for flow in process.iter(f"{{{bpmn}}}sequenceFlow"):
        condition = flow.find(f"{{{bpmn}}}conditionExpression")
        if condition is not None and (condition.text or "").strip():
            _check_code(condition.text.strip(), "eval", flow.get("id"), "condition", add)
    for script_task in process.iter(f"{{{bpmn}}}scriptTask"):
        script = script_task.find(f"{{{bpmn}}}script")
        if script is not None and (script.text or "").strip():
            _check_code(script.text, "exec", script_task.get("id"), "script", add)
    for tag in ("preScript", "postScript"):
        for node in process.iter(f"{{{SPIFF_NS}}}{tag}"):
            owner = node.getparent().getparent()
            _check_code(node.text or "", "exec", owner.get("id"), tag, add)
    for operator in process.iter(f"{{{SPIFF_NS}}}serviceTaskOperator"):
        owner = operator.getparent().getparent()
        if operator.get("id") not in SYSTEM_OPERATIONS:
            add(
                "error",
                owner.get("id"),
                f"unknown system operation '{operator.get('id')}' (known: {', '.join(SYSTEM_OPERATIONS)})",
            )
    for call in process.iter(f"{{{bpmn}}}callActivity"):
        called = call.get("calledElement")
        if called not in processes:
            add(
                "error",
                call.get("id"),
                f"call activity calls '{called}', which is no known process",
            )
    for timer in process.iter(f"{{{bpmn}}}timerEventDefinition"):
        owner = timer.getparent()
        for child in timer:
            _check_timer(child, owner.get("id"), add)
    for gateway in process.iter(f"{{{bpmn}}}exclusiveGateway", f"{{{bpmn}}}inclusiveGateway"):
        outgoing = gateway.findall(f"{{{bpmn}}}outgoing")
        if len(outgoing) > 1 and not gateway.get("default"):
            add(
                "warning",
                gateway.get("id"),
                "gateway has no default flow: a case stops if no condition holds",
            )
    _check_diagram(model, process, add)


def _check_code(source: str, mode: str, element: str | None, what: str, add) -> None:
    try:
        compile_restricted(source.strip() if mode == "eval" else _dedent(source), mode)
    except SyntaxError as exc:
        add("error", element, f"{what} is not valid Python: {exc.msg} (line {exc.lineno})")
    except SandboxViolation as exc:
        add("error", element, f"{what} breaks the sandbox rules: {exc}")


def _dedent(source: str) -> str:
    import textwrap

    return textwrap.dedent(source)


def _check_timer(node: etree._Element, element: str | None, add) -> None:
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

    expression = (node.text or "").strip()
    kind = etree.QName(node).localname
    if not expression:
        add("error", element, f"timer {kind} is empty")
        return
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        add(
            "error",
            element,
            f'timer expression {expression!r} is not a valid expression; quote literal values: "{expression}"',
        )
        return
    body = tree.body
    if isinstance(body, ast.Name) or (
        isinstance(body, ast.BinOp) and expression[:1].upper() in "PR"
    ):
        add("error", element, f'timer expression {expression} must be quoted: "{expression}"')
        return
    if isinstance(body, ast.Constant) and isinstance(body.value, str):
        value = body.value
        try:
            if kind == "timeCycle":
                TimerEventDefinition.parse_iso_recurring_interval(value)
            elif kind == "timeDuration":
                TimerEventDefinition.parse_iso_duration(value)
                if not value.upper().startswith("P"):
                    raise ValueError
            else:
                TimerEventDefinition.get_datetime(value)
        except Exception:  # noqa: BLE001 - the library raises bare Exception on bad input
            add("error", element, f"timer {kind} {value!r} is not a valid ISO 8601 value")
        return
    _check_code(expression, "eval", element, "timer expression", add)


def _check_diagram(model: ParsedModel, process: etree._Element, add) -> None:
    bpmn, di = NS["bpmn"], NS["bpmndi"]
    root = model.tree.getroot()
    shapes = {s.get("bpmnElement") for s in root.iter(f"{{{di}}}BPMNShape")}
    edges = {e.get("bpmnElement") for e in root.iter(f"{{{di}}}BPMNEdge")}
    if not shapes and not edges:
        add(
            "warning",
            process.get("id"),
            "the model has no diagram layout (BPMNDI); the editor cannot draw it",
        )
        return
    for tag in _FLOW_NODES:
        for node in process.iter(f"{{{bpmn}}}{tag}"):
            if node.get("id") not in shapes:
                add("warning", node.get("id"), f"{tag} has no shape in the diagram")
    for flow in process.iter(f"{{{bpmn}}}sequenceFlow"):
        if flow.get("id") not in edges:
            add("warning", flow.get("id"), "sequence flow has no edge in the diagram")


def _element_ids(model: ParsedModel) -> set[str]:
    return {el.get("id") for el in model.tree.getroot().iter() if el.get("id")}


def _element_ids_of_files(paths: Iterable[Path]) -> set[str]:
    ids: set[str] = set()
    for path in paths:
        try:
            model = parse_model(Path(path).read_bytes(), str(path))
        except (ModelError, OSError):
            continue
        ids |= _element_ids(model)
    return ids


def _all_form_fields(forms: FormRegistry) -> set[str]:
    fields: set[str] = set()
    for name in forms.names():
        fields.update(forms.get(name).field_names)
    return fields
