"""End-to-end paths of an application case through the shipped models, on both databases."""

from __future__ import annotations

import re
from datetime import date, datetime

from engine import Engine
from tests.engine.helpers import (
    certificates,
    do,
    drive_to_decision,
    drive_to_scheduling,
    drive_to_scoring,
    events,
    lock_version,
    ready_spec_ids,
    ready_task,
    start_application,
    task_rows,
    verify,
)

DECISION_TASKS = {"review_file", "decide_certification"}


def test_new_application_case_waits_for_the_applicant_to_submit(engine):
    case_id = start_application(engine)

    assert ready_spec_ids(engine, case_id) == ["submit_application"]
    task = ready_task(engine, case_id, "submit_application")
    assert task.role == "applicant"
    assert task.form == "application"
    assert engine.case(case_id).status == "running"


def test_cwi_written_and_practical_scoring_are_ready_at_the_same_time(engine):
    case_id = start_application(engine, scheme="CWI")
    drive_to_scoring(engine, case_id)

    assert ready_spec_ids(engine, case_id) == ["score_practical", "score_written"]


def test_score_tasks_go_to_the_examiner_named_at_assignment(engine):
    case_id = start_application(engine, scheme="CWI")
    drive_to_scoring(engine, case_id, examiner="examiner2")

    examiner2 = engine.user("examiner2")
    for spec_id in ("score_written", "score_practical"):
        task = ready_task(engine, case_id, spec_id)
        assert task.candidates == ["examiner2"]
        assert task.assignee_id == examiner2.id


def test_join_waits_for_practical_score_before_the_decision_starts(engine):
    case_id = start_application(engine, scheme="CWI")
    drive_to_scoring(engine, case_id)

    do(engine, case_id, "score_written")
    assert ready_spec_ids(engine, case_id) == ["score_practical"]
    assert not DECISION_TASKS & set(ready_spec_ids(engine, case_id))

    do(engine, case_id, "score_practical")
    assert ready_spec_ids(engine, case_id) == ["review_file"]


def test_join_waits_for_written_score_when_practical_is_scored_first(engine):
    case_id = start_application(engine, scheme="CWI")
    drive_to_scoring(engine, case_id)

    do(engine, case_id, "score_practical")
    assert ready_spec_ids(engine, case_id) == ["score_written"]

    do(engine, case_id, "score_written")
    assert ready_spec_ids(engine, case_id) == ["review_file"]


def test_granted_cwi_decision_issues_certificate_with_36_month_validity(engine, clock):
    case_id = start_application(engine, scheme="CWI")
    drive_to_decision(engine, case_id)

    do(engine, case_id, "decide_certification", certification_decision="grant")

    case = engine.case(case_id)
    assert case.status == "completed"
    assert case.ended_at == clock.now()
    assert engine.ready_tasks(case_id) == []
    [certificate] = certificates(engine, case_id)
    assert certificate.number == "CWI-2026-000001"
    assert re.fullmatch(r"CWI-\d{4}-\d{6}", certificate.number)
    assert certificate.effective_on == date(2026, 3, 2)
    assert certificate.expires_on == date(2029, 3, 2)
    assert certificate.status == "active"
    assert certificate.person_id == engine.user("alice").person_id
    data = engine.case_data(case_id)
    assert data["certificate"]["number"] == "CWI-2026-000001"
    assert data["certificate"]["expires_on"] == "2029-03-02"
    assert [e.message for e in events(engine, case_id=case_id, action="certificate_issued")] == [
        "certificate CWI-2026-000001 issued to Alice Applicant (CWI v2026.1)"
    ]
    assert verify(engine).ok


def test_certificate_number_and_validity_follow_the_decision_date(engine, clock):
    case_id = start_application(engine, scheme="CWI")
    drive_to_decision(engine, case_id)

    clock.set(datetime(2027, 1, 15, 14, 30))
    do(engine, case_id, "decide_certification")

    [certificate] = certificates(engine, case_id)
    assert certificate.number == "CWI-2027-000001"
    assert certificate.effective_on == date(2027, 1, 15)
    assert certificate.expires_on == date(2030, 1, 15)


