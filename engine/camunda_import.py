"""Importing BPMN saved by Camunda Modeler (Camunda 7 `camunda:` and Camunda 8 `zeebe:`
extensions): what has a Certrail meaning becomes `spiffworkflow:properties`, the rest is
reported so the process owner knows what to redo.

Mapped on user tasks: candidate groups -> `role` (when it is a Certrail role), form key or
form id -> `form`, due date -> `due` (when it is an ISO 8601 duration). Everything else Camunda
specific (assignees, listeners, Java classes, expressions, input/output mappings, async flags,
JavaScript or Groovy scripts, JUEL conditions...) stays in the file, where it is ignored, and
yields a warning naming the element and the attribute. The diagram (BPMNDI) is not touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from .errors import Finding, ModelError
from .models.people import ROLES
from .runtime.specs import BPMN_NS, is_valid_duration
from .runtime.xml import UnsafeXMLError, parse_untrusted_xml

CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
FILENAME = "<upload>"
_B = f"{{{BPMN_NS}}}"
_FORM_PREFIX = re.compile(r"^(?:[a-z-]+:)+", re.IGNORECASE)
_FORM_SUFFIX = re.compile(r"\.(json|form|html)$", re.IGNORECASE)

_WHY = {
    "assignee": "Certrail assigns tasks by role and impartiality rules",
    "candidateUsers": "Certrail assigns tasks by role and impartiality rules",
    "class": "Java delegates do not run in Certrail; use a system operation",
    "expression": "expressions do not run in Certrail; use a system operation",
    "delegateExpression": "Java delegates do not run in Certrail; use a system operation",
    "type": "external tasks do not run in Certrail; use a system operation",
    "topic": "external tasks do not run in Certrail; use a system operation",
    "asyncBefore": "Certrail decides itself where a case waits",
    "asyncAfter": "Certrail decides itself where a case waits",
    "resultVariable": "the result of an expression is not stored by Certrail",
    "followUpDate": "set the 'due' duration and the service levels instead",
    "priority": "Certrail orders tasks by due date",
    "formHandlerClass": "forms are JSON Schemas in Certrail",
    "formRefBinding": "forms are versioned with the model in Certrail",
    "formRefVersion": "forms are versioned with the model in Certrail",
}
_WHY_ELEMENT = {
    "formData": "generated forms are not supported: make a JSON Schema form",
    "formField": "generated forms are not supported: make a JSON Schema form",
    "inputOutput": "input/output mappings are not supported",
    "ioMapping": "input/output mappings are not supported",
    "executionListener": "listeners do not run in Certrail",
    "taskListener": "listeners do not run in Certrail",
    "properties": "Camunda properties have no meaning in Certrail",
    "field": "field injection is not supported",
    "connector": "connectors do not run in Certrail; use a system operation",
    "in": "variables pass to a called process as they are",
    "out": "variables pass back from a called process as they are",
    "taskDefinition": "job workers do not run in Certrail; use a system operation",
    "taskHeaders": "task headers have no meaning in Certrail",
    "failedJobRetryTimeCycle": "Certrail retries failed steps itself",
}


@dataclass
class ImportedModel:
    source: bytes  # BPMN with camunda:* mapped to spiffworkflow:properties
    warnings: list[Finding] = field(default_factory=list)  # what could not be mapped


def import_bpmn(source: bytes) -> ImportedModel:
    """Map a Camunda Modeler file's task properties to Certrail's. Raises ModelError for
    unsafe or unparseable XML; a file without Camunda extensions comes back unchanged."""
    try:
        tree = parse_untrusted_xml(source)
    except UnsafeXMLError as exc:
        raise ModelError(str(exc), [Finding("error", FILENAME, None, str(exc))]) from None
    root = tree.getroot()
    if not _uses_camunda(root):
        return ImportedModel(source if isinstance(source, bytes) else source.encode("utf-8"))
    importer = _Importer()
    for element in list(root.iter()):
        if isinstance(element.tag, str) and etree.QName(element).namespace == BPMN_NS:
            importer.element(element)
    if importer.mapped:
        _declare_spiff_namespace(root)
    data = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    return ImportedModel(data, importer.warnings)


def _uses_camunda(root: etree._Element) -> bool:
    return any(
        isinstance(el.tag, str)
        and (
            etree.QName(el).namespace in (CAMUNDA_NS, ZEEBE_NS)
            or any(_ns(name) in (CAMUNDA_NS, ZEEBE_NS) for name in el.attrib)
        )
        for el in root.iter()
    )


class _Importer:
    def __init__(self) -> None:
        self.warnings: list[Finding] = []
        self.mapped = False

    def warn(self, element: etree._Element, message: str) -> None:
        owner = element
        while owner is not None and not owner.get("id"):
            owner = owner.getparent()
        self.warnings.append(
            Finding(
                "warning",
                FILENAME,
                owner.get("id") if owner is not None else None,
                message,
                owner.get("name") if owner is not None else None,
            )
        )

    def element(self, element: etree._Element) -> None:
        kind = etree.QName(element).localname
        properties: dict[str, str] = {}
        if kind == "userTask":
            properties = self._user_task(element)
        for name, value in list(element.attrib.items()):
            if _ns(name) in (CAMUNDA_NS, ZEEBE_NS):
                local = etree.QName(name).localname
                if local in ("candidateGroups", "formKey", "formRef", "dueDate"):
                    if kind == "userTask":
                        continue  # handled with the user task
                self.warn(element, _unmapped(name, value, _WHY.get(local)))
        if kind == "extensionElements":
            self._extensions(element)
        if kind == "scriptTask":
            self._script(element)
        if kind == "conditionExpression":
            self._condition(element)
        if properties:
            _set_properties(element, properties)
            self.mapped = True

    def _user_task(self, task: etree._Element) -> dict[str, str]:
        properties: dict[str, str] = {}
        zeebe_assignment = task.find(f"{_B}extensionElements/{{{ZEEBE_NS}}}assignmentDefinition")
        zeebe_form = task.find(f"{_B}extensionElements/{{{ZEEBE_NS}}}formDefinition")
        groups = task.get(f"{{{CAMUNDA_NS}}}candidateGroups") or (
            zeebe_assignment.get("candidateGroups") if zeebe_assignment is not None else None
        )
        if groups:
            role = self._role(task, groups)
            if role:
                properties["role"] = role
        form_key = task.get(f"{{{CAMUNDA_NS}}}formKey") or task.get(f"{{{CAMUNDA_NS}}}formRef")
        if zeebe_form is not None:
            form_key = form_key or zeebe_form.get("formId") or zeebe_form.get("formKey")
        if form_key:
            form = form_name(form_key)
            if form:
                properties["form"] = form
            else:
                self.warn(task, f"form key '{form_key}' names no form; pick the form")
        due = task.get(f"{{{CAMUNDA_NS}}}dueDate")
        if due:
            if is_valid_duration(due.strip()):
                properties["due"] = due.strip()
            else:
                self.warn(
                    task,
                    f"camunda:dueDate '{due}' is not an ISO 8601 duration such as P10D; "
                    "set the 'due' duration",
                )
        mapped = {"role": ("candidateGroups",), "form": ("formKey", "formRef"), "due": ("dueDate",)}
        for property_name, attributes in mapped.items():
            if property_name in properties:
                for attribute in attributes:
                    task.attrib.pop(f"{{{CAMUNDA_NS}}}{attribute}", None)
        return properties

    def _role(self, task: etree._Element, groups: str) -> str | None:
        names = [g.strip() for g in groups.split(",") if g.strip()]
        known = [n for n in names if n in ROLES]
        if not known:
            self.warn(
                task,
                f"candidate groups '{groups}' name no Certrail role "
                f"({', '.join(sorted(ROLES))}); set the task's role",
            )
            return None
        if len(names) > 1:
            self.warn(
                task,
                f"candidate groups '{groups}': a Certrail task has one role; '{known[0]}' was used",
            )
        return known[0]

    def _extensions(self, extensions: etree._Element) -> None:
        for child in extensions:
            if not isinstance(child.tag, str) or _ns(child.tag) not in (CAMUNDA_NS, ZEEBE_NS):
                continue
            local = etree.QName(child).localname
            if local in ("assignmentDefinition", "formDefinition"):
                owner = extensions.getparent()
                if owner is not None and etree.QName(owner).localname == "userTask":
                    if child.get("assignee"):
                        self.warn(child, _unmapped("zeebe:assignee", child.get("assignee"), None))
                    continue
            prefix = "camunda" if _ns(child.tag) == CAMUNDA_NS else "zeebe"
            reason = _WHY_ELEMENT.get(local, "it has no meaning in Certrail")
            self.warn(child, f"{prefix}:{local} cannot be mapped ({reason}); it is ignored")

    def _script(self, task: etree._Element) -> None:
        language = (task.get("scriptFormat") or "").strip().lower()
        if language and language not in ("python", "python3", "py"):
            self.warn(
                task,
                f"the script is {task.get('scriptFormat')}; Certrail runs Python scripts in a "
                "sandbox: rewrite it in Python",
            )

    def _condition(self, condition: etree._Element) -> None:
        text = (condition.text or "").strip()
        language = (condition.get("language") or "").strip().lower()
        if (language and language not in ("python", "python3", "py")) or text.startswith(
            ("${", "#{", "=")
        ):
            self.warn(
                condition,
                f"the condition {text!r} is a Camunda expression; rewrite it in Python "
                "(e.g. approved == True)",
            )


def form_name(form_key: str) -> str:
    """`embedded:app:forms/file_review.json`, `camunda-forms:bpmn:file_review.form`, or
    `file_review` -> `file_review`."""
    key = _FORM_PREFIX.sub("", form_key.strip())
    key = key.rsplit("/", 1)[-1]
    return _FORM_SUFFIX.sub("", key)


def _unmapped(name: str, value: str | None, why: str | None) -> str:
    if name.startswith("{"):
        prefix = "camunda" if _ns(name) == CAMUNDA_NS else "zeebe"
        name = f"{prefix}:{etree.QName(name).localname}"
    reason = why or "it has no meaning in Certrail"
    return f"{name}='{value}' cannot be mapped ({reason}); it is ignored"


def _ns(name: str) -> str | None:
    return etree.QName(name).namespace


def _set_properties(task: etree._Element, properties: dict[str, str]) -> None:
    extensions = task.find(f"{_B}extensionElements")
    if extensions is None:
        extensions = etree.Element(f"{_B}extensionElements")
        position = sum(
            1 for child in task if isinstance(child.tag, str) and child.tag == f"{_B}documentation"
        )
        task.insert(position, extensions)
    container = extensions.find(f"{{{SPIFF_NS}}}properties")
    if container is None:
        container = etree.SubElement(extensions, f"{{{SPIFF_NS}}}properties")
    existing = {p.get("name"): p for p in container.findall(f"{{{SPIFF_NS}}}property")}
    for name, value in properties.items():
        if name in existing:
            existing[name].set("value", value)
        else:
            etree.SubElement(container, f"{{{SPIFF_NS}}}property", name=name, value=value)


def _declare_spiff_namespace(root: etree._Element) -> None:
    """Declare `spiffworkflow` once on the definitions element (as Certrail's own files do),
    keeping every prefix the file declared: some are used only in attribute values."""
    if SPIFF_NS in root.nsmap.values():
        prefix = next(p for p, uri in root.nsmap.items() if uri == SPIFF_NS)
        top = {prefix: SPIFF_NS}
    else:
        prefix = "spiffworkflow" if "spiffworkflow" not in root.nsmap else "spiff"
        top = {prefix: SPIFF_NS}
    etree.cleanup_namespaces(
        root, top_nsmap=top, keep_ns_prefixes=[p for p in root.nsmap if p is not None]
    )
