"""Who may claim, release and complete a task: role, applicant, named assignee, claims."""

from __future__ import annotations

import pytest

from engine import ConflictError, NotFoundError, PermissionDenied
from engine.models import User
from tests.engine.helpers import (
    do,
    drive_to_scoring,
    event_count,
    events,
    form_data,
    lock_version,
    ready_spec_ids,
    ready_task,
    start_application,
    task_row,
)


@pytest.fixture
def review_task(engine):
    """A case waiting on review_eligibility (reviewer role: `reviewer`, `reviewer_panel`)."""
    case_id = start_application(engine)
    do(engine, case_id, "submit_application")
    do(engine, case_id, "check_completeness")
    return ready_task(engine, case_id, "review_eligibility")


def review_data(engine):
    return form_data(engine, "eligibility_review")


@pytest.mark.parametrize("username", ["clerk", "examiner", "decider", "alice", "manager"])
def test_user_without_the_reviewer_role_cannot_complete_the_review(engine, review_task, username):
    version = lock_version(engine, review_task.case_id)
    audit_before = event_count(engine)

    with pytest.raises(PermissionDenied, match="reviewer role"):
        engine.complete(review_task.id, username, review_data(engine))

    assert task_row(engine, review_task.id).status == "ready"
    assert lock_version(engine, review_task.case_id) == version
    # Nothing changed; only a failed impartiality check (alice's own case) is on record.
    expected = 1 if username == "alice" else 0
    assert event_count(engine) == audit_before + expected


def test_user_without_the_role_cannot_claim_the_task(engine, review_task):
    with pytest.raises(PermissionDenied):
        engine.claim(review_task.id, "clerk")
    assert task_row(engine, review_task.id).assignee_id is None


def test_another_applicant_cannot_submit_alices_application(engine):
    case_id = start_application(engine, "alice")
    task = ready_task(engine, case_id, "submit_application")

    with pytest.raises(PermissionDenied, match="only the applicant"):
        engine.complete(task.id, "bob", form_data(engine, "application"))
    with pytest.raises(PermissionDenied):
        engine.claim(task.id, "chen")

    assert ready_spec_ids(engine, case_id) == ["submit_application"]
    engine.complete(task.id, "alice", form_data(engine, "application"))
    assert ready_spec_ids(engine, case_id) == ["check_completeness"]


def test_staff_cannot_do_the_applicants_step(engine):
    case_id = start_application(engine, "alice")
    task = ready_task(engine, case_id, "submit_application")

    for staff in ("clerk", "admin"):
        with pytest.raises(PermissionDenied):
            engine.complete(task.id, staff, form_data(engine, "application"))


def test_task_claimed_by_one_user_cannot_be_completed_by_another(engine, review_task):
    engine.claim(review_task.id, "reviewer")

    with pytest.raises(PermissionDenied, match="Rafael Reviewer"):
        engine.complete(review_task.id, "reviewer_panel", review_data(engine))

    row = task_row(engine, review_task.id)
    assert row.status == "ready"
    assert row.assignee_id == engine.user("reviewer").id


def test_second_claim_by_a_different_user_is_a_conflict(engine, review_task):
    engine.claim(review_task.id, "reviewer")

    with pytest.raises(ConflictError, match="already claimed by Rafael Reviewer"):
        engine.claim(review_task.id, "reviewer_panel")

    assert task_row(engine, review_task.id).assignee_id == engine.user("reviewer").id


def test_claiming_again_by_the_same_user_is_harmless(engine, review_task):
    engine.claim(review_task.id, "reviewer")
    engine.claim(review_task.id, "reviewer")

    assert task_row(engine, review_task.id).assignee_id == engine.user("reviewer").id
    assert len(events(engine, action="task_claimed", task_id=review_task.id)) == 1


def test_after_unclaim_another_user_can_claim_and_complete(engine, review_task):
    engine.claim(review_task.id, "reviewer")
    engine.unclaim(review_task.id, "reviewer")
    assert task_row(engine, review_task.id).assignee_id is None

    engine.claim(review_task.id, "reviewer_panel")
    engine.complete(review_task.id, "reviewer_panel", review_data(engine))

    row = task_row(engine, review_task.id)
    assert row.status == "completed"
    assert row.completed_by_id == engine.user("reviewer_panel").id
    actions = [e.action for e in events(engine, task_id=review_task.id)]
    assert actions == [
        "task_ready",
        "sod_check_passed",
        "task_claimed",
        "task_unclaimed",
        "sod_check_passed",
        "task_claimed",
        "sod_check_passed",
        "task_completed",
    ]


def test_only_the_holder_or_a_manager_can_release_a_claim(engine, review_task):
    engine.claim(review_task.id, "reviewer")

    with pytest.raises(PermissionDenied):
        engine.unclaim(review_task.id, "reviewer_panel")
    assert task_row(engine, review_task.id).assignee_id == engine.user("reviewer").id

    engine.unclaim(review_task.id, "manager")
    assert task_row(engine, review_task.id).assignee_id is None


def test_score_task_can_only_be_done_by_the_assigned_examiner(engine):
    case_id = start_application(engine)
    drive_to_scoring(engine, case_id, examiner="examiner")
    written = ready_task(engine, case_id, "score_written")

    with pytest.raises(PermissionDenied):
        engine.complete(written.id, "examiner2", form_data(engine, "written_score"))
    with pytest.raises(PermissionDenied):
        engine.claim(written.id, "examiner_decider")

    engine.complete(written.id, "examiner", form_data(engine, "written_score"))
    assert task_row(engine, written.id).completed_by_id == engine.user("examiner").id


def test_naming_an_unknown_examiner_leaves_scoring_open_to_every_examiner(engine):
    case_id = start_application(engine)
    do(engine, case_id, "submit_application")
    do(engine, case_id, "check_completeness")
    do(engine, case_id, "review_eligibility")
    do(engine, case_id, "schedule_assessment")
    do(engine, case_id, "assign_examiner", examiner="nobody-by-this-name")
    do(engine, case_id, "administer_exam")

    written = ready_task(engine, case_id, "score_written")
    assert written.candidates is None
    assert written.assignee_id is None
    assert events(engine, case_id=case_id, action="assignment_refused")
    engine.complete(written.id, "examiner2", form_data(engine, "written_score"))


def test_deactivated_user_cannot_complete_a_task(engine, review_task):
    with engine.unit_of_work() as uow:
        user = uow.session.query(User).filter_by(username="reviewer").one()
        user.active = False

    with pytest.raises(PermissionDenied, match="deactivated"):
        engine.complete(review_task.id, "reviewer", review_data(engine))


def test_unknown_user_or_task_is_not_found(engine, review_task):
    with pytest.raises(NotFoundError, match="user 'mallory' does not exist"):
        engine.complete(review_task.id, "mallory", review_data(engine))
    with pytest.raises(NotFoundError, match="task 999999 does not exist"):
        engine.complete(999_999, "reviewer", review_data(engine))
    with pytest.raises(NotFoundError, match="user 'mallory' does not exist"):
        engine.complete(999_999, "mallory", review_data(engine))
    assert task_row(engine, review_task.id).status == "ready"
