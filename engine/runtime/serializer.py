"""Serialization of a running case: one JSON document per case, without its specs.

The specs belong to the model versions (stored once, cached in memory), so the per-case
document holds only the task tree and data. Restoring takes the specs from the cache.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

STATE_FORMAT = "certrail-1"


class _WorkflowWithoutSpecsConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow):
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None):
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _make_registry():
    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = _WorkflowWithoutSpecsConverter
    return BpmnWorkflowSerializer.configure(config)


class StateSerializer:
    """Turns workflows and specs into JSON text and back."""

    def __init__(self) -> None:
        self._serializer = BpmnWorkflowSerializer(_make_registry())
        self._registry = self._serializer.registry

    @property
    def registry(self) -> Any:
        """The converter registry (what SpiffWorkflow's spec diff compares specs with)."""
        return self._registry

    def dump_workflow(self, workflow: BpmnWorkflow) -> str:
        self._registry._encoder_mode = True
        try:
            dct = self._registry.convert(workflow)
        finally:
            self._registry._encoder_mode = False
        dct["format"] = STATE_FORMAT
        return json.dumps(dct, cls=self._serializer._encoder_cls, separators=(",", ":"))

    def load_workflow(
        self,
        state: str,
        spec: BpmnProcessSpec,
        subprocess_specs: dict[str, BpmnProcessSpec],
        script_engine: Any,
    ) -> BpmnWorkflow:
        dct = json.loads(state)
        dct.pop("format", None)
        workflow = self._registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs)
        workflow.script_engine = script_engine
        return workflow

    def dump_spec(self, spec: BpmnProcessSpec) -> str:
        return json.dumps(self._registry.convert(spec), separators=(",", ":"))

    def load_spec(self, spec_json: str) -> BpmnProcessSpec:
        return self._registry.restore(json.loads(spec_json))
