"""`simulate` drives whole cases through the public API with schema-generated form data."""

from __future__ import annotations

import pytest

from engine.forms import FormRegistry
from engine.simulation import HAPPY_PATH, simulate, valid_form_data
from tests.engine.helpers import certificates, events, verify


def test_simulating_three_cases_completes_each_with_its_own_certificate(engine):
    result = simulate(engine, 3)

    assert result.cases_completed == 3
    assert result.certificates_issued == 3
    assert len(result.cases) == 3
    numbers = [c["certificate_number"] for c in result.cases]
    assert numbers == ["CWI-2026-000001", "CWI-2026-000002", "CWI-2026-000003"]
    for case in result.cases:
        assert engine.case(case["case_id"]).status == "completed"
        assert [c.number for c in certificates(engine, case["case_id"])] == [
            case["certificate_number"]
        ]
    assert result.tasks_completed == 3 * 10
    assert verify(engine).ok


def test_simulated_decision_maker_never_scored_the_same_case(engine):
    result = simulate(engine, 3)

    for case in result.cases:
        performers = case["performers"]
        assert performers["decide_certification"] != performers["score_written"]
        assert performers["decide_certification"] != performers["score_practical"]
        assert performers["decide_certification"] != performers["administer_exam"]
        completed = events(engine, case_id=case["case_id"], action="task_completed")
        by_task = {e.after["task"]: e.actor for e in completed}
        assert by_task == performers


def test_simulated_dpo_cases_skip_the_practical_score(engine):
    result = simulate(engine, 2, scheme_code="DPO")

    assert result.cases_completed == 2
    assert [c["certificate_number"] for c in result.cases] == ["DPO-2026-000001", "DPO-2026-000002"]
    for case in result.cases:
        assert "score_practical" not in case["performers"]


def test_simulation_can_stop_before_a_step(engine):
    result = simulate(engine, 1, stop_at="decide_certification")

    assert result.cases_completed == 0
    assert result.certificates_issued == 0
    [case] = result.cases
    assert [t.task_spec_id for t in engine.ready_tasks(case["case_id"])] == ["decide_certification"]


@pytest.mark.parametrize("form", FormRegistry().names())
def test_generated_form_data_satisfies_every_shipped_form(form):
    registry = FormRegistry()
    schema = registry.get(form).schema

    data = valid_form_data(schema, HAPPY_PATH.get(form))

    assert registry.validate(form, data) == data