def test_second_certificate_of_a_scheme_in_a_year_takes_the_next_serial(engine):
    numbers = []
    for applicant in ("alice", "bob"):
        case_id = start_application(engine, applicant, scheme="CWI")
        drive_to_decision(engine, case_id, applicant)
        do(engine, case_id, "decide_certification")
        numbers += [c.number for c in certificates(engine, case_id)]

    assert numbers == ["CWI-2026-000001", "CWI-2026-000002"]


def test_dpo_case_has_no_practical_score_and_certificate_valid_24_months(engine):
    case_id = start_application(engine, scheme="DPO")
    drive_to_scoring(engine, case_id)

    assert ready_spec_ids(engine, case_id) == ["score_written"]
    do(engine, case_id, "score_written", written_score=65)
    assert ready_spec_ids(engine, case_id) == ["review_file"]
    do(engine, case_id, "review_file")
    do(engine, case_id, "decide_certification")

    assert engine.case(case_id).status == "completed"
    assert task_rows(engine, case_id, "score_practical") == []
    [certificate] = certificates(engine, case_id)
    assert certificate.number == "DPO-2026-000001"
    assert certificate.effective_on == date(2026, 3, 2)
    assert certificate.expires_on == date(2028, 3, 2)


def test_refused_decision_issues_refusal_letter_with_appeal_rights_and_no_certificate(engine):
    case_id = start_application(engine, scheme="CWI")
    drive_to_decision(engine, case_id)

    rationale = "The practical evidence does not show independent inspection work."
    do(
        engine,
        case_id,
        "decide_certification",
        certification_decision="refuse",
        decision_rationale=rationale,
    )

    assert engine.case(case_id).status == "completed"
    assert certificates(engine, case_id) == []
    assert events(engine, case_id=case_id, action="certificate_issued") == []
    letter = engine.case_data(case_id)["refusal_letter"]
    assert letter["appeal_rights"] is True
    assert letter["issued_on"] == "2026-03-02"
    assert rationale in letter["text"]
    assert "appeal" in letter["text"]
    assert "Alice Applicant" in letter["text"]
    assert len(events(engine, case_id=case_id, action="refusal_letter_issued")) == 1


def test_more_evidence_outcome_asks_applicant_then_creates_a_new_eligibility_review(engine):
    case_id = start_application(engine)
    do(engine, case_id, "submit_application")
    do(engine, case_id, "check_completeness")
    first_review = ready_task(engine, case_id, "review_eligibility")

    do(
        engine,
        case_id,
        "review_eligibility",
        eligibility_outcome="more_evidence",
        eligibility_evidence_requested="Signed employer letter covering three years of welding.",
    )

    assert ready_spec_ids(engine, case_id) == ["provide_evidence"]
    evidence = ready_task(engine, case_id, "provide_evidence")
    assert evidence.role == "applicant"
    assert evidence.form == "additional_evidence"

    do(engine, case_id, "provide_evidence", "alice")
    assert ready_spec_ids(engine, case_id) == ["review_eligibility"]
    second_review = ready_task(engine, case_id, "review_eligibility")
    assert second_review.id != first_review.id
    assert second_review.task_uuid != first_review.task_uuid
    assert [r.status for r in task_rows(engine, case_id, "review_eligibility")] == [
        "completed",
        "ready",
    ]

    do(engine, case_id, "review_eligibility", eligibility_outcome="eligible")
    assert ready_spec_ids(engine, case_id) == ["schedule_assessment"]


