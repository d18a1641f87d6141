"""The difference between two model versions, element by element, in sentences."""

from __future__ import annotations

import pytest

from engine import ValidationError
from engine.model_diff import diff_models
from tests.engine.test_model_lifecycle import (
    DECISION,
    decision_with_reference_check,
    decision_without_file_review,
    replace_once,
)


def by_id(changes) -> dict:
    return {c.element_id: c for c in changes}


def test_added_removed_and_changed_elements_are_listed_with_their_names():
    diff = diff_models(DECISION, decision_with_reference_check())
    added = by_id(diff.added)
    assert set(added) == {"check_references", "Flow_references_decide"}
    task = added["check_references"]
    assert (task.element_type, task.name) == ("userTask", "Check the references")
    assert task.label == "user task 'Check the references'"
    assert "role: reviewer" in task.details and "in lane 'reviewer'" in task.details
    assert diff.removed == []
    changed = by_id(diff.changed)
    assert changed["review_file"].details == [
        "now leads to 'Check the references' (was 'Decide on certification')"
    ]
    assert changed["decide_certification"].details == [
        "now comes from 'Check the references' (was 'Review certification file')"
    ]
    assert changed["Flow_review_decide"].details == [
        "now leads to 'Check the references' (was 'Decide on certification')"
    ]

    back = diff_models(decision_with_reference_check(), DECISION)
    assert {c.element_id for c in back.removed} == {"check_references", "Flow_references_decide"}
    assert by_id(back.removed)["check_references"].name == "Check the references"


def test_properties_conditions_names_lanes_and_timers_are_changes():
    edited = replace_once(DECISION, 'name="Review certification file"', 'name="Review the file"')
    edited = replace_once(
        edited,
        '<spiffworkflow:property name="due" value="P10D" />\n'
        '          <spiffworkflow:property name="instructions" value="Review',
        '<spiffworkflow:property name="due" value="P5D" />\n'
        '          <spiffworkflow:property name="instructions" value="Review',
    )
    edited = replace_once(edited, 'certification_decision == "grant"', 'decision == "grant"')
    edited = replace_once(
        edited,
        "<bpmn:flowNodeRef>gw_granted</bpmn:flowNodeRef>",
        "",
    )
    edited = replace_once(
        edited,
        "<bpmn:flowNodeRef>review_file</bpmn:flowNodeRef>",
        "<bpmn:flowNodeRef>review_file</bpmn:flowNodeRef><bpmn:flowNodeRef>gw_granted</bpmn:flowNodeRef>",
    )
    changed = by_id(diff_models(DECISION, edited).changed)
    assert changed["review_file"].details == [
        "renamed from 'Review certification file' to 'Review the file'",
        "due changed from P10D to P5D",
    ]
    assert changed["review_file"].name == "Review the file"
    assert changed["Flow_grant"].details == [
        'condition changed from certification_decision == "grant" to decision == "grant"'
    ]
    assert changed["gw_granted"].details == ["moved from lane 'decision_maker' to lane 'reviewer'"]
    assert "start_decision" not in changed, "a neighbour's rename is not a change of its own"

    timed = '<bpmn:timerEventDefinition><bpmn:timeDuration>"P{}D"</bpmn:timeDuration></bpmn:timerEventDefinition>'
    with_timer = replace_once(
        DECISION,
        '<bpmn:startEvent id="start_decision" name="Assessment passed">',
        '<bpmn:startEvent id="start_decision" name="Assessment passed">' + timed.format(3),
    )
    later = with_timer.replace(timed.format(3), timed.format(7))
    [timer] = diff_models(with_timer, later).changed
    assert timer.details == ['timer changed from after "P3D" to after "P7D"']


def test_moving_shapes_on_the_diagram_is_not_a_change():
    moved = replace_once(
        DECISION,
        '<dc:Bounds x="380" y="100" width="100" height="80" />',
        '<dc:Bounds x="420" y="140" width="120" height="90" />',
    )
    moved = moved.replace('<di:waypoint x="288" y="140" />', '<di:waypoint x="300" y="150" />')
    diff = diff_models(DECISION, moved)
    assert diff.empty


def test_the_engine_compares_two_stored_versions_of_one_process(engine):
    from tests.engine.test_model_lifecycle import publish

    with engine.sessions() as session:
        v1 = engine.catalog.published_version(session, "decision")
    v2 = publish(engine, decision_without_file_review(), forms={})
    diff = engine.diff_model_versions(v1.id, v2.id)
    assert {c.element_id for c in diff.removed} == {"review_file", "Flow_review_decide"}
    assert by_id(diff.changed)["start_decision"].details == [
        "now leads to 'Decide on certification' (was 'Review certification file')"
    ]
    with engine.sessions() as session:
        other = engine.catalog.published_version(session, "appeal")
    with pytest.raises(ValidationError, match="different processes"):
        engine.diff_model_versions(v1.id, other.id)
