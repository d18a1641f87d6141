"""Every check a model must pass before it runs, for `certrail models lint` and for models
edited in the browser (`engine.validation`).

Parsing (hardened XML, BPMN 2.0 XSD, SpiffWorkflow) comes from `runtime.specs`, the flow
rules from `flow_rules`; this module runs them all and adds Certrail's semantics: each user task's role, form and due duration, impartiality
references, scripts and conditions that compile in the sandbox, quoted timer expressions,
known system operations, call activities that resolve, and diagram interchange for bpmn-js.
Each finding names the file and the element's id and name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

from lxml import etree

from .errors import Finding, ModelError
from .flow_rules import FLOW_NODES, check_flow
from .forms import Form, FormRegistry, form_of_schema
from .impartiality.policy import RULE_IDS
from .models.people import ROLES
from .runtime.sandbox import SandboxViolation, compile_restricted
from .runtime.specs import NS, ParsedModel, is_valid_duration, parse_model, schema_violations
from .runtime.xml import UnsafeXMLError, parse_untrusted_xml
from .system_actions import SYSTEM_OPERATIONS

KNOWN_ROLES = set(ROLES)
# How a finding says that code in the model would not run in the sandbox.
SANDBOX_BREACH = "breaks the sandbox rules"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


def lint_files(
    paths: Iterable[Path],
    forms: FormRegistry,
    known_processes: set[str] | None = None,
    context: Iterable[Path] = (),
) -> list[Finding]:
    """Check each BPMN file; a file that does not parse yields its parse findings.

    `context` names further model files (the shipped library) whose processes and task ids
    references may point at.
    """
    sources: list[tuple[str, bytes]] = []
    findings: list[Finding] = []
    for path in paths:
        path = Path(path)
        try:
            sources.append((str(path), path.read_bytes()))
        except OSError as exc:
            findings.append(
                Finding("error", str(path), None, f"cannot read the file: {exc.strerror}")
            )
    processes = set(known_processes or ())
    task_ids = _element_ids_of_files(context)
    for _, source in sources:
        ids, process_ids = _ids_of_source(source)
        task_ids |= ids
        processes |= process_ids
    for filename, source in sources:
        found, _ = lint_source(source, filename, forms, processes, task_ids)
        findings.extend(found)
    return findings


def lint_source(
    source: bytes | str,
    filename: str,
    forms: FormRegistry,
    processes: set[str],
    task_ids: set[str],
    extra_forms: Mapping[str, dict] | None = None,
) -> tuple[list[Finding], ParsedModel | None]:
    """Every check of one model, in order: hardened XML, one BPMN process, the BPMN 2.0 XSD,
    the SpiffWorkflow parse, the flow rules and Certrail's semantics. Returns the findings
    (each with its element's id and name) and the parsed model, or None if it did not parse.

    `extra_forms` are forms edited with this model (name -> JSON Schema): they count as
    existing, and their schemas are checked too."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    found: list[Finding] = []

    def add(severity: str, element: str | None, message: str) -> None:
        found.append(Finding(severity, filename, element, message))

    try:
        tree = parse_untrusted_xml(data)
    except UnsafeXMLError as exc:
        add("error", None, str(exc))
        return found, None
    process = _single_process(tree, add)
    if process is None:
        return found, None
    schema_ok = True
    for line, message in schema_violations(tree):
        schema_ok = False
        add("error", _element_at_line(tree, line), f"BPMN 2.0 schema: {message} (line {line})")
    model = None
    executable = process.get("isExecutable") == "true"
    if not executable:
        add("error", process.get("id"), 'the process is not executable: set isExecutable="true"')
    if schema_ok and executable:
        try:
            model = parse_model(data, filename, check_schema=False)
        except ModelError as exc:
            found.extend(exc.findings or [Finding("error", filename, None, exc.message)])
    check_flow(process, lambda sev, el, rule, msg: add(sev, el, f"{rule}: {msg}"))
    forms_view = _Forms(forms, extra_forms or {})
    for name, problem in forms_view.problems:
        add("error", name, f"form '{name}' edited with this model: {problem}")
    if model is not None:
        own_ids = {el.get("id") for el in tree.getroot().iter() if isinstance(el.tag, str)}
        _lint_user_tasks(model, forms_view, task_ids | own_ids, add)
    _lint_xml(tree, process, processes, add)
    _name_elements(found, tree)
    return found, model


def _single_process(tree: etree._ElementTree, add) -> etree._Element | None:
    root = tree.getroot()
    if root.tag != f"{{{NS['bpmn']}}}definitions":
        add(
            "error",
            None,
            f"not a BPMN 2.0 file: the root element is <{etree.QName(root).localname}> "
            f"in namespace '{etree.QName(root).namespace or ''}', not bpmn:definitions",
        )
        return None
    processes = root.findall(f"{{{NS['bpmn']}}}process")
    if len(processes) != 1:
        ids = ", ".join(p.get("id") or "?" for p in processes)
        add(
            "error",
            None,
            f"a model file must hold exactly one process, found {len(processes)}"
            + (f" ({ids})" if ids else ""),
        )
        return None
    if not processes[0].get("id"):
        add("error", None, "the process has no id")
        return None
    return processes[0]


def _element_at_line(tree: etree._ElementTree, line: int | None) -> str | None:
    """The id of the element that starts on `line`, or of the nearest one above it."""
    if not line:
        return None
    best: str | None = None
    for element in tree.getroot().iter():
        if element.sourceline is None or element.sourceline > line:
            if element.sourceline and element.sourceline > line:
                break
            continue
        if element.get("id"):
            best = element.get("id")
    return best


def _name_elements(findings: list[Finding], tree: etree._ElementTree) -> None:
    names = {
        el.get("id"): el.get("name")
        for el in tree.getroot().iter()
        if isinstance(el.tag, str) and el.get("id") and el.get("name")
    }
    for finding in findings:
        if finding.element_id and finding.element_name is None:
            finding.element_name = names.get(finding.element_id)


class _Forms:
    """The form registry plus the forms edited with the model being checked."""

    def __init__(self, registry: FormRegistry, extra: Mapping[str, dict]):
        self.registry = registry
        self.extra: dict[str, Form] = {}
        self.problems: list[tuple[str, str]] = []
        for name, schema in extra.items():
            form, findings = form_of_schema(name, schema)
            self.problems.extend((name, finding.message) for finding in findings)
            if form is not None:
                self.extra[name] = form

    def __contains__(self, name: str) -> bool:
        return name in self.extra or name in self.registry

    def field_names(self) -> set[str]:
        fields = _all_form_fields(self.registry)
        for form in self.extra.values():
            fields.update(form.field_names)
        return fields


def _lint_user_tasks(model: ParsedModel, forms: _Forms, task_ids: set[str], add) -> None:
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
            if props.assignee_from not in forms.field_names():
                add(
                    "warning",
                    tid,
                    f"assignee_from names field '{props.assignee_from}', which no form has",
                )


def _lint_xml(tree: etree._ElementTree, process: etree._Element, processes: set[str], add) -> None:
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
    _check_diagram(tree, process, add)


def _check_code(source: str, mode: str, element: str | None, what: str, add) -> None:
    try:
        compile_restricted(source.strip() if mode == "eval" else _dedent(source), mode)
    except SyntaxError as exc:
        add("error", element, f"{what} is not valid Python: {exc.msg} (line {exc.lineno})")
    except SandboxViolation as exc:
        add("error", element, f"{what} {SANDBOX_BREACH}: {exc}")


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


def _check_diagram(tree: etree._ElementTree, process: etree._Element, add) -> None:
    bpmn, di = NS["bpmn"], NS["bpmndi"]
    root = tree.getroot()
    shapes = {s.get("bpmnElement") for s in root.iter(f"{{{di}}}BPMNShape")}
    edges = {e.get("bpmnElement") for e in root.iter(f"{{{di}}}BPMNEdge")}
    if not shapes and not edges:
        add(
            "warning",
            process.get("id"),
            "the model has no diagram layout (BPMNDI); the editor cannot draw it",
        )
        return
    for tag in sorted(FLOW_NODES):
        for node in process.iter(f"{{{bpmn}}}{tag}"):
            if node.get("id") not in shapes:
                add("warning", node.get("id"), f"{tag} has no shape in the diagram")
    for flow in process.iter(f"{{{bpmn}}}sequenceFlow"):
        if flow.get("id") not in edges:
            add("warning", flow.get("id"), "sequence flow has no edge in the diagram")


def _ids_of_source(source: bytes) -> tuple[set[str], set[str]]:
    """The element ids and process ids of a model file, from its XML alone."""
    try:
        root = parse_untrusted_xml(source).getroot()
    except UnsafeXMLError:
        return set(), set()
    ids = {el.get("id") for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    processes = {p.get("id") for p in root.iter(f"{{{NS['bpmn']}}}process") if p.get("id")}
    return ids, processes


def _element_ids_of_files(paths: Iterable[Path]) -> set[str]:
    ids: set[str] = set()
    for path in paths:
        try:
            ids |= _ids_of_source(Path(path).read_bytes())[0]
        except OSError:
            continue
    return ids


def _all_form_fields(forms: FormRegistry) -> set[str]:
    fields: set[str] = set()
    for name in forms.names():
        fields.update(forms.get(name).field_names)
    return fields
