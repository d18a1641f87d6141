"""The management system's own processes (ISO/IEC 17024 10.2): internal audits with the
SOD-AUDIT rule, corrective actions with their effectiveness check, and the annual management
review opened by a scheduler job with its inputs gathered from the records."""

from __future__ import annotations

from datetime import datetime

import pytest
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import NotFoundError, PermissionDenied, ValidationError
from engine.catalog import BPMN_DIR
from engine.forms import FormRegistry
from engine.impartiality.explain import explain
from engine.lint import lint_files
from engine.management_review import open_due_management_review, take_job_lock
from engine.models import Case, CaseLink, Timer
from engine.timers import fire_due_timers
from tests.conftest import make_sql_engine
from tests.engine.helpers import do, events, ready_spec_ids, ready_task
from tests.engine.test_appeals_complaints import (
    decided_case,
    give_role,
    lodge_appeal,
    lodge_complaint,
)
from tests.engine.test_concurrency import race
from tests.engine.test_impartiality import assert_allowed, assert_barred_everywhere

MODELS = ("internal_audit", "corrective_action", "management_review")
CRITERIA = "ISO/IEC 17024 9.9 and procedure P-12 on complaints handling."


def plan_audit(
    engine,
    auditor: str,
    process: str = "complaint",
    period: tuple[str, str] = ("2026-01-01", "2026-03-31"),
) -> int:
    case_id = engine.start_case("internal_audit", actor="quality").case_id
    do(
        engine,
        case_id,
        "plan_audit",
        "quality",
        audited_process=process,
        audit_period_from=period[0],
        audit_period_to=period[1],
        audit_criteria=CRITERIA,
        auditor=auditor,
    )
    return case_id


def finding(requirement: str, kind: str, another: bool) -> dict:
    return {
        "finding_requirement": requirement,
        "finding_type": kind,
        "finding_evidence": f"Records sampled for {requirement} show the gap.",
        "another_finding": another,
    }


def run_audit(engine, case_id: int, auditor: str, findings: list[dict]) -> None:
    """Perform, record `findings`, report and close (accepted) the planned audit."""
    do(engine, case_id, "perform_audit", auditor, audit_has_findings=bool(findings))
    for values in findings:
        do(engine, case_id, "record_audit_finding", auditor, **values)
    do(engine, case_id, "report_audit", auditor, audit_conclusion="nonconforming")
    do(engine, case_id, "close_audit", "quality", audit_report_accepted=True)


def raised_from(engine, case_id: int) -> list[Case]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(Case)
                .join(CaseLink, CaseLink.from_case_id == Case.id)
                .where(CaseLink.to_case_id == case_id, CaseLink.kind == "raised_from")
                .order_by(Case.id)
            )
        )


def worked_complaint(engine) -> int:
    """A complaint whose relevance the complaints officer (also a quality manager) confirmed
    on the fixture's day, 2 Mar 2026."""
    complaint = lodge_complaint(engine, None)
    do(engine, complaint, "confirm_relevance", "complaints")
    return complaint


# -- internal audit ---------------------------------------------------------------------------


def test_internal_audit_runs_from_plan_to_closure_and_opens_a_corrective_action_per_nonconformity(
    engine,
):
    give_role(engine, "quality_manager", "reviewer")
    audit = plan_audit(engine, "reviewer")
    perform = ready_task(engine, audit, "perform_audit")
    assert (perform.role, perform.candidates, perform.sod_rules) == (
        "quality_manager",
        ["reviewer"],
        "SOD-AUDIT",
    )
    do(engine, audit, "perform_audit", "reviewer", audit_has_findings=True)
    do(engine, audit, "record_audit_finding", "reviewer", **finding("9.9.4", "nonconformity", True))
    do(engine, audit, "record_audit_finding", "reviewer", **finding("9.9.6", "observation", True))
    do(
        engine,
        audit,
        "record_audit_finding",
        "reviewer",
        **finding("9.9.7", "nonconformity", False),
    )
    do(engine, audit, "report_audit", "reviewer", audit_conclusion="nonconforming")
    # Returned once: the report goes back to the auditor, then is accepted.
    do(
        engine,
        audit,
        "close_audit",
        "quality",
        audit_report_accepted=False,
        audit_review_comments="Say which complaints were sampled.",
    )
    assert ready_task(engine, audit, "report_audit").candidates == ["reviewer"]
    do(engine, audit, "report_audit", "reviewer")
    do(engine, audit, "close_audit", "quality", audit_report_accepted=True)

    assert engine.case(audit).status == "completed"
    data = engine.case_data(audit)
    assert [(f["requirement"], f["type"]) for f in data["audit_findings"]] == [
        ("9.9.4", "nonconformity"),
        ("9.9.6", "observation"),
        ("9.9.7", "nonconformity"),
    ]
    actions = raised_from(engine, audit)
    assert data["audit_corrective_actions"] == {"case_ids": [c.id for c in actions], "count": 2}
    assert [(c.process_id, c.status) for c in actions] == [("corrective_action", "running")] * 2
    nonconformity = engine.case_data(actions[1].id)["nonconformity"]
    assert nonconformity["source"] == "internal_audit"
    assert nonconformity["reference"] == audit
    assert nonconformity["description"].startswith("9.9.7: Records sampled")
    assert ready_spec_ids(engine, actions[0].id) == ["analyse_root_cause"]
    assert len(events(engine, case_id=audit, action="audit_finding_recorded")) == 3


