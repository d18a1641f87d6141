"""Structural rules on a process's flow, in the spirit of bpmnlint's recommended set.

They read the XML (not the SpiffWorkflow spec), so they also explain models that SpiffWorkflow
refuses to parse. Each finding's message starts with the rule's name (`no-disconnected: ...`).
Problems that break or silently change execution are errors; style problems are warnings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from .runtime.specs import BPMN_NS

_B = f"{{{BPMN_NS}}}"
ACTIVITIES = frozenset(
    {
        "task",
        "userTask",
        "manualTask",
        "serviceTask",
        "scriptTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
    }
)
SUB_PROCESSES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
GATEWAYS = frozenset(
    {
        "exclusiveGateway",
        "parallelGateway",
        "inclusiveGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
EVENTS = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
    }
)
FLOW_NODES = ACTIVITIES | GATEWAYS | EVENTS

Report = Callable[[str, str | None, str, str], None]  # severity, element id, rule, message


@dataclass
class _Node:
    element: etree._Element
    kind: str
    incoming: list[etree._Element] = field(default_factory=list)
    outgoing: list[etree._Element] = field(default_factory=list)

    @property
    def id(self) -> str | None:
        return self.element.get("id")

    def definitions(self) -> list[str]:
        return [
            etree.QName(child).localname
            for child in self.element
            if isinstance(child.tag, str) and child.tag.endswith("EventDefinition")
        ]


def check_flow(process: etree._Element, report: Report) -> None:
    """Run every flow rule on `process` and its sub-processes."""
    nodes: dict[str, _Node] = {}
    for element in process.iter(*(_B + kind for kind in FLOW_NODES)):
        if element.get("id"):
            nodes[element.get("id")] = _Node(element, etree.QName(element).localname)
    flows = [f for f in process.iter(_B + "sequenceFlow")]
    _connect(flows, nodes, report)
    _check_containers(process, report)
    successors = _successors(nodes)
    for node in nodes.values():
        _check_node(node, report)
        _check_join(node, successors, report)
    _check_duplicate_flows(flows, report)


def _connect(flows: list[etree._Element], nodes: dict[str, _Node], report: Report) -> None:
    for flow in flows:
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        for end, ref in (("source", source), ("target", target)):
            if ref not in nodes:
                report(
                    "error",
                    flow.get("id"),
                    "flow-references",
                    f"the sequence flow's {end} '{ref or ''}' is no element of the process",
                )
        if source in nodes:
            nodes[source].outgoing.append(flow)
        if target in nodes:
            nodes[target].incoming.append(flow)


def _check_containers(process: etree._Element, report: Report) -> None:
    containers = [process] + [
        sub
        for sub in process.iter(_B + "subProcess", _B + "transaction")
        if sub.get("triggeredByEvent") != "true"
    ]
    for container in containers:
        kind = "sub-process" if container is not process else "process"
        starts = container.findall(_B + "startEvent")
        if not starts:
            report(
                "error",
                container.get("id"),
                "start-event-required",
                f"the {kind} has no start event",
            )
        blank = [s for s in starts if not _Node(s, "startEvent").definitions()]
        if len(blank) > 1:
            report(
                "error",
                container.get("id"),
                "single-blank-start-event",
                f"the {kind} has {len(blank)} blank start events; it may have only one",
            )
        if not container.findall(_B + "endEvent"):
            report(
                "error", container.get("id"), "end-event-required", f"the {kind} has no end event"
            )


def _check_node(node: _Node, report: Report) -> None:
    element, kind = node.element, node.kind
    if _exempt(node):
        return
    if not node.incoming and not node.outgoing and kind != "boundaryEvent":
        report("error", node.id, "no-disconnected", "the element is not connected to the flow")
        return
    if kind == "boundaryEvent" and not node.outgoing:
        report(
            "error",
            node.id,
            "no-disconnected",
            "the boundary event has no outgoing flow: when it fires, nothing follows",
        )
        return
    if not node.incoming and kind not in ("startEvent", "boundaryEvent") and not _is_link(node):
        report(
            "error",
            node.id,
            "no-implicit-start",
            "the element has no incoming flow, so it can never be reached",
        )
    if not node.outgoing and kind != "endEvent" and not _is_link(node):
        report(
            "warning",
            node.id,
            "no-implicit-end",
            "the element has no outgoing flow; end the path with an end event",
        )
    if kind == "startEvent" and node.incoming:
        report("error", node.id, "start-event-incoming", "a start event cannot have incoming flows")
    if kind == "endEvent" and node.outgoing:
        report("error", node.id, "end-event-outgoing", "an end event cannot have outgoing flows")
    default = element.get("default")
    conditional = [f for f in node.outgoing if _has_condition(f)]
    if kind in GATEWAYS:
        _check_gateway(node, default, conditional, report)
    else:
        plain = [f for f in node.outgoing if not _has_condition(f) and f.get("id") != default]
        if len(plain) > 1:
            report(
                "error",
                node.id,
                "no-implicit-split",
                f"{len(plain)} outgoing flows without conditions split the path implicitly; "
                "use a parallel or exclusive gateway",
            )
        if conditional or default:
            _require_conditions(node, default, report)
    if _label_required(node) and not (element.get("name") or "").strip():
        report("warning", node.id, "label-required", f"the {kind} has no name")


def _check_join(node: _Node, successors: dict[str, set[str]], report: Report) -> None:
    """fake-join: several paths into an activity or event that do not merge there. A flow that
    loops back from after the element (a rework loop) is no second path: its token comes later."""
    if node.kind in GATEWAYS or len(node.incoming) < 2 or _exempt(node):
        return
    downstream = _reachable(node.id, successors)
    forward = [f for f in node.incoming if f.get("sourceRef") not in downstream]
    if len(forward) > 1:
        report(
            "warning",
            node.id,
            "fake-join",
            f"{len(forward)} incoming flows do not join here: the element runs once per "
            "arriving path; join them with a gateway",
        )


def _successors(nodes: dict[str, _Node]) -> dict[str, set[str]]:
    """Which elements follow which: sequence flows, and an activity's boundary events."""
    graph: dict[str, set[str]] = {node_id: set() for node_id in nodes}
    for node_id, node in nodes.items():
        graph[node_id].update(f.get("targetRef") for f in node.outgoing)
        attached = node.element.get("attachedToRef")
        if node.kind == "boundaryEvent" and attached in graph:
            graph[attached].add(node_id)
    return graph


