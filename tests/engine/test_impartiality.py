"""Segregation-of-duties rules, enforced at the three points: candidate lists, claim and
assignment, and completion (re-checked in the same transaction)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from engine import PermissionDenied
from engine.impartiality.candidates import NO_ELIGIBLE_ASSIGNEE, candidates_for
from engine.impartiality.explain import explain
from engine.impartiality.register import declare_conflict, end_conflict
from engine.inbox import inbox
from engine.models import Case, HumanTask, ModelVersion, Person, User, UserRole
from tests.engine.helpers import (
    do,
    drive_to_decision,
    events,
    form_data,
    ready_task,
    start_application,
)


def available_task_ids(engine, username: str) -> set[int]:
    with engine.sessions() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        page = inbox(session, user, engine.clock.now(), tab="available", per_page=200)
        return {row.task_id for row in page.rows}


def assert_barred_everywhere(engine, task: HumanTask, username: str, rule: str) -> None:
    """The three enforcement points: not offered, claim refused, completion refused."""
    assert task.id not in available_task_ids(engine, username)
    with pytest.raises(PermissionDenied) as claim:
        engine.claim(task.id, username)
    assert rule in {r.rule for r in claim.value.refusals}
    with pytest.raises(PermissionDenied) as complete:
        engine.complete(task.id, username, form_data(engine, task.form))
    assert rule in {r.rule for r in complete.value.refusals}
    failed = [
        e for e in events(engine, task_id=task.id, action="sod_check_failed") if e.actor == username
    ]
    assert len(failed) == 2
    assert rule in str(failed[-1].after)


def assert_allowed(engine, task: HumanTask, username: str) -> None:
    assert task.id in available_task_ids(engine, username)
    engine.claim(task.id, username)
    engine.complete(task.id, username, form_data(engine, task.form))
    passed = [
        e for e in events(engine, task_id=task.id, action="sod_check_passed") if e.actor == username
    ]
    assert [e.after["point"] for e in passed] == ["claim", "completion"]


def decision_task(engine, applicant: str = "alice", examiner: str = "examiner2") -> HumanTask:
    case_id = start_application(engine, applicant)
    drive_to_decision(engine, case_id, applicant, examiner=examiner)
    return ready_task(engine, case_id, "decide_certification")


# -- SOD-DECIDE ---------------------------------------------------------------------------


def test_examiner_who_scored_the_candidate_is_barred_from_the_decision(engine):
    task = decision_task(engine, examiner="examiner_decider")
    assert_barred_everywhere(engine, task, "examiner_decider", "SOD-DECIDE")
    [refusal] = [
        r for r in explain_refusals(engine, task, "examiner_decider") if r["rule"] == "SOD-DECIDE"
    ][:1]
    assert "scored this candidate's written exam" in refusal["reason"]
    assert "9.4" in refusal["reason"]


def test_decision_maker_who_did_not_examine_may_decide(engine):
    task = decision_task(engine, examiner="examiner_decider")
    assert_allowed(engine, task, "decider")


# -- SOD-COI ------------------------------------------------------------------------------


def person_of(engine, username: str) -> int:
    return engine.user(username).person_id


def declare(
    engine,
    staff: str,
    person_id: int,
    relationship: str = "employer",
    by: str | None = None,
    **kwargs,
):
    with engine.unit_of_work() as uow:
        actor = uow.session.scalars(select(User).where(User.username == (by or staff))).one()
        target = uow.session.scalars(select(User).where(User.username == staff)).one()
        return declare_conflict(
            uow,
            actor,
            target,
            person_id,
            relationship,
            engine.clock.now().date() - timedelta(days=1),
            **kwargs,
        ).id


def test_declared_conflict_bars_the_staff_member_from_every_task_of_that_person(engine):
    task = decision_task(engine)
    declare(engine, "decider", person_of(engine, "alice"), "relative")
    assert_barred_everywhere(engine, task, "decider", "SOD-COI")


def test_conflict_declared_after_the_claim_is_caught_at_completion(engine):
    task = decision_task(engine)
    engine.claim(task.id, "decider")
    declare(engine, "decider", person_of(engine, "alice"), by="manager")
    with pytest.raises(PermissionDenied, match="conflict of interest"):
        engine.complete(task.id, "decider", form_data(engine, task.form))


def test_conflict_with_another_person_does_not_bar(engine):
    task = decision_task(engine)
    declare(engine, "decider", person_of(engine, "bob"))
    assert_allowed(engine, task, "decider")


def test_ended_or_expired_declaration_no_longer_bars_and_stays_on_record(engine):
    task = decision_task(engine)
    declaration = declare(engine, "decider", person_of(engine, "alice"))
    with engine.unit_of_work() as uow:
        end_conflict(
            uow,
            uow.session.scalars(select(User).where(User.username == "decider")).one(),
            declaration,
        )
    declare(
        engine,
        "decider",
        person_of(engine, "alice"),
        valid_until=engine.clock.now().date() - timedelta(days=1),
    )
    assert_allowed(engine, task, "decider")
    assert [e.action for e in events(engine, action="conflict_ended")] == ["conflict_ended"]


def test_only_the_staff_member_or_a_manager_may_declare(engine):
    with pytest.raises(PermissionDenied):
        declare(engine, "decider", person_of(engine, "alice"), by="clerk")


# -- SOD-COMMIT ---------------------------------------------------------------------------


def test_expired_commitment_blocks_all_task_work(engine, clock):
    task = decision_task(engine)
    clock.set(clock.now() + timedelta(days=400))
    assert_barred_everywhere(engine, task, "decider", "SOD-COMMIT")
    assert available_task_ids(engine, "clerk") == set()


def test_facts_read_with_the_locked_case_bar_exactly_as_the_rules_own_query(engine, clock):
    """A completion reads the user's commitment and conflicts with the case's lock; the bars
    must be those the rules find by their own query, for every kind of user."""
    from engine.cases import open_task_for_user
    from engine.impartiality import evaluate

    task = decision_task(engine)
    declare(engine, "decider", person_of(engine, "alice"), "relative")
    declare(engine, "decider2", person_of(engine, "bob"))
    ended = declare(engine, "examiner_decider", person_of(engine, "alice"))
    with engine.unit_of_work() as uow:
        end_conflict(
            uow, uow.session.scalars(select(User).filter_by(username="manager")).one(), ended
        )
        newcomer = User(username="newcomer", display_name="New Comer", created_at=uow.now)
        newcomer.roles = [UserRole(role="decision_maker")]
        uow.session.add(newcomer)
    seen = set()
    for later in (timedelta(0), timedelta(days=400)):
        clock.set(clock.now() + later)
        for username in ("decider", "decider2", "examiner_decider", "newcomer", "examiner2"):
            with engine.unit_of_work() as uow:
                user, facts, t, case, _open = open_task_for_user(uow, task.id, username)
                read_ahead = evaluate(uow.session, user, t, case, uow.now, facts)
                assert read_ahead == evaluate(uow.session, user, t, case, uow.now), username
                seen |= {bar.rule for bar in read_ahead}
    assert {"SOD-COI", "SOD-COMMIT", "SOD-DECIDE"} <= seen


def test_staff_member_who_never_signed_is_blocked_until_signing(engine):
    from engine.impartiality.register import sign_commitment

    task = decision_task(engine)
    with engine.unit_of_work() as uow:
        newcomer = User(username="newcomer", display_name="New Comer", created_at=uow.now)
        newcomer.roles = [UserRole(role="decision_maker")]
        uow.session.add(newcomer)
    assert_barred_everywhere(engine, task, "newcomer", "SOD-COMMIT")
    with engine.unit_of_work() as uow:
        user = uow.session.scalars(select(User).where(User.username == "newcomer")).one()
        sign_commitment(uow, user, user)
    assert_allowed(engine, task, "newcomer")


# -- SOD-SELF -----------------------------------------------------------------------------


def test_staff_member_cannot_work_on_their_own_case(engine):
    with engine.unit_of_work() as uow:
        clerk = uow.session.scalars(select(User).where(User.username == "clerk")).one()
        person = uow.session.get(Person, engine_person(uow, "alice"))
        clerk.person_id = person.id
    case_id = start_application(engine, "alice")
    do(engine, case_id, "submit_application")
    task = ready_task(engine, case_id, "check_completeness")
    assert_barred_everywhere(engine, task, "clerk", "SOD-SELF")


def engine_person(uow, username: str) -> int:
    return uow.session.scalars(select(User.person_id).where(User.username == username)).one()


# -- SOD-INTERNAL -------------------------------------------------------------------------


def test_external_staff_never_get_decision_tasks(engine):
    with engine.unit_of_work() as uow:
        examiner = uow.session.scalars(select(User).where(User.username == "examiner")).one()
        examiner.roles.append(UserRole(role="decision_maker"))
    task = decision_task(engine)  # examined by examiner2, so only SOD-INTERNAL applies
    assert_barred_everywhere(engine, task, "examiner", "SOD-INTERNAL")


# -- SOD-APPEAL and SOD-COMPLAINT (rules reaching linked cases) ---------------------------


def test_appeal_handlers_exclude_the_examiners_and_deciders_of_the_appealed_decision(linked_engine):
    engine = linked_engine
    decided = decision_task(engine, examiner="examiner_decider")
    engine.claim(decided.id, "decider")
    engine.complete(decided.id, "decider", form_data(engine, "certification_decision"))
    with engine.unit_of_work() as uow:
        for username in ("decider", "examiner_decider"):
            user = uow.session.scalars(select(User).where(User.username == username)).one()
            user.roles.append(UserRole(role="appeals_panel"))
    appeal = engine.start_case(
        "appeal_check",
        actor="clerk",
        person_id=person_of(engine, "alice"),
        links={"appeals": decided.case_id},
    )
    [task] = engine.ready_tasks(appeal.case_id)
    assert_barred_everywhere(engine, task, "decider", "SOD-APPEAL")
    assert_barred_everywhere(engine, task, "examiner_decider", "SOD-APPEAL")
    assert_allowed(engine, task, "panel")


def test_complaint_response_is_approved_by_someone_not_involved_in_its_subject(linked_engine):
    engine = linked_engine
    case_id = start_application(engine, "alice")
    do(engine, case_id, "submit_application")
    do(engine, case_id, "check_completeness", "clerk")
    with engine.unit_of_work() as uow:
        for username in ("clerk", "complaints"):
            user = uow.session.scalars(select(User).where(User.username == username)).one()
            if username == "clerk":
                user.roles.append(UserRole(role="complaints_officer"))
    complaint = engine.start_case(
        "complaint_check",
        actor="clerk",
        person_id=person_of(engine, "alice"),
        links={"concerns": case_id},
    )
    [task] = engine.ready_tasks(complaint.case_id)
    assert_barred_everywhere(engine, task, "clerk", "SOD-COMPLAINT")
    assert_allowed(engine, task, "complaints")


# -- SOD-4EYES ----------------------------------------------------------------------------


def test_author_cannot_approve_their_own_model_version_and_the_refusal_is_recorded(engine):
    with engine.unit_of_work() as uow:
        quality = uow.session.scalars(select(User).where(User.username == "quality")).one()
        quality.roles.append(UserRole(role="process_owner"))
        version = uow.session.scalars(
            select(ModelVersion).where(ModelVersion.process_id == "decision")
        ).one()
        version.status, version.author_id = "draft", quality.id
        version_id = version.id
    engine.submit_model_for_review(version_id, "quality")
    with pytest.raises(PermissionDenied, match="10.2"):
        engine.approve_model_version(version_id, "quality")
    assert [e.after["rules"][0]["rule"] for e in events(engine, action="sod_check_failed")] == [
        "SOD-4EYES"
    ]
    with engine.unit_of_work() as uow:
        other = uow.session.scalars(select(User).where(User.username == "admin")).one()
        other.roles.append(UserRole(role="quality_manager"))
    assert engine.approve_model_version(version_id, "admin").status == "approved"


# -- explanations, manager view, auto-assignment ------------------------------------------


def explain_refusals(engine, task: HumanTask, username: str) -> list[dict]:
    with engine.sessions() as session:
        return explain(session, task.case_id, task.task_spec_id, username, engine.clock.now())[
            "rules"
        ]


def test_explanation_lists_every_rule_that_bars_including_a_missing_role(engine):
    task = decision_task(engine, examiner="examiner_decider")
    declare(engine, "examiner_decider", person_of(engine, "alice"), "trained")
    rules = {r["rule"] for r in explain_refusals(engine, task, "examiner_decider")}
    assert rules == {"SOD-DECIDE", "SOD-COI"}
    assert {r["rule"] for r in explain_refusals(engine, task, "clerk")} == {"ROLE"}
    with engine.sessions() as session:
        assert (
            explain(session, task.case_id, task.task_spec_id, "decider", engine.clock.now())[
                "allowed"
            ]
            is True
        )


def test_manager_view_shows_who_is_eligible_and_who_is_barred_and_why(engine):
    task = decision_task(engine, examiner="examiner_decider")
    with engine.sessions() as session:
        case = session.get(Case, task.case_id)
        row = session.get(HumanTask, task.id)
        report = {
            c.user.username: c for c in candidates_for(session, row, case, engine.clock.now())
        }
    assert report["decider"].eligible and report["decider2"].eligible
    assert not report["examiner_decider"].eligible
    assert report["examiner_decider"].bars[0].rule == "SOD-DECIDE"


def test_bars_from_earlier_steps_are_recorded_when_the_task_becomes_ready(engine):
    task = decision_task(engine, examiner="examiner_decider")
    recorded = events(engine, task_id=task.id, action="sod_bar_recorded")
    assert recorded and all(e.after["rule"] == "SOD-DECIDE" for e in recorded)


def test_named_examiner_with_a_conflict_is_not_assigned(engine):
    declare(engine, "examiner2", person_of(engine, "alice"), "colleague")
    case_id = start_application(engine, "alice")
    for step in (
        "submit_application",
        "check_completeness",
        "review_eligibility",
        "schedule_assessment",
    ):
        do(engine, case_id, step)
    task = ready_task(engine, case_id, "assign_examiner")
    engine.complete(
        task.id, "clerk", {**form_data(engine, "examiner_assignment"), "examiner": "examiner2"}
    )
    do(engine, case_id, "administer_exam")
    written = ready_task(engine, case_id, "score_written")
    assert written.assignee_id is None
    assert events(engine, case_id=case_id, action="assignment_refused")


def test_auto_assignment_picks_the_eligible_member_with_fewest_open_tasks_or_flags_nobody(
    linked_engine,
):
    engine = linked_engine
    first = engine.start_case("auto_check", actor="clerk", person_id=person_of(engine, "alice"))
    second = engine.start_case("auto_check", actor="clerk", person_id=person_of(engine, "alice"))
    [a] = engine.ready_tasks(first.case_id)
    [b] = engine.ready_tasks(second.case_id)
    assert {a.assignee_id, b.assignee_id} == {engine.user("decider").id, engine.user("decider2").id}
    for username in ("decider", "decider2", "examiner_decider"):
        declare(engine, username, person_of(engine, "bob"))
    third = engine.start_case("auto_check", actor="clerk", person_id=person_of(engine, "bob"))
    [c] = engine.ready_tasks(third.case_id)
    assert c.assignee_id is None
    assert c.assignment_flag == NO_ELIGIBLE_ASSIGNEE
    assert events(engine, case_id=third.case_id, action="no_eligible_assignee")


def test_manager_assignment_respects_the_rules(engine):
    task = decision_task(engine, examiner="examiner_decider")
    with pytest.raises(PermissionDenied, match="9.4"):
        engine.assign(task.id, "manager", "examiner_decider")
    assert engine.assign(task.id, "manager", "decider2").assignee_id == engine.user("decider2").id
    with pytest.raises(PermissionDenied):
        engine.assign(task.id, "clerk", "decider")


# -- a small process library for the linked-case rules --------------------------------------

SPIFF = 'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'


def one_task_model(process_id: str, task_id: str, role: str, form: str, extra: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" {SPIFF} id="d_{process_id}" targetNamespace="http://certrail.example/bpmn">
  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="{task_id}" name="{task_id.replace("_", " ").title()}">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="role" value="{role}"/>
        <spiffworkflow:property name="form" value="{form}"/>
        <spiffworkflow:property name="due" value="P10D"/>{extra}
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="{task_id}"/>
    <bpmn:sequenceFlow id="f2" sourceRef="{task_id}" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def linked_engine(database, clock, tmp_path):
    import shutil

    from engine import Engine
    from engine.catalog import BPMN_DIR
    from engine.demo import load_demo
    from engine.models import Base

    for path in BPMN_DIR.glob("*.bpmn"):
        shutil.copy(path, tmp_path / path.name)
    prop = '\n        <spiffworkflow:property name="{}" value="{}"/>'
    (tmp_path / "appeal_check.bpmn").write_text(
        one_task_model(
            "appeal_check",
            "decide_appeal",
            "appeals_panel",
            "certification_decision",
            prop.format("sod", "SOD-APPEAL"),
        )
    )
    (tmp_path / "complaint_check.bpmn").write_text(
        one_task_model(
            "complaint_check",
            "approve_response",
            "complaints_officer",
            "certification_decision",
            prop.format("sod", "SOD-COMPLAINT"),
        )
    )
    (tmp_path / "auto_check.bpmn").write_text(
        one_task_model(
            "auto_check",
            "decide_auto",
            "decision_maker",
            "certification_decision",
            prop.format("auto_assign", "true"),
        )
    )
    _kind, sql = database
    engine = Engine(sql_engine=sql, clock=clock, bpmn_dir=tmp_path)
    Base.metadata.create_all(sql)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
    return engine


def test_policy_file_is_validated_when_loaded(tmp_path):
    from engine.errors import ModelError
    from engine.impartiality.policy import POLICY_FILE, load_policy

    assert load_policy(POLICY_FILE).decision_tasks == (
        "decide_certification",
        "decide_recertification",
        "decide_suspension",
        "decide_reinstatement",
    )
    broken = tmp_path / "policy.json"
    broken.write_text(POLICY_FILE.read_text().replace('"SOD-SELF"', '"SOD-NOPE"'))
    with pytest.raises(ModelError, match="rules_for_every_task"):
        load_policy(broken)
    assert date.today()  # the module's date import is used by declarations above


def test_external_staff_are_still_offered_their_non_decision_tasks(engine):
    case_id = start_application(engine, "alice")
    for step in (
        "submit_application",
        "check_completeness",
        "review_eligibility",
        "schedule_assessment",
        "assign_examiner",
    ):
        do(engine, case_id, step)
    task = ready_task(engine, case_id, "administer_exam")
    assert engine.user("invigilator").is_external
    assert_allowed(engine, task, "invigilator")