def test_auditor_who_worked_in_the_audited_process_and_period_is_barred_and_another_may_audit(
    engine,
):
    give_role(engine, "quality_manager", "complaints", "reviewer")
    worked_complaint(engine)
    audit = plan_audit(engine, "complaints")

    # The named auditor did work in the audited process: not assigned, and the refusal kept.
    perform = ready_task(engine, audit, "perform_audit")
    assert perform.candidates is None and perform.assignee_id is None
    [refused] = events(engine, case_id=audit, action="assignment_refused")
    assert refused.after == {"user": "complaints", "rules": ["SOD-AUDIT"]}
    recorded = {e.after["user_id"]: e for e in events(engine, action="sod_bar_recorded")}
    assert {e.after["rule"] for e in recorded.values()} == {"SOD-AUDIT"}
    assert any("Carl Complaints completed 1 step" in e.message for e in recorded.values())

    assert_barred_everywhere(engine, perform, "complaints", "SOD-AUDIT")
    # The quality manager who planned the audit may not perform it either.
    assert_barred_everywhere(engine, perform, "quality", "SOD-AUDIT")
    with engine.sessions() as session:
        answer = explain(session, audit, "perform_audit", "complaints", engine.clock.now())
    [rule] = answer["rules"]
    assert rule["rule"] == "SOD-AUDIT" and "10.2.6" in rule["reason"]
    assert "'complaint' process in the audited period" in rule["reason"]
    [failed, *_] = [
        e
        for e in events(engine, case_id=audit, action="sod_check_failed")
        if e.actor == "complaints"
    ]
    assert failed.after["rules"][0]["rule"] == "SOD-AUDIT"

    assert_allowed(engine, perform, "reviewer")


def test_work_outside_the_audited_period_or_process_does_not_bar_the_auditor(engine):
    give_role(engine, "quality_manager", "complaints")
    worked_complaint(engine)
    earlier = plan_audit(engine, "complaints", period=("2025-01-01", "2025-12-31"))
    other = plan_audit(engine, "complaints", process="appeal")
    for audit in (earlier, other):
        perform = ready_task(engine, audit, "perform_audit")
        assert (perform.candidates, perform.assignee_id) == (
            ["complaints"],
            engine.user("complaints").id,
        )
        with engine.sessions() as session:
            assert explain(session, audit, "perform_audit", "complaints", clock_now(engine))[
                "allowed"
            ]
        do(engine, audit, "perform_audit", "complaints")
        [passed] = events(engine, task_id=perform.id, action="sod_check_passed")
        assert "SOD-AUDIT" in passed.after["rules"]


def clock_now(engine) -> datetime:
    return engine.clock.now()


# -- corrective action ------------------------------------------------------------------------


def test_staff_raise_a_corrective_action_from_a_complaint_and_bad_requests_name_the_field(engine):
    complaint = lodge_complaint(engine, None)
    raised = engine.raise_corrective_action(
        "quality", "complaint", str(complaint), "Complaints were not acknowledged in time."
    )
    assert [c.id for c in raised_from(engine, complaint)] == [raised]
    assert engine.case_data(raised)["nonconformity"]["reference"] == complaint
    [event] = events(engine, case_id=raised, action="corrective_action_raised")
    assert event.actor == "quality" and event.after["source"] == "complaint"

    with pytest.raises(ValidationError) as bad_source:
        engine.raise_corrective_action("quality", "rumour", None, "Something went wrong here.")
    assert "source" in bad_source.value.fields
    with pytest.raises(ValidationError) as no_reference:
        engine.raise_corrective_action("quality", "appeal", "", "Something went wrong here.")
    assert "reference" in no_reference.value.fields
    with pytest.raises(ValidationError) as short:
        engine.raise_corrective_action("quality", "other", None, "bad")
    assert "description" in short.value.fields
    with pytest.raises(NotFoundError):
        engine.raise_corrective_action("quality", "appeal", complaint, "Not an appeal case at all.")
    with pytest.raises(PermissionDenied):
        engine.raise_corrective_action("clerk", "other", None, "Clerks cannot raise these.")


