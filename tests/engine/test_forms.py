"""Submitted form data is validated against the task's JSON Schema before anything changes."""

from __future__ import annotations

import json

import pytest

from engine import ValidationError
from engine.forms import form_of_schema
from tests.engine.helpers import (
    do,
    drive_to_scheduling,
    drive_to_scoring,
    event_count,
    form_data,
    lock_version,
    ready_spec_ids,
    ready_task,
    start_application,
    task_row,
)


def assert_rejected_without_trace(engine, case_id, spec_id, username, data, expected_fields):
    """Completing with `data` raises ValidationError naming exactly `expected_fields`, and
    leaves the task, the case and the audit trail as they were."""
    task = ready_task(engine, case_id, spec_id)
    version = lock_version(engine, case_id)
    audit_before = event_count(engine)
    ready_before = ready_spec_ids(engine, case_id)

    with pytest.raises(ValidationError) as caught:
        engine.complete(task.id, username, data)

    assert set(caught.value.fields) == set(expected_fields), caught.value.fields
    for name in expected_fields:
        assert caught.value.fields[name], f"no message for {name}"
        assert name in caught.value.message
    row = task_row(engine, task.id)
    assert row.status == "ready"
    assert row.completed_by_id is None
    assert row.submitted_data is None
    assert ready_spec_ids(engine, case_id) == ready_before
    assert lock_version(engine, case_id) == version
    assert event_count(engine) == audit_before
    return caught.value


@pytest.fixture
def submit_case(engine):
    return start_application(engine)


def valid_application(engine, **changes):
    data = form_data(engine, "application")
    for key, value in changes.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("changes", "offending"),
    [
        pytest.param({"motivation": ...}, ["motivation"], id="missing-required-text"),
        pytest.param(
            {"declaration_accurate": ...}, ["declaration_accurate"], id="missing-declaration"
        ),
        pytest.param({"experience_years": "five"}, ["experience_years"], id="string-for-integer"),
        pytest.param({"experience_years": 4.5}, ["experience_years"], id="float-for-integer"),
        pytest.param({"experience_years": 71}, ["experience_years"], id="above-maximum"),
        pytest.param({"experience_years": -1}, ["experience_years"], id="below-minimum"),
        pytest.param({"motivation": ""}, ["motivation"], id="empty-required-text"),
        pytest.param({"motivation": "x" * 2001}, ["motivation"], id="too-long-text"),
        pytest.param(
            {"declaration_accurate": False}, ["declaration_accurate"], id="const-declaration-false"
        ),
        pytest.param({"salary": 50000}, ["salary"], id="extra-field"),
    ],
)
def test_invalid_application_is_refused_naming_the_field_and_nothing_is_persisted(
    engine, submit_case, changes, offending
):
    data = valid_application(engine, **changes)
    assert_rejected_without_trace(
        engine, submit_case, "submit_application", "alice", data, offending
    )


def test_every_offending_field_is_reported_at_once(engine, submit_case):
    data = valid_application(
        engine, motivation=..., experience_years="lots", declaration_accurate=False, is_admin=True
    )
    error = assert_rejected_without_trace(
        engine,
        submit_case,
        "submit_application",
        "alice",
        data,
        ["motivation", "experience_years", "declaration_accurate", "is_admin"],
    )
    assert "is required" in " ".join(error.fields["motivation"])
    assert "integer" in " ".join(error.fields["experience_years"])
    assert "true" in " ".join(error.fields["declaration_accurate"])
    assert "not a field" in " ".join(error.fields["is_admin"])


def test_non_object_form_data_is_refused(engine, submit_case):
    task = ready_task(engine, submit_case, "submit_application")
    with pytest.raises(ValidationError):
        engine.complete(task.id, "alice", ["motivation"])
    assert task_row(engine, task.id).status == "ready"


def test_enum_violation_on_eligibility_outcome_names_the_field(engine, submit_case):
    do(engine, submit_case, "submit_application")
    do(engine, submit_case, "check_completeness")

    data = form_data(engine, "eligibility_review", eligibility_outcome="probably")
    error = assert_rejected_without_trace(
        engine, submit_case, "review_eligibility", "reviewer", data, ["eligibility_outcome"]
    )
    assert "eligible, not_eligible, more_evidence" in error.fields["eligibility_outcome"][0]


def test_more_evidence_outcome_requires_the_evidence_requested(engine, submit_case):
    do(engine, submit_case, "submit_application")
    do(engine, submit_case, "check_completeness")

    data = {"eligibility_outcome": "more_evidence", "eligibility_rationale": "Experience unclear."}
    assert_rejected_without_trace(
        engine,
        submit_case,
        "review_eligibility",
        "reviewer",
        data,
        ["eligibility_evidence_requested"],
    )


def test_incomplete_application_check_requires_notes(engine, submit_case):
    do(engine, submit_case, "submit_application")

    assert_rejected_without_trace(
        engine,
        submit_case,
        "check_completeness",
        "clerk",
        {"application_complete": False},
        ["completeness_notes"],
    )


def test_score_out_of_range_or_boolean_is_refused(engine):
    case_id = start_application(engine, "bob")
    drive_to_scoring(engine, case_id, applicant="bob")

    assert_rejected_without_trace(
        engine, case_id, "score_written", "examiner", {"written_score": 101}, ["written_score"]
    )
    assert_rejected_without_trace(
        engine, case_id, "score_written", "examiner", {"written_score": True}, ["written_score"]
    )


def test_invalid_exam_date_format_is_refused(engine, submit_case):
    drive_to_scheduling(engine, submit_case)
    data = form_data(engine, "assessment_schedule", exam_date="31/12/2026")
    assert_rejected_without_trace(
        engine, submit_case, "schedule_assessment", "clerk", data, ["exam_date"]
    )


def test_valid_data_after_a_refusal_completes_the_task_with_only_the_valid_data(
    engine, submit_case
):
    task = ready_task(engine, submit_case, "submit_application")
    with pytest.raises(ValidationError):
        engine.complete(task.id, "alice", valid_application(engine, salary=1))

    good = valid_application(engine)
    engine.complete(task.id, "alice", good)

    assert task_row(engine, task.id).submitted_data == good
    assert "salary" not in engine.case_data(submit_case)
    assert ready_spec_ids(engine, submit_case) == ["check_completeness"]


# -- checking a form's schema -------------------------------------------------------------------


def test_a_schema_is_judged_the_same_however_often_it_is_checked():
    """The metaschema check is remembered per schema text: a second check of a bad schema
    names the same place, and a schema that differs only where the fault is, is judged anew."""
    bad = {"type": "object", "properties": {"score": {"type": "colour"}}}
    good = {"type": "object", "properties": {"score": {"type": "integer"}}}
    first, again = (form_of_schema("scores", json.loads(json.dumps(bad))) for _ in range(2))
    for form, [finding] in (first, again):
        assert form is None
        assert (finding.file, finding.element_id) == ("form scores", "scores")
        assert finding.message == (
            "invalid JSON Schema: 'colour' is not valid under any of the given schemas "
            "(at properties/score/type)"
        )
    form, findings = form_of_schema("scores", good)
    assert findings == []
    assert form.validate({"score": 3}) == {"score": 3}


def test_a_schema_that_is_not_plain_json_is_refused_with_a_finding():
    form, [finding] = form_of_schema("odd", {"type": "object", "default": {1, 2}})
    assert form is None
    assert finding.message == "a form schema must be plain JSON"
