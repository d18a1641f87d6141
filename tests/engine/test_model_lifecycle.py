"""Document control of process models: draft -> in review -> approved -> published -> retired,
four eyes, validation that blocks, forms versioned with their model, periodic review."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import ConflictError, Engine, NotFoundError, PermissionDenied, ValidationError
from engine.catalog import BPMN_DIR
from engine.errors import ModelError
from engine.model_lifecycle import remind_model_reviews
from engine.models import ModelVersion, Notification, User, UserRole
from engine.runtime.xml import MAX_BPMN_BYTES
from tests.engine.helpers import do, event_count, events, person_id, ready_spec_ids, ready_task

DECISION = (BPMN_DIR / "decision.bpmn").read_text(encoding="utf-8")

# A reviewer checks the references between reviewing the file and the decision.
_CHECK_REFERENCES = """<bpmn:userTask id="check_references" name="Check the references">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="role" value="reviewer" />
          <spiffworkflow:property name="form" value="reference_check" />
          <spiffworkflow:property name="due" value="P5D" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_review_decide</bpmn:incoming>
      <bpmn:outgoing>Flow_references_decide</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="Flow_references_decide" sourceRef="check_references" targetRef="decide_certification" />
    <bpmn:sequenceFlow id="Flow_review_decide" sourceRef="review_file" targetRef="check_references" />"""
_CHECK_REFERENCES_DI = """<bpmndi:BPMNShape id="check_references_di" bpmnElement="check_references">
        <dc:Bounds x="540" y="100" width="100" height="80" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="Flow_references_decide_di" bpmnElement="Flow_references_decide">
        <di:waypoint x="590" y="180" />
        <di:waypoint x="590" y="260" />
      </bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>"""
REFERENCE_CHECK_FORM = {
    "title": "Reference check",
    "type": "object",
    "properties": {
        "references_confirmed": {"type": "boolean", "title": "References confirmed"},
    },
    "required": ["references_confirmed"],
    "additionalProperties": False,
}
REFERENCE_FORMS = {"reference_check": REFERENCE_CHECK_FORM}


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected one {old!r}"
    return text.replace(old, new)


def decision_with_reference_check() -> str:
    """The shipped decision model with a user task added after the file review."""
    xml = replace_once(
        DECISION,
        '<bpmn:sequenceFlow id="Flow_review_decide" sourceRef="review_file" '
        'targetRef="decide_certification" />',
        _CHECK_REFERENCES,
    )
    xml = replace_once(
        xml,
        "<bpmn:incoming>Flow_review_decide</bpmn:incoming>\n      "
        "<bpmn:outgoing>Flow_decide_gw</bpmn:outgoing>",
        "<bpmn:incoming>Flow_references_decide</bpmn:incoming>\n      "
        "<bpmn:outgoing>Flow_decide_gw</bpmn:outgoing>",
    )
    xml = replace_once(
        xml,
        "<bpmn:flowNodeRef>review_file</bpmn:flowNodeRef>",
        "<bpmn:flowNodeRef>review_file</bpmn:flowNodeRef>\n"
        "        <bpmn:flowNodeRef>check_references</bpmn:flowNodeRef>",
    )
    return replace_once(xml, "</bpmndi:BPMNPlane>", _CHECK_REFERENCES_DI)


def decision_without_file_review() -> str:
    """The decision model whose start leads straight to the decision (review_file removed)."""
    xml = replace_once(
        DECISION,
        '<bpmn:sequenceFlow id="Flow_start_review" sourceRef="start_decision" '
        'targetRef="review_file" />',
        '<bpmn:sequenceFlow id="Flow_start_review" sourceRef="start_decision" '
        'targetRef="decide_certification" />',
    )
    start = xml.index('<bpmn:userTask id="review_file"')
    end = xml.index("</bpmn:userTask>", start) + len("</bpmn:userTask>")
    xml = xml[:start] + xml[end:]
    xml = replace_once(
        xml,
        '<bpmn:sequenceFlow id="Flow_review_decide" sourceRef="review_file" '
        'targetRef="decide_certification" />',
        "",
    )
    xml = replace_once(xml, "<bpmn:flowNodeRef>review_file</bpmn:flowNodeRef>", "")
    xml = replace_once(
        xml,
        "<bpmn:incoming>Flow_review_decide</bpmn:incoming>",
        "<bpmn:incoming>Flow_start_review</bpmn:incoming>",
    )
    for element in ("review_file_di", "Flow_review_decide_di"):
        start = xml.index(f'id="{element}"')
        start = xml.rindex("<bpmndi:", 0, start)
        closing = (
            "</bpmndi:BPMNShape>" if "Shape" in xml[start : start + 20] else "</bpmndi:BPMNEdge>"
        )
        end = xml.index(closing, start) + len(closing)
        xml = xml[:start] + xml[end:]
    return xml


def publish(engine: Engine, xml: str, forms: dict | None = None, **kwargs) -> ModelVersion:
    """Take a model through the whole lifecycle: owner saves and submits, quality publishes."""
    if forms is None:
        forms = {"reference_check": REFERENCE_CHECK_FORM}
    saved = engine.save_model_draft("owner", xml, change_summary="a change", forms=forms)
    assert not [f for f in saved.findings if f.severity == "error"], saved.findings
    engine.submit_model_for_review(saved.version.id, "owner")
    engine.approve_model_version(saved.version.id, "quality")
    return engine.publish_model_version(saved.version.id, "quality", **kwargs)


def grant_role(engine: Engine, username: str, role: str) -> None:
    with engine.unit_of_work() as uow:
        user = uow.session.scalars(select(User).where(User.username == username)).one()
        user.roles.append(UserRole(role=role))


def version_count(engine: Engine) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(ModelVersion)) or 0


def start_decision(engine: Engine) -> int:
    return engine.start_case(
        "decision", actor="clerk", person_id=person_id(engine, "alice"), scheme_code="CWI"
    ).case_id


# -- the lifecycle -----------------------------------------------------------------------


def test_a_version_goes_from_draft_through_review_to_published_and_retired_with_people_and_dates(
    engine, clock
):
    shipped = engine.catalog.published_version
    with engine.sessions() as session:
        v1 = shipped(session, "decision")
    saved = engine.save_model_draft(
        "owner",
        decision_with_reference_check(),
        change_summary="references are checked before the decision",
        forms={"reference_check": REFERENCE_CHECK_FORM},
    )
    draft = saved.version
    assert (draft.process_id, draft.version, draft.status) == ("decision", 2, "draft")
    assert not [f for f in saved.findings if f.severity == "error"]
    assert draft.spec_json, "a draft that parses keeps its spec"
    owner_id = engine.user("owner").id
    quality_id = engine.user("quality").id
    assert draft.author_id == owner_id and draft.contributor_ids == [owner_id]

    clock.set(datetime(2026, 3, 3, 10, 0))
    submitted = engine.submit_model_for_review(draft.id, "owner")
    assert (submitted.status, submitted.submitted_at) == ("in_review", datetime(2026, 3, 3, 10))
    clock.set(datetime(2026, 3, 4, 11, 0))
    approved = engine.approve_model_version(draft.id, "quality")
    assert approved.status == "approved"
    assert (approved.reviewer_id, approved.approved_at) == (quality_id, datetime(2026, 3, 4, 11))
    clock.set(datetime(2026, 3, 5, 12, 0))
    published = engine.publish_model_version(draft.id, "quality")
    assert published.status == "published"
    assert published.published_by_id == quality_id
    assert published.published_at == datetime(2026, 3, 5, 12)
    assert published.review_due_on == date(2027, 3, 5)

    previous = engine.model_version(v1.id)
    assert (previous.status, previous.retired_at) == ("retired", datetime(2026, 3, 5, 12))
    assert [v.version for v in engine.model_history("decision")] == [2, 1]
    assert engine.version_forms(draft.id) == {"reference_check": REFERENCE_CHECK_FORM}
    summary = {s.process_id: s for s in engine.model_library()}["decision"]
    assert summary.published.version == 2 and summary.open_versions == []
    assert summary.review_due_on == date(2027, 3, 5)

    actions = [
        (e.action, e.actor, e.after.get("version"))
        for e in events(engine)
        if e.action.startswith("model_") and e.actor != "system"
    ]
    assert actions == [
        ("model_saved", "owner", 2),
        ("model_submitted", "owner", 2),
        ("model_approved", "quality", 2),
        ("model_retired", "quality", 1),
        ("model_published", "quality", 2),
    ]

    clock.set(datetime(2026, 6, 1, 9, 0))
    retired = engine.retire_model_version(draft.id, "quality")
    assert (retired.status, retired.retired_at) == ("retired", datetime(2026, 6, 1, 9))
    assert events(engine, action="model_retired")[-1].actor == "quality"
    with pytest.raises(NotFoundError, match="no published version of process 'decision'"):
        start_decision(engine)


def test_saving_again_updates_the_open_draft_and_a_new_draft_gets_the_next_number(engine):
    first = engine.save_model_draft(
        "owner", decision_with_reference_check(), forms=REFERENCE_FORMS
    ).version
    grant_role(engine, "admin", "process_owner")
    again = engine.save_model_draft(
        "admin", decision_with_reference_check(), change_summary="second pass"
    ).version
    assert again.id == first.id and again.version == 2
    assert again.contributor_ids == [engine.user("owner").id, engine.user("admin").id]
    assert again.change_summary == "second pass"
    publish(engine, decision_with_reference_check())
    third = engine.save_model_draft("owner", DECISION).version
    assert third.version == 3 and third.id != first.id


def test_returned_version_goes_back_to_draft_with_the_reviewers_comment(engine, clock):
    version = engine.save_model_draft(
        "owner", decision_with_reference_check(), forms=REFERENCE_FORMS
    ).version
    engine.submit_model_for_review(version.id, "owner")
    with pytest.raises(ValidationError) as no_comment:
        engine.return_model_to_draft(version.id, "quality", "  ")
    assert "comment" in no_comment.value.fields
    returned = engine.return_model_to_draft(version.id, "quality", "name the referee's form")
    assert returned.status == "draft"
    assert returned.review_comment == "name the referee's form"
    assert returned.reviewer_id == engine.user("quality").id
    [event] = events(engine, action="model_returned")
    assert event.actor == "quality" and event.after["comment"] == "name the referee's form"
    with pytest.raises(ConflictError, match="is draft, not in review"):
        engine.approve_model_version(version.id, "quality")


def test_a_contributor_cannot_approve_and_the_four_eyes_refusal_is_recorded(engine):
    grant_role(engine, "admin", "process_owner")
    grant_role(engine, "admin", "quality_manager")
    version = engine.save_model_draft(
        "owner", decision_with_reference_check(), forms=REFERENCE_FORMS
    ).version
    engine.save_model_draft("admin", decision_with_reference_check(), forms=REFERENCE_FORMS)
    engine.submit_model_for_review(version.id, "owner")
    with pytest.raises(PermissionDenied, match="SOD-4EYES|10.2"):
        engine.approve_model_version(version.id, "admin")
    [refusal] = events(engine, action="sod_check_failed")
    assert refusal.actor == "admin"
    assert refusal.after["rules"][0]["rule"] == "SOD-4EYES"
    assert engine.model_version(version.id).status == "in_review"
    assert engine.approve_model_version(version.id, "quality").status == "approved"


def test_the_submitter_cannot_approve_either(engine):
    grant_role(engine, "quality", "process_owner")
    version = engine.save_model_draft(
        "owner", decision_with_reference_check(), forms=REFERENCE_FORMS
    ).version
    engine.submit_model_for_review(version.id, "quality")
    with pytest.raises(PermissionDenied):
        engine.approve_model_version(version.id, "quality")


def test_only_process_owners_edit_and_only_quality_managers_approve_publish_and_retire(engine):
    xml = decision_with_reference_check()
    for username in ("clerk", "quality", "alice"):
        with pytest.raises(PermissionDenied, match="process owner"):
            engine.save_model_draft(username, xml)
    version = engine.save_model_draft("owner", xml, forms=REFERENCE_FORMS).version
    with pytest.raises(PermissionDenied, match="process owner"):
        engine.submit_model_for_review(version.id, "quality")
    engine.submit_model_for_review(version.id, "owner")
    for username in ("owner", "manager"):
        with pytest.raises(PermissionDenied, match="quality manager"):
            engine.approve_model_version(version.id, username)
        with pytest.raises(PermissionDenied, match="quality manager"):
            engine.return_model_to_draft(version.id, username, "no")
    engine.approve_model_version(version.id, "quality")
    with pytest.raises(PermissionDenied, match="quality manager"):
        engine.publish_model_version(version.id, "owner")
    with pytest.raises(PermissionDenied, match="quality manager"):
        engine.retire_model_version(version.id, "owner")
    with pytest.raises(PermissionDenied, match="quality manager"):
        engine.migrate_cases([], version.id, "owner")
    assert engine.model_version(version.id).status == "approved"
    assert events(engine, action="sod_check_failed") == []


# -- validation blocks ---------------------------------------------------------------------

DISCONNECTED = """<bpmn:userTask id="stray_task" name="Stray task">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="role" value="reviewer" />
          <spiffworkflow:property name="form" value="file_review" />
          <spiffworkflow:property name="due" value="P5D" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="Flow_start_review\""""