def test_incomplete_application_goes_back_to_applicant_and_then_to_a_new_check(engine):
    case_id = start_application(engine)
    do(engine, case_id, "submit_application")

    do(
        engine,
        case_id,
        "check_completeness",
        application_complete=False,
        completeness_notes="Eye test certificate is missing.",
    )
    assert ready_spec_ids(engine, case_id) == ["complete_application"]
    assert ready_task(engine, case_id, "complete_application").role == "applicant"

    do(engine, case_id, "complete_application", "alice")
    assert ready_spec_ids(engine, case_id) == ["check_completeness"]
    assert [r.status for r in task_rows(engine, case_id, "check_completeness")] == [
        "completed",
        "ready",
    ]

    do(engine, case_id, "check_completeness", application_complete=True)
    assert ready_spec_ids(engine, case_id) == ["review_eligibility"]


def test_not_eligible_outcome_notifies_applicant_and_ends_the_case(engine):
    case_id = start_application(engine)
    do(engine, case_id, "submit_application")
    do(engine, case_id, "check_completeness")

    do(engine, case_id, "review_eligibility", eligibility_outcome="not_eligible")

    assert engine.case(case_id).status == "completed"
    assert engine.ready_tasks(case_id) == []
    assert len(events(engine, case_id=case_id, action="applicant_notified")) == 1
    assert certificates(engine, case_id) == []


def test_failed_written_exam_ends_case_without_decision_tasks(engine):
    case_id = start_application(engine, scheme="CWI")
    drive_to_scoring(engine, case_id)

    do(engine, case_id, "score_written", written_score=40)
    do(engine, case_id, "score_practical", practical_score=90)

    assert engine.case(case_id).status == "completed"
    assert engine.ready_tasks(case_id) == []
    assert task_rows(engine, case_id, "review_file") == []
    assert task_rows(engine, case_id, "decide_certification") == []
    assert engine.case_data(case_id)["exam_passed"] is False
    assert certificates(engine, case_id) == []
    assert [e.message for e in events(engine, case_id=case_id, action="applicant_notified")] == [
        "applicant notified: Notify applicant: assessment failed"
    ]


def test_failed_practical_exam_fails_the_cwi_assessment_even_with_a_good_written_score(engine):
    case_id = start_application(engine, scheme="CWI")
    drive_to_scoring(engine, case_id)

    do(engine, case_id, "score_written", written_score=95)
    do(engine, case_id, "score_practical", practical_score=69)

    assert engine.case(case_id).status == "completed"
    assert task_rows(engine, case_id, "review_file") == []
    assert engine.case_data(case_id)["exam_passed"] is False


def test_score_exactly_at_pass_mark_passes(engine):
    case_id = start_application(engine, scheme="DPO")
    drive_to_scoring(engine, case_id)

    do(engine, case_id, "score_written", written_score=65)  # DPO pass mark

    assert ready_spec_ids(engine, case_id) == ["review_file"]
    assert engine.case_data(case_id)["exam_passed"] is True


def test_completing_a_task_increments_the_case_lock_version(engine):
    case_id = start_application(engine)
    before = lock_version(engine, case_id)

    do(engine, case_id, "submit_application")

    assert lock_version(engine, case_id) > before
    after_submit = lock_version(engine, case_id)
    do(engine, case_id, "check_completeness")
    assert lock_version(engine, case_id) > after_submit


def test_claiming_a_task_does_not_change_the_case_lock_version(engine):
    case_id = start_application(engine)
    drive_to_scheduling(engine, case_id)
    before = lock_version(engine, case_id)

    engine.claim(ready_task(engine, case_id, "schedule_assessment").id, "clerk")

    assert lock_version(engine, case_id) == before


def test_a_case_runs_to_its_end_when_no_workflow_is_kept_in_memory(engine, clock):
    """Each step then restores the workflow from the stored state, as a worker process does
    for a case that another process moved on (the state is read only then)."""
    forgetful = Engine(sql_engine=engine.db, clock=clock, live_workflow_capacity=0)
    case_id = start_application(forgetful)
    drive_to_decision(forgetful, case_id)
    do(forgetful, case_id, "decide_certification")
    assert forgetful.case(case_id).status == "completed"
    assert len(certificates(forgetful, case_id)) == 1
    assert verify(forgetful).ok