def test_effectiveness_check_waits_for_the_due_date_and_an_ineffective_action_is_reopened(
    engine, clock
):
    case_id = engine.raise_corrective_action(
        "quality", "other", "supplier audit", "Exam papers were stored in an unlocked room."
    )
    do(engine, case_id, "analyse_root_cause", "quality")
    do(engine, case_id, "plan_corrective_action", "quality", action_due_on="2026-04-15")
    do(engine, case_id, "record_implementation", "quality")

    assert ready_spec_ids(engine, case_id) == []
    with engine.sessions() as session:
        [timer] = session.scalars(select(Timer).where(Timer.case_id == case_id)).all()
    assert (timer.task_spec_id, timer.fire_at) == (
        "wait_for_action_due_date",
        datetime(2026, 4, 15),
    )
    clock.set(datetime(2026, 4, 14, 23, 0))
    assert fire_due_timers(engine) == 0
    assert ready_spec_ids(engine, case_id) == []

    clock.set(datetime(2026, 4, 15, 8, 0))
    assert fire_due_timers(engine) == 1
    do(
        engine,
        case_id,
        "check_effectiveness",
        "quality",
        action_effective=False,
        effectiveness_evidence="Papers were found in the same room in April.",
    )
    assert ready_spec_ids(engine, case_id) == ["analyse_root_cause"]
    do(engine, case_id, "analyse_root_cause", "quality")
    do(engine, case_id, "plan_corrective_action", "quality", action_due_on="2026-04-01")
    do(engine, case_id, "record_implementation", "quality")
    # The new due date has passed already: the check is ready at once.
    do(engine, case_id, "check_effectiveness", "quality", action_effective=True)
    assert engine.case(case_id).status == "completed"


# -- management review ------------------------------------------------------------------------


def review_cases(engine) -> list[Case]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(Case).where(Case.process_id == "management_review").order_by(Case.id)
            )
        )


def test_management_review_opens_once_a_year_with_the_real_figures_of_the_period(engine, clock):
    give_role(engine, "quality_manager", "reviewer")
    # One appeal (upheld), two complaints (one substantiated, one open), one audit with a
    # nonconformity whose corrective action is still open, one corrective action overdue.
    appeal = lodge_appeal(engine, decided_case(engine))
    for step in ("acknowledge_appeal", "validate_appeal", "investigate_appeal"):
        do(engine, appeal, step, "clerk" if step == "acknowledge_appeal" else "panel")
    do(engine, appeal, "decide_appeal", "panel", appeal_outcome="upheld")
    substantiated = lodge_complaint(engine, None)
    do(engine, substantiated, "confirm_relevance", "complaints")
    do(engine, substantiated, "acknowledge_complaint", "complaints")
    do(engine, substantiated, "investigate_complaint", "complaints", complaint_substantiated=True)
    lodge_complaint(engine, None, "bob")
    audit = plan_audit(engine, "reviewer")
    run_audit(
        engine,
        audit,
        "reviewer",
        [finding("9.9.4", "nonconformity", True), finding("9.9.6", "observation", False)],
    )
    late = engine.raise_corrective_action("quality", "other", None, "Archive index not kept.")
    do(engine, late, "analyse_root_cause", "quality")
    do(engine, late, "plan_corrective_action", "quality", action_due_on="2026-03-01")
    # One refused impartiality check: a second audit's planner tries to perform it.
    second = plan_audit(engine, "reviewer", process="appeal")
    with pytest.raises(PermissionDenied):
        engine.claim(ready_task(engine, second, "perform_audit").id, "quality")

    assert open_due_management_review(engine) == 1
    assert open_due_management_review(engine) == 0
    [review] = review_cases(engine)
    inputs = engine.case_data(review.id)["management_review_inputs"]

    assert inputs["period"] == {"from": "2025-03-02T00:00:00", "to": "2026-03-02T09:00:00"}
    assert inputs["appeals"]["received"] == 1 and inputs["appeals"]["upheld"] == 1
    assert inputs["appeals"]["by_scheme"] == {"DPO": {"received": 1, "upheld": 1, "open": 0}}
    complaints = inputs["complaints"]
    assert (complaints["received"], complaints["upheld"], complaints["open"]) == (2, 1, 2)
    audits = inputs["internal_audits"]
    assert (audits["started"], audits["closed"], audits["open"]) == (2, 1, 1)
    assert (audits["nonconformities"], audits["observations"]) == (1, 1)
    assert audits["open_nonconformities"] == 1
    assert audits["audits"][0] == {
        "case_id": audit,
        "audited_process": "complaint",
        "period": ["2026-01-01", "2026-03-31"],
        "conclusion": "nonconforming",
    }
    assert [a["audited_process"] for a in audits["audits"]] == ["complaint", "appeal"]
    actions = inputs["corrective_actions"]
    assert (actions["started"], actions["open"], actions["overdue"]) == (2, 2, 1)
    assert actions["overdue_case_ids"] == [late]
    assert actions["raised_by_source"] == {"internal_audit": 1, "other": 1}
    impartiality = inputs["impartiality"]
    assert impartiality["refused_checks"] == 1
    assert impartiality["refused_by_rule"] == {"SOD-AUDIT": 1}
    assert impartiality["commitments_signed"] >= 1
    assert inputs["overdue"]["open_overdue"] == 0
    assert inputs["feedback"]["received"] == 0

    # Top management records the review; the quality manager approves the minutes.
    do(
        engine,
        review.id,
        "record_review_decisions",
        "manager",
        review_actions=["Train complaints officers on P-12 (owner: Carl, by June 2026)"],
    )
    do(engine, review.id, "approve_review_minutes", "quality", minutes_approved=True)
    assert engine.case(review.id).status == "completed"

    clock.set(datetime(2026, 9, 1, 9, 0))
    assert open_due_management_review(engine) == 0
    clock.set(datetime(2027, 3, 2, 0, 0))
    assert open_due_management_review(engine) == 1
    assert open_due_management_review(engine) == 0
    first, second = review_cases(engine)
    assert engine.case_data(second.id)["management_review_inputs"]["period"]["from"] == (
        first.started_at.isoformat()
    )