def test_a_draft_with_errors_is_stored_but_cannot_be_submitted(engine):
    xml = replace_once(DECISION, '<bpmn:sequenceFlow id="Flow_start_review"', DISCONNECTED)
    saved = engine.save_model_draft("owner", xml)
    errors = [f for f in saved.findings if f.severity == "error"]
    assert "stray_task" in {f.element_id for f in errors}
    assert engine.model_version(saved.version.id).bpmn_xml == xml
    with pytest.raises(ValidationError) as refused:
        engine.submit_model_for_review(saved.version.id, "owner")
    assert "stray_task" in refused.value.message
    assert "stray_task" in refused.value.fields
    assert engine.model_version(saved.version.id).status == "draft"
    assert events(engine, action="model_submitted") == []


def test_a_draft_that_does_not_parse_is_stored_without_a_spec(engine):
    xml = replace_once(
        DECISION,
        'sourceRef="review_file" targetRef="decide_certification"',
        'sourceRef="review_file" targetRef="no_such_task"',
    )
    saved = engine.save_model_draft("owner", xml)
    assert saved.version.spec_json == ""
    assert [f for f in saved.findings if f.severity == "error"]


def test_errors_block_publication_when_the_library_changed_since_approval(engine):
    application = (BPMN_DIR / "application.bpmn").read_text(encoding="utf-8")
    edited = replace_once(
        application, 'name="Run certification decision"', 'name="Decide on certification"'
    )
    version = engine.save_model_draft("owner", edited).version
    engine.submit_model_for_review(version.id, "owner")
    engine.approve_model_version(version.id, "quality")
    with engine.sessions() as session:
        decision = engine.catalog.published_version(session, "decision")
    engine.retire_model_version(decision.id, "quality")
    with pytest.raises(ValidationError) as refused:
        engine.publish_model_version(version.id, "quality")
    assert "run_decision" in refused.value.fields
    assert engine.model_version(version.id).status == "approved"
    shipped = len(list(BPMN_DIR.glob("*.bpmn")))
    assert [e.actor for e in events(engine, action="model_published")] == ["system"] * shipped


