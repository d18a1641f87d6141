"""What changed between two versions of a process model, element by element.

Elements are matched by id. An element is changed when something that affects how the
process runs or reads differs: its type or name, its Certrail properties (role, form, due,
SoD ...), a condition, a script, a timer, where its flows come from and lead to, its lane,
its call target. Moving shapes on the diagram (BPMN DI) is not a change. Each change is
described in a sentence a process owner can read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from .runtime.specs import BPMN_NS
from .runtime.xml import parse_untrusted_xml

SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
_B = f"{{{BPMN_NS}}}"
_S = f"{{{SPIFF_NS}}}"
# Children of a process that are diagram or structure rather than steps of the flow.
_CONTAINERS = {"laneSet", "extensionElements", "documentation", "ioSpecification"}
_TIMER_KINDS = {"timeDuration": "after", "timeDate": "at", "timeCycle": "every"}


@dataclass
class ElementChange:
    element_id: str
    element_type: str  # the BPMN type, e.g. "userTask"
    name: str | None
    details: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How a sentence names the element: "user task 'Review file'"."""
        kind = element_kind(self.element_type)
        return f"{kind} '{self.name}'" if self.name else f"{kind} {self.element_id}"


@dataclass
class ModelDiff:
    added: list[ElementChange] = field(default_factory=list)
    removed: list[ElementChange] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass
class _Element:
    """What the diff compares of one element."""

    element_id: str
    element_type: str
    name: str | None
    facts: dict[str, str | None]


def diff_models(old_xml: str | bytes, new_xml: str | bytes) -> ModelDiff:
    old = _elements(old_xml)
    new = _elements(new_xml)
    diff = ModelDiff()
    for element_id, element in new.items():
        if element_id not in old:
            diff.added.append(
                ElementChange(
                    element_id, element.element_type, element.name, _described(element, new)
                )
            )
    for element_id, element in old.items():
        if element_id not in new:
            diff.removed.append(ElementChange(element_id, element.element_type, element.name))
            continue
        details = _differences(element, new[element_id], old, new)
        if details:
            after = new[element_id]
            diff.changed.append(
                ElementChange(element_id, after.element_type, after.name or element.name, details)
            )
    return diff


def element_kind(element_type: str) -> str:
    """`userTask` -> "user task"."""
    return re.sub(r"(?<!^)([A-Z])", r" \1", element_type).lower()


# -- reading the elements ---------------------------------------------------------------------


def _elements(xml: str | bytes) -> dict[str, _Element]:
    root = parse_untrusted_xml(xml).getroot()
    elements: dict[str, _Element] = {}
    lanes: dict[str, str] = {}
    for process in root.iter(f"{_B}process"):
        for lane in process.iter(f"{_B}lane"):
            lane_name = lane.get("name") or lane.get("id") or ""
            for ref in lane.findall(f"{_B}flowNodeRef"):
                lanes[(ref.text or "").strip()] = lane_name
            if lane.get("id"):
                elements[lane.get("id")] = _Element(lane.get("id"), "lane", lane.get("name"), {})
        _collect(process, elements)
    flows = [e for e in elements.values() if e.element_type == "sequenceFlow"]
    for element in elements.values():
        if element.element_type in ("sequenceFlow", "lane"):
            continue
        facts = {
            "lane": lanes.get(element.element_id),
            "incoming": _ids(
                f.facts.get("from") for f in flows if f.facts.get("to") == element.element_id
            ),
            "outgoing": _ids(
                f.facts.get("to") for f in flows if f.facts.get("from") == element.element_id
            ),
        }
        element.facts.update({k: v for k, v in facts.items() if v is not None})
    return elements


def _collect(container: etree._Element, elements: dict[str, _Element]) -> None:
    for child in container:
        if not isinstance(child.tag, str) or not child.tag.startswith(_B):
            continue
        kind = etree.QName(child).localname
        element_id = child.get("id")
        if kind in _CONTAINERS or not element_id:
            continue
        elements[element_id] = _Element(element_id, kind, child.get("name"), _facts(child, kind))
        if kind in ("subProcess", "transaction", "adHocSubProcess"):
            _collect(child, elements)