def test_workers_racing_for_the_due_management_review_open_exactly_one(engine):
    results = race(*[lambda: open_due_management_review(engine)] * 4)
    assert sorted(results) == [0, 0, 0, 1], results
    assert len(review_cases(engine)) == 1


@pytest.mark.parametrize(
    "database", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_the_job_lock_of_a_deployment_in_another_schema_does_not_hold_this_one_up(engine, tmp_path):
    with Session(engine.db) as here, here.begin():
        assert take_job_lock(here)  # a worker of this deployment is running the job
        assert open_due_management_review(engine) == 0
    other, drop = make_sql_engine("postgresql", tmp_path)
    try:
        with Session(other) as elsewhere, elsewhere.begin():
            assert take_job_lock(elsewhere)  # another deployment's, in its own schema
            assert open_due_management_review(engine) == 1
    finally:
        drop()
    assert len(review_cases(engine)) == 1


# -- the models ---------------------------------------------------------------------------------


def test_quality_models_lint_clean_and_draw_every_element_inside_its_lane():
    shipped = sorted(BPMN_DIR.glob("*.bpmn"))
    paths = [BPMN_DIR / f"{name}.bpmn" for name in MODELS]
    assert lint_files(paths, FormRegistry(), {p.stem for p in shipped}, context=shipped) == []
    ns = {
        "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
        "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
        "dc": "http://www.omg.org/spec/DD/20100524/DC",
        "di": "http://www.omg.org/spec/DD/20100524/DI",
    }
    for path in paths:
        root = etree.parse(str(path)).getroot()
        bounds = {
            shape.get("bpmnElement"): [
                float(shape.find("dc:Bounds", ns).get(k)) for k in ("x", "y", "width", "height")
            ]
            for shape in root.iterfind(".//bpmndi:BPMNShape", ns)
        }
        process = root.find("bpmn:process", ns)
        for lane in process.iterfind(".//bpmn:lane", ns):
            lx, ly, lw, lh = bounds[lane.get("id")]
            for ref in lane.iterfind("bpmn:flowNodeRef", ns):
                x, y, w, h = bounds[ref.text]
                assert lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh, ref.text
        edges = {e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNEdge", ns)}
        for flow in process.iterfind("bpmn:sequenceFlow", ns):
            points = [
                (float(p.get("x")), float(p.get("y")))
                for p in edges[flow.get("id")].iterfind("di:waypoint", ns)
            ]
            for end, ref in ((points[0], "sourceRef"), (points[-1], "targetRef")):
                x, y, w, h = bounds[flow.get(ref)]
                assert x - 1 <= end[0] <= x + w + 1 and y - 1 <= end[1] <= y + h + 1, flow.get("id")
            for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
                assert x1 == x2 or y1 == y2, flow.get("id")