def test_validate_model_reports_findings_and_stores_nothing(engine):
    before = version_count(engine)
    xml = replace_once(DECISION, 'value="file_review"', 'value="no_such_form"')
    findings = engine.validate_model(xml)
    assert [(f.severity, f.element_id) for f in findings if "no_such_form" in f.message] == [
        ("error", "review_file")
    ]
    assert engine.validate_model(xml, forms={"no_such_form": REFERENCE_CHECK_FORM}) == []
    assert version_count(engine) == before


@pytest.mark.parametrize(
    "source, phrase",
    [
        (
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
            "DTD",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>',
            "DTD",
        ),
        ("<bpmn:definitions", "not well-formed"),
        ("x" * (MAX_BPMN_BYTES + 1), "limit"),
        ('<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>', "not a BPMN"),
        (
            DECISION.replace('<bpmn:process id="decision"', '<bpmn:process id=""'),
            "no id",
        ),
        (
            DECISION.replace(
                "</bpmn:definitions>",
                '<bpmn:process id="second" isExecutable="true" /></bpmn:definitions>',
            ),
            "exactly one",
        ),
    ],
    ids=["xxe", "entity-bomb", "malformed", "too-large", "not-bpmn", "no-process-id", "two"],
)
def test_hostile_or_unidentifiable_xml_saves_nothing(engine, source, phrase):
    before_versions, before_events = version_count(engine), event_count(engine)
    with pytest.raises(ModelError) as refused:
        engine.save_model_draft("owner", source)
    assert phrase in refused.value.message
    assert refused.value.findings and refused.value.findings[0].severity == "error"
    assert "Traceback" not in refused.value.message
    assert (version_count(engine), event_count(engine)) == (before_versions, before_events)