def _facts(element: etree._Element, kind: str) -> dict[str, str | None]:
    facts: dict[str, str | None] = {}
    if kind == "sequenceFlow":
        facts["from"] = element.get("sourceRef")
        facts["to"] = element.get("targetRef")
        facts["condition"] = _text(element.find(f"{_B}conditionExpression"))
    extensions = element.find(f"{_B}extensionElements")
    if extensions is not None:
        for prop in extensions.iter(f"{_S}property"):
            facts[f"property:{prop.get('name')}"] = prop.get("value")
        facts["pre-script"] = _text(extensions.find(f"{_S}preScript"))
        facts["post-script"] = _text(extensions.find(f"{_S}postScript"))
        operator = extensions.find(f"{_S}serviceTaskOperator")
        facts["operation"] = operator.get("id") if operator is not None else None
    facts["script"] = _text(element.find(f"{_B}script"))
    for timer in element.findall(f"{_B}timerEventDefinition"):
        for what in ("timeDuration", "timeDate", "timeCycle"):
            found = timer.find(f"{_B}{what}")
            if found is not None:
                facts["timer"] = f"{_TIMER_KINDS[what]} {_text(found)}"
    facts["called process"] = element.get("calledElement")
    facts["default flow"] = element.get("default")
    facts["attached to"] = element.get("attachedToRef")
    facts["documentation"] = _text(element.find(f"{_B}documentation"))
    events = [etree.QName(e).localname for e in element if str(e.tag).endswith("EventDefinition")]
    facts["event"] = ", ".join(sorted(events)) or None
    return {k: v for k, v in facts.items() if v is not None}


def _text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    return " ".join("".join(element.itertext()).split()) or None


def _ids(ids) -> str | None:
    """Element ids as one comparable fact (the diff names them when it describes them)."""
    return " ".join(sorted({i for i in ids if i})) or None


def _names(elements: dict[str, _Element], ids: str | None) -> str:
    return ", ".join(sorted(_label(elements, i) for i in (ids or "").split())) or "nothing"


def _label(elements: dict[str, _Element], element_id: str) -> str:
    element = elements.get(element_id)
    return f"'{element.name}'" if element is not None and element.name else element_id


# -- describing -----------------------------------------------------------------------------


def _described(element: _Element, elements: dict[str, _Element]) -> list[str]:
    details = []
    for key, value in sorted(element.facts.items()):
        if key in ("incoming", "outgoing", "from", "to"):
            continue
        if key == "lane":
            details.append(f"in lane '{value}'")
            continue
        details.append(f"{_fact_name(key)}: {value}")
    if element.facts.get("from"):
        details.append(
            f"from {_label(elements, element.facts['from'])} "
            f"to {_label(elements, element.facts.get('to') or '')}"
        )
    if element.facts.get("incoming"):
        details.append(f"comes from {_names(elements, element.facts['incoming'])}")
    if element.facts.get("outgoing"):
        details.append(f"leads to {_names(elements, element.facts['outgoing'])}")
    return details


def _differences(
    old: _Element, new: _Element, old_all: dict[str, _Element], new_all: dict[str, _Element]
) -> list[str]:
    details = []
    if old.element_type != new.element_type:
        details.append(
            f"changed from a {element_kind(old.element_type)} to a {element_kind(new.element_type)}"
        )
    if (old.name or "") != (new.name or ""):
        details.append(f"renamed from '{old.name or ''}' to '{new.name or ''}'")
    for key in sorted(set(old.facts) | set(new.facts)):
        before, after = old.facts.get(key), new.facts.get(key)
        if before == after:
            continue
        if key in ("from", "to"):
            where = "starts at" if key == "from" else "leads to"
            details.append(
                f"now {where} {_label(new_all, after or '')} (was {_label(old_all, before or '')})"
            )
        elif key == "incoming":
            details.append(
                f"now comes from {_names(new_all, after)} (was {_names(old_all, before)})"
            )
        elif key == "outgoing":
            details.append(f"now leads to {_names(new_all, after)} (was {_names(old_all, before)})")
        elif key == "lane" and before and after:
            details.append(f"moved from lane '{before}' to lane '{after}'")
        elif key == "lane":
            details.append(
                f"placed in lane '{after}'" if after else f"taken out of lane '{before}'"
            )
        elif before is None:
            details.append(f"{_fact_name(key)} set to {after}")
        elif after is None:
            details.append(f"{_fact_name(key)} removed (was {before})")
        else:
            details.append(f"{_fact_name(key)} changed from {before} to {after}")
    return details


def _fact_name(key: str) -> str:
    return key.removeprefix("property:").replace("_", " ")