def _reachable(start: str | None, graph: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(graph.get(start, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(graph.get(current, ()))
    return seen


def _check_gateway(node: _Node, default: str | None, conditional: list, report: Report) -> None:
    kind = node.kind
    if len(node.incoming) == 1 and len(node.outgoing) == 1:
        report(
            "warning",
            node.id,
            "superfluous-gateway",
            "the gateway has one incoming and one outgoing flow; it does nothing",
        )
    if len(node.incoming) > 1 and len(node.outgoing) > 1:
        report(
            "warning",
            node.id,
            "no-gateway-join-fork",
            "the gateway both joins and forks; use one gateway for each",
        )
    if kind in ("exclusiveGateway", "inclusiveGateway") and len(node.outgoing) > 1:
        _require_conditions(node, default, report)
    elif kind == "parallelGateway" and (conditional or default):
        report(
            "warning",
            node.id,
            "conditional-flows",
            "a parallel gateway ignores conditions and default flows",
        )


def _require_conditions(node: _Node, default: str | None, report: Report) -> None:
    if default and default not in {f.get("id") for f in node.outgoing}:
        report(
            "error",
            node.id,
            "conditional-flows",
            f"the default flow '{default}' is not an outgoing flow of this element",
        )
    for flow in node.outgoing:
        if not _has_condition(flow) and flow.get("id") != default:
            report(
                "error",
                flow.get("id"),
                "conditional-flows",
                f"the flow leaving '{node.element.get('name') or node.id}' has no condition "
                "and is not the default flow",
            )


def _check_duplicate_flows(flows: list[etree._Element], report: Report) -> None:
    pairs = Counter((f.get("sourceRef"), f.get("targetRef")) for f in flows)
    reported: set[tuple[str | None, str | None]] = set()
    for flow in flows:
        pair = (flow.get("sourceRef"), flow.get("targetRef"))
        if pairs[pair] > 1 and pair not in reported and not _has_condition(flow):
            reported.add(pair)
            report(
                "error",
                flow.get("id"),
                "no-duplicate-sequence-flows",
                f"{pairs[pair]} sequence flows connect '{pair[0]}' to '{pair[1]}'",
            )


def _exempt(node: _Node) -> bool:
    """Elements that need no connection: event sub-processes, compensation handlers and
    boundaries, the contents of ad-hoc sub-processes."""
    element = node.element
    parent = element.getparent()
    if parent is not None and etree.QName(parent).localname == "adHocSubProcess":
        return True
    if element.get("triggeredByEvent") == "true" or element.get("isForCompensation") == "true":
        return True
    return node.kind == "boundaryEvent" and node.definitions() == ["compensateEventDefinition"]


def _is_link(node: _Node) -> bool:
    definitions = node.definitions()
    return bool(definitions) and all(d == "linkEventDefinition" for d in definitions)


def _has_condition(flow: etree._Element) -> bool:
    return flow.find(_B + "conditionExpression") is not None


def _label_required(node: _Node) -> bool:
    if node.kind in ("parallelGateway", "eventBasedGateway") or node.kind in SUB_PROCESSES:
        return False
    if node.kind in GATEWAYS:
        return len(node.outgoing) > 1
    return True