def test_a_form_that_is_not_a_schema_saves_nothing_and_a_broken_schema_is_an_error(engine):
    before = version_count(engine)
    with pytest.raises(ModelError, match="JSON object"):
        engine.save_model_draft("owner", DECISION, forms={"file_review": ["not", "a", "schema"]})
    with pytest.raises(ModelError, match="form name"):
        engine.save_model_draft("owner", DECISION, forms={"../etc/passwd": REFERENCE_CHECK_FORM})
    assert version_count(engine) == before
    broken = {"type": "object", "properties": {"x": {"type": "nonsense"}}}
    saved = engine.save_model_draft("owner", DECISION, forms={"file_review": broken})
    [finding] = [f for f in saved.findings if "file_review" in f.message]
    assert finding.severity == "error" and "JSON Schema" in finding.message
    with pytest.raises(ValidationError, match="file_review"):
        engine.submit_model_for_review(saved.version.id, "owner")


# -- running cases and forms stay on their version ------------------------------------------


def test_a_publish_leaves_running_cases_on_their_version_and_new_cases_use_the_new_one(engine):
    old_case = start_decision(engine)
    v2 = publish(engine, decision_with_reference_check(), {"reference_check": REFERENCE_CHECK_FORM})
    new_case = start_decision(engine)
    assert engine.case(old_case).model_version_id != v2.id
    assert engine.case(new_case).model_version_id == v2.id

    do(engine, old_case, "review_file")
    assert ready_spec_ids(engine, old_case) == ["decide_certification"]
    do(engine, new_case, "review_file")
    assert ready_spec_ids(engine, new_case) == ["check_references"]
    task = ready_task(engine, new_case, "check_references")
    assert engine.task_form(task).schema == REFERENCE_CHECK_FORM
    engine.complete(task.id, "reviewer", {"references_confirmed": True})
    assert ready_spec_ids(engine, new_case) == ["decide_certification"]


