"""Moving running cases to a new version: previewed, refused when the case would break,
audited, and the case then runs through the new version."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from engine import Engine, NotFoundError, PermissionDenied
from engine.demo import load_demo
from engine.models import Base, Case, HumanTask, Timer
from engine.timers import fire_due_timers
from tests.engine.helpers import (
    do,
    event_count,
    events,
    ready_spec_ids,
    ready_task,
    verify,
)
from tests.engine.test_model_lifecycle import (
    REFERENCE_FORMS,
    decision_with_reference_check,
    decision_without_file_review,
    publish,
    start_decision,
)


def case_row(engine: Engine, case_id: int) -> Case:
    with engine.sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case


def test_preview_lists_what_changes_and_the_moved_case_runs_through_the_new_task(engine):
    case_id = start_decision(engine)
    before = case_row(engine, case_id)
    review = ready_task(engine, case_id, "review_file")
    v2 = publish(engine, decision_with_reference_check(), REFERENCE_FORMS)

    [preview] = engine.preview_migration([case_id], v2.id)
    assert (preview.can_migrate, preview.reason) == (True, None)
    assert (preview.from_version, preview.to_version) == (1, 2)
    assert "adds user task 'Check the references'" in preview.changes
    assert any(
        line.startswith("changes the current step user task 'Review certification file'")
        for line in preview.changes
    )
    assert case_row(engine, case_id).lock_version == before.lock_version, "preview wrote"

    [result] = engine.migrate_cases([case_id], v2.id, "quality")
    assert result.can_migrate and result.changes == preview.changes
    after = case_row(engine, case_id)
    assert after.model_version_id == v2.id
    assert ready_task(engine, case_id, "review_file").id == review.id
    [event] = events(engine, action="case_migrated")
    assert (event.actor, event.case_id) == ("quality", case_id)
    assert (event.before["version"], event.after["version"]) == (1, 2)
    assert event.after["changes"] == preview.changes

    do(engine, case_id, "review_file")
    assert ready_spec_ids(engine, case_id) == ["check_references"]
    task = ready_task(engine, case_id, "check_references")
    engine.complete(task.id, "reviewer", {"references_confirmed": True})
    do(engine, case_id, "decide_certification")
    assert engine.case(case_id).status == "completed"
    assert verify(engine).ok


def test_migration_is_refused_when_the_cases_current_task_would_disappear(engine):
    case_id = start_decision(engine)
    before = case_row(engine, case_id)
    v2 = publish(engine, decision_without_file_review())
    events_before = event_count(engine)

    [preview] = engine.preview_migration([case_id], v2.id)
    assert not preview.can_migrate
    assert "review_file" in preview.reason and "current step" in preview.reason
    [result] = engine.migrate_cases([case_id], v2.id, "quality")
    assert (result.can_migrate, result.reason) == (False, preview.reason)

    after = case_row(engine, case_id)
    assert (after.model_version_id, after.lock_version, after.state) == (
        before.model_version_id,
        before.lock_version,
        before.state,
    )
    assert event_count(engine) == events_before
    do(engine, case_id, "review_file")
    assert ready_spec_ids(engine, case_id) == ["decide_certification"]


def test_migration_is_refused_when_a_step_the_case_passed_would_disappear(engine):
    case_id = start_decision(engine)
    do(engine, case_id, "review_file")
    v2 = publish(engine, decision_without_file_review())
    [preview] = engine.preview_migration([case_id], v2.id)
    assert not preview.can_migrate
    assert "already passed" in preview.reason and "review_file" in preview.reason


def test_migration_is_refused_when_the_current_task_changes_its_definition(engine):
    case_id = start_decision(engine)
    changed = decision_with_reference_check().replace(
        '<spiffworkflow:property name="role" value="reviewer" />\n'
        '          <spiffworkflow:property name="form" value="file_review" />',
        '<spiffworkflow:property name="role" value="clerk" />\n'
        '          <spiffworkflow:property name="form" value="file_review" />',
    )
    v2 = publish(engine, changed, REFERENCE_FORMS)
    [preview] = engine.preview_migration([case_id], v2.id)
    assert not preview.can_migrate
    assert "review_file" in preview.reason and "properties" in preview.reason


def test_only_running_cases_of_the_same_process_move_and_only_to_a_published_newer_version(
    engine,
):
    case_id = start_decision(engine)
    done_case = start_decision(engine)
    do(engine, done_case, "review_file")
    do(engine, done_case, "decide_certification")
    other = engine.start_case("complaint", actor="clerk").case_id
    draft = engine.save_model_draft(
        "owner", decision_with_reference_check(), forms=REFERENCE_FORMS
    ).version
    current = case_row(engine, case_id).model_version_id

    reasons = {p.case_id: p.reason for p in engine.preview_migration([done_case, other], current)}
    assert "completed" in reasons[done_case]
    assert "complaint case" in reasons[other]
    [same] = engine.preview_migration([case_id], current)
    assert "already runs on decision v1" in same.reason
    [unpublished] = engine.preview_migration([case_id], draft.id)
    assert "draft, not published" in unpublished.reason
    [missing] = engine.preview_migration([999_999], current)
    assert "does not exist" in missing.reason
    with pytest.raises(NotFoundError):
        engine.preview_migration([case_id], 999_999)


def test_only_a_quality_manager_moves_cases(engine):
    case_id = start_decision(engine)
    v2 = publish(engine, decision_with_reference_check(), REFERENCE_FORMS)
    for username in ("owner", "manager", "admin"):
        with pytest.raises(PermissionDenied, match="quality manager"):
            engine.migrate_cases([case_id], v2.id, username)
    assert case_row(engine, case_id).model_version_id != v2.id


def test_a_batch_moves_the_cases_that_can_and_refuses_the_others(engine):
    waiting = start_decision(engine)
    passed = start_decision(engine)
    do(engine, passed, "review_file")
    v2 = publish(engine, decision_with_reference_check(), REFERENCE_FORMS)
    results = {r.case_id: r for r in engine.migrate_cases([waiting, passed], v2.id, "quality")}
    assert results[waiting].can_migrate and results[passed].can_migrate
    assert ready_spec_ids(engine, passed) == ["decide_certification"]
    assert {c.case_id: c.version for c in engine.running_cases("decision")} == {
        waiting: 2,
        passed: 2,
    }


def test_running_cases_lists_version_person_and_current_tasks(engine):
    case_id = start_decision(engine)
    [listed] = engine.running_cases("decision")
    assert listed.case_id == case_id
    assert (listed.version, listed.person_name) == (1, "Alice Applicant")
    assert listed.current_tasks == ["Review certification file"]


# -- a case waiting on a timer ---------------------------------------------------------------

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)


def _user_task(task_id: str, name: str, incoming: str, outgoing: str) -> str:
    return f"""
    <bpmn:userTask id="{task_id}" name="{name}">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="role" value="clerk"/>
        <spiffworkflow:property name="form" value="completeness_check"/>
        <spiffworkflow:property name="due" value="P5D"/>
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>{incoming}</bpmn:incoming><bpmn:outgoing>{outgoing}</bpmn:outgoing>
    </bpmn:userTask>"""


def deadline_model(confirm_step: bool = False) -> str:
    """answer (with a 10-day interrupting deadline -> escalate) -> [confirm ->] answered."""
    after_answer = "f_confirm" if confirm_step else "f2"
    confirm = (
        _user_task("confirm", "Confirm the answer", "f_confirm", "f2")
        + '\n    <bpmn:sequenceFlow id="f_confirm" sourceRef="answer" targetRef="confirm"/>'
        + '\n    <bpmn:sequenceFlow id="f2" sourceRef="confirm" targetRef="answered"/>'
        if confirm_step
        else '\n    <bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="answered"/>'
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="http://certrail.example/bpmn">
  <bpmn:process id="deadline" name="Deadline" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    {_user_task("answer", "Answer", "f1", after_answer)}
    <bpmn:boundaryEvent id="too_late" name="10 days" attachedToRef="answer" cancelActivity="true">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"P10D"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>{_user_task("escalate", "Escalate", "f3", "f4")}
    <bpmn:endEvent id="answered" name="Answered"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="escalated" name="Escalated"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer"/>{confirm}
    <bpmn:sequenceFlow id="f3" sourceRef="too_late" targetRef="escalate"/>
    <bpmn:sequenceFlow id="f4" sourceRef="escalate" targetRef="escalated"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def deadline_engine(database, clock, tmp_path) -> Engine:
    _kind, sql = database
    (tmp_path / "deadline.bpmn").write_text(deadline_model())
    engine = Engine(sql_engine=sql, clock=clock, bpmn_dir=tmp_path)
    Base.metadata.create_all(sql)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
    return engine


def timer_rows(engine: Engine, case_id: int) -> list[tuple[str, datetime, str]]:
    with engine.sessions() as session:
        return [
            (t.task_spec_id, t.fire_at, t.status)
            for t in session.scalars(select(Timer).where(Timer.case_id == case_id))
        ]


def test_a_moved_case_keeps_the_moment_its_waiting_timer_fires(deadline_engine, clock):
    engine = deadline_engine
    case_id = engine.start_case("deadline", actor="clerk").case_id
    due = datetime(2026, 3, 12, 9, 0)
    assert timer_rows(engine, case_id) == [("too_late", due, "waiting")]

    clock.set(datetime(2026, 3, 5, 9, 0))
    v2 = publish(engine, deadline_model(confirm_step=True), forms={})
    [result] = engine.migrate_cases([case_id], v2.id, "quality")
    assert result.can_migrate, result.reason
    assert "adds user task 'Confirm the answer'" in result.changes
    assert timer_rows(engine, case_id) == [("too_late", due, "waiting")]

    clock.set(datetime(2026, 3, 12, 9, 1))
    assert fire_due_timers(engine) == 1
    assert ready_spec_ids(engine, case_id) == ["escalate"]
    with engine.sessions() as session:
        answer = session.scalars(
            select(HumanTask).where(
                HumanTask.case_id == case_id, HumanTask.task_spec_id == "answer"
            )
        ).one()
    assert answer.status == "cancelled"
    assert verify(engine).ok


def test_a_moved_case_answered_in_time_goes_through_the_new_step(deadline_engine, clock):
    engine = deadline_engine
    case_id = engine.start_case("deadline", actor="clerk").case_id
    v2 = publish(engine, deadline_model(confirm_step=True), forms={})
    engine.migrate_cases([case_id], v2.id, "quality")
    do_clerk_step(engine, case_id, "answer")
    assert ready_spec_ids(engine, case_id) == ["confirm"]
    assert [status for *_rest, status in timer_rows(engine, case_id)] == ["cancelled"]
    do_clerk_step(engine, case_id, "confirm")
    assert engine.case(case_id).status == "completed"


def do_clerk_step(engine: Engine, case_id: int, spec_id: str) -> None:
    from tests.engine.helpers import form_data

    task = ready_task(engine, case_id, spec_id)
    engine.complete(task.id, "clerk", form_data(engine, task.form))
