"""Uploading a Camunda Modeler file: candidate groups, form keys and due dates become Certrail
task properties; what cannot be mapped is reported, element by element."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from engine.camunda_import import CAMUNDA_NS, SPIFF_NS, form_name, import_bpmn
from engine.errors import ModelError
from engine.forms import FormRegistry
from engine.runtime.specs import parse_model
from engine.validation import validate_model_source

ROOT = Path(__file__).resolve().parents[2]
CAMUNDA_FILE = ROOT / "tests" / "data" / "camunda7_file_review.bpmn"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DI = "http://www.omg.org/spec/BPMN/20100524/DI"


def properties_of(source: bytes, task_id: str) -> dict[str, str]:
    root = etree.fromstring(source)
    task = root.find(f".//{{{BPMN}}}userTask[@id='{task_id}']")
    return {p.get("name"): p.get("value") for p in task.iter(f"{{{SPIFF_NS}}}property")}


def warnings_about(imported, element_id: str) -> list[str]:
    return [w.message for w in imported.warnings if w.element_id == element_id]


@pytest.fixture(scope="module")
def imported():
    return import_bpmn(CAMUNDA_FILE.read_bytes())


def test_candidate_group_form_key_and_due_date_become_role_form_and_due(imported):
    assert properties_of(imported.source, "Activity_review") == {
        "role": "reviewer",
        "form": "file_review",
        "due": "P10D",
    }
    root = etree.fromstring(imported.source)
    review = root.find(f".//{{{BPMN}}}userTask[@id='Activity_review']")
    assert review.get(f"{{{CAMUNDA_NS}}}candidateGroups") is None
    assert review.get(f"{{{CAMUNDA_NS}}}formKey") is None
    assert root.nsmap["spiffworkflow"] == SPIFF_NS


def test_a_form_reference_maps_but_an_unknown_group_and_an_expression_due_date_do_not(
    imported,
):
    assert properties_of(imported.source, "Activity_decide") == {"form": "certification_decision"}
    messages = warnings_about(imported, "Activity_decide")
    assert any("'management' name no Certrail role" in m for m in messages)
    assert any("dueDate '${dateTime().plusDays(5).toDate()}'" in m for m in messages)
    assert any("camunda:formRefBinding='latest'" in m for m in messages)


def test_what_cannot_be_mapped_is_reported_with_the_element_and_the_attribute(imported):
    review = warnings_about(imported, "Activity_review")
    assert any(m.startswith("camunda:assignee='${initiator}' cannot be mapped") for m in review)
    assert any(m.startswith("camunda:taskListener cannot be mapped") for m in review)
    notify = warnings_about(imported, "Activity_notify")
    assert {m.split(" ", 1)[0] for m in notify} == {
        "camunda:asyncBefore='true'",
        "camunda:class='org.example.NotifyCandidate'",
        "camunda:inputOutput",
        "camunda:executionListener",
    }
    script = warnings_about(imported, "Activity_score")
    assert any("the script is JavaScript" in m for m in script)
    assert any(
        "'${complete}' is a Camunda expression" in m
        for m in warnings_about(imported, "Flow_complete")
    )
    assert all(w.severity == "warning" for w in imported.warnings)
    named = {w.element_id: w.element_name for w in imported.warnings}
    assert named["Activity_notify"] == "Notify candidate"


def test_the_diagram_is_kept_as_drawn(imported):
    def layout(source: bytes) -> list[tuple]:
        root = etree.fromstring(source)
        return [
            (el.get("bpmnElement"), tuple(sorted((k, v) for k, v in b.attrib.items())))
            for el in root.iter(f"{{{DI}}}BPMNShape", f"{{{DI}}}BPMNEdge")
            for b in el.iter()
            if b.attrib and b is not el
        ]

    assert layout(imported.source) == layout(CAMUNDA_FILE.read_bytes())


def test_the_imported_file_parses_and_validation_points_at_what_is_left_to_do(imported):
    validation = validate_model_source(imported.source, FormRegistry(), known_processes=set())
    errors = {f.element_id for f in validation.errors}
    assert {"Activity_notify", "Flow_complete", "Activity_score"} <= errors
    assert "Activity_review" not in errors


def test_a_cleaned_import_runs_as_a_certrail_model():
    source = CAMUNDA_FILE.read_text()
    source = source.replace(
        '<bpmn:serviceTask id="Activity_notify" name="Notify candidate" camunda:asyncBefore="true" camunda:class="org.example.NotifyCandidate">',
        '<bpmn:task id="Activity_notify" name="Notify candidate">',
    ).replace("</bpmn:serviceTask>", "</bpmn:task>")
    source = (
        source.replace("${complete}", "complete == True")
        .replace('scriptFormat="JavaScript"', 'scriptFormat="python"')
        .replace(
            'execution.getVariable("written") * 0.6 + execution.getVariable("practical") * 0.4',
            "score = written * 0.6 + practical * 0.4",
        )
        .replace('camunda:candidateGroups="management"', 'camunda:candidateGroups="decision_maker"')
    )
    imported = import_bpmn(source.encode())
    model = parse_model(imported.source)
    assert model.user_tasks["Activity_review"].role == "reviewer"
    assert model.user_tasks["Activity_decide"].role == "decision_maker"
    assert model.user_tasks["Activity_decide"].form == "certification_decision"
    validation = validate_model_source(imported.source, FormRegistry(), known_processes=set())
    assert validation.errors == []


def test_camunda_8_form_and_assignment_map_too():
    source = (
        CAMUNDA_FILE.read_text()
        .replace(
            'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"',
            'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"',
        )
        .replace(
            '<bpmn:userTask id="Activity_decide" name="Decide on certification" camunda:formRef="certification_decision" camunda:formRefBinding="latest" camunda:candidateGroups="management" camunda:dueDate="${dateTime().plusDays(5).toDate()}">',
            '<bpmn:userTask id="Activity_decide" name="Decide on certification"><bpmn:extensionElements>'
            '<zeebe:formDefinition formKey="camunda-forms:bpmn:certification_decision" />'
            '<zeebe:assignmentDefinition assignee="lead" candidateGroups="decision_maker" />'
            '<zeebe:taskHeaders><zeebe:header key="a" value="b" /></zeebe:taskHeaders>'
            "</bpmn:extensionElements>",
        )
    )
    imported = import_bpmn(source.encode())
    assert properties_of(imported.source, "Activity_decide") == {
        "role": "decision_maker",
        "form": "certification_decision",
    }
    messages = warnings_about(imported, "Activity_decide")
    assert any(m.startswith("zeebe:assignee='lead' cannot be mapped") for m in messages)
    assert any(m.startswith("zeebe:taskHeaders cannot be mapped") for m in messages)


def test_a_file_without_camunda_extensions_passes_through_unchanged():
    source = (ROOT / "bpmn" / "decision.bpmn").read_bytes()
    imported = import_bpmn(source)
    assert imported.source == source and imported.warnings == []


@pytest.mark.parametrize(
    "source, message",
    [
        (b"<definitions", "not well-formed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
            "DTDs and entity declarations are not allowed",
        ),
        (b"<a>" + b" " * (3 * 1024 * 1024) + b"</a>", "the limit is"),
    ],
    ids=["not-xml", "xxe", "huge"],
)
def test_unsafe_or_broken_xml_is_refused_with_a_clear_message(source, message):
    with pytest.raises(ModelError) as refused:
        import_bpmn(source)
    assert message in refused.value.message


@pytest.mark.parametrize(
    "key, name",
    [
        ("embedded:app:forms/file_review.json", "file_review"),
        ("embedded:deployment:file_review.html", "file_review"),
        ("camunda-forms:bpmn:file_review", "file_review"),
        ("app:file_review.form", "file_review"),
        ("file_review", "file_review"),
    ],
)
def test_form_keys_lose_their_camunda_prefixes_and_extensions(key, name):
    assert form_name(key) == name