def test_a_form_edited_with_a_version_validates_completion_only_for_cases_on_that_version(
    engine,
):
    old_case = start_decision(engine)
    edited = dict(engine.forms.get("file_review").schema)
    edited["properties"] = {
        **edited["properties"],
        "risk_rating": {"type": "string", "enum": ["low", "high"], "title": "Risk rating"},
    }
    edited["required"] = [*edited["required"], "risk_rating"]
    publish(
        engine,
        decision_with_reference_check(),
        {
            "file_review": edited,
            "reference_check": REFERENCE_CHECK_FORM,
        },
    )
    new_case = start_decision(engine)
    valid_before = {"file_review_recommendation": "grant", "file_review_summary": "complete"}

    new_task = ready_task(engine, new_case, "review_file")
    assert "risk_rating" in engine.task_form(new_task).field_names
    with pytest.raises(ValidationError) as missing:
        engine.complete(new_task.id, "reviewer", valid_before)
    assert "risk_rating" in missing.value.fields
    engine.complete(new_task.id, "reviewer", {**valid_before, "risk_rating": "low"})

    old_task = ready_task(engine, old_case, "review_file")
    assert "risk_rating" not in engine.task_form(old_task).field_names
    with pytest.raises(ValidationError) as extra:
        engine.complete(old_task.id, "reviewer", {**valid_before, "risk_rating": "low"})
    assert extra.value.fields["risk_rating"] == ["is not a field of this form"]
    engine.complete(old_task.id, "reviewer", valid_before)


def test_a_task_of_a_called_process_uses_the_forms_of_that_processes_pinned_version(engine):
    from tests.engine.helpers import drive_to_decision, start_application

    edited = dict(engine.forms.get("certification_decision").schema)
    edited = {**edited, "title": "Decision (edited with the model)"}
    publish(
        engine,
        DECISION.replace('name="Decide on certification"', 'name="Decide"'),
        {"certification_decision": edited},
    )
    case_id = start_application(engine)
    drive_to_decision(engine, case_id)
    [task] = [t for t in engine.ready_tasks(case_id) if t.task_spec_id == "decide_certification"]
    assert task.process_id == "decision"
    assert engine.task_form(task).title == "Decision (edited with the model)"


# -- shipped files and the modeler --------------------------------------------------------


def test_a_changed_shipped_file_is_published_unless_the_modeler_published_a_newer_version(
    engine, database, clock, tmp_path
):
    _kind, sql = database
    bpmn_dir = tmp_path / "bpmn"
    shutil.copytree(BPMN_DIR, bpmn_dir)

    def restart_with(decision_xml: str) -> list[ModelVersion]:
        (bpmn_dir / "decision.bpmn").write_text(decision_xml, encoding="utf-8")
        return Engine(sql_engine=sql, clock=clock, bpmn_dir=Path(bpmn_dir)).sync_models()

    assert restart_with(DECISION) == []
    [shipped_v2] = restart_with(
        DECISION.replace('name="Granted?"', 'name="Certification granted?"')
    )
    assert (shipped_v2.version, shipped_v2.status) == (2, "published")

    edited = publish(engine, decision_with_reference_check())
    assert edited.version == 3
    assert restart_with(DECISION.replace('name="Granted?"', 'name="Grant?"')) == []
    with engine.sessions() as session:
        current = engine.catalog.published_version(session, "decision")
    assert current.id == edited.id
    assert engine.model_version(shipped_v2.id).status == "retired"


# -- periodic review -----------------------------------------------------------------------


def test_the_review_reminder_goes_out_once_per_due_date(engine, clock):
    version = publish(engine, decision_with_reference_check(), review_due_on=date(2026, 4, 1))
    assert remind_model_reviews(engine) == 0
    clock.set(datetime(2026, 4, 1, 8, 0))
    assert remind_model_reviews(engine) == 1
    assert remind_model_reviews(engine) == 0
    clock.set(datetime(2026, 5, 1, 8, 0))
    assert remind_model_reviews(engine) == 0
    with engine.sessions() as session:
        sent = list(
            session.scalars(select(Notification).where(Notification.kind == "model_review_due"))
        )
    recipients = {n.recipient_user_id for n in sent}
    assert recipients == {engine.user("owner").id, engine.user("quality").id}
    assert all("decision v2" in n.subject for n in sent)
    [event] = events(engine, action="model_review_due")
    assert event.after["version_id"] == version.id
    assert engine.model_version(version.id).review_reminded_on == date(2026, 4, 1)


def test_a_review_date_in_the_past_is_refused(engine):
    version = engine.save_model_draft(
        "owner", decision_with_reference_check(), forms=REFERENCE_FORMS
    ).version
    engine.submit_model_for_review(version.id, "owner")
    engine.approve_model_version(version.id, "quality")
    with pytest.raises(ValidationError) as refused:
        engine.publish_model_version(version.id, "quality", review_due_on=date(2026, 3, 1))
    assert "review_due_on" in refused.value.fields


def test_a_process_created_in_the_modeler_is_published_as_its_first_version_and_runs(engine):
    xml = DECISION.replace('processRef="decision"', 'processRef="fast_decision"')
    xml = replace_once(xml, '<bpmn:process id="decision"', '<bpmn:process id="fast_decision"')
    with pytest.raises(NotFoundError):
        engine.model_history("fast_decision")
    version = publish(engine, xml, forms={})
    assert (version.process_id, version.version, version.author_id) == (
        "fast_decision",
        1,
        engine.user("owner").id,
    )
    case_id = engine.start_case(
        "fast_decision", actor="clerk", person_id=person_id(engine, "alice"), scheme_code="CWI"
    ).case_id
    assert ready_spec_ids(engine, case_id) == ["review_file"]
    summary = {s.process_id: s for s in engine.model_library()}["fast_decision"]
    assert (summary.published.id, summary.running_cases) == (version.id, 1)
