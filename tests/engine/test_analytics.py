"""Management analytics: the figures for a period equal what was counted by hand for cases
driven through the real engine (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from engine import analytics
from engine.dashboard import InvalidFilter
from tests.engine.helpers import do, start_application
from tests.engine.test_appeals_complaints import lodge_appeal, lodge_complaint

DAY = timedelta(days=1)
QUERY_TIME = datetime(2026, 6, 15, 9, 0)
RATIONALE = "The written examination score is below the scheme's pass mark."


def take_application(engine, clock, applicant, scheme, started, wait_days, decision=None):
    """Start an application at `started`; the clerk checks completeness `wait_days` after
    the submission; then on to `decision` (grant / refuse) or stop at the eligibility review."""
    clock.set(started)
    case_id = start_application(engine, applicant, scheme)
    do(engine, case_id, "submit_application", applicant)
    clock.set(started + wait_days * DAY)
    do(engine, case_id, "check_completeness", "clerk")
    if decision is None:
        return case_id
    do(engine, case_id, "review_eligibility", "reviewer")
    do(engine, case_id, "schedule_assessment", "clerk")
    do(engine, case_id, "assign_examiner", "clerk", examiner="examiner")
    do(engine, case_id, "administer_exam", "invigilator")
    do(engine, case_id, "score_written", "examiner")
    if scheme == "CWI":
        do(engine, case_id, "score_practical", "examiner")
    do(engine, case_id, "review_file", "reviewer")
    overrides = {"certification_decision": decision}
    if decision == "refuse":
        overrides["decision_rationale"] = RATIONALE
    do(engine, case_id, "decide_certification", "decider", **overrides)
    return case_id


@pytest.fixture
def history(engine, clock):
    """By hand:
    March: Alice's CWI application, checked 2 days after submission, granted.
    April: Bob's DPO application, checked after 4 days, refused; Chen's CWI application,
           checked after 9 days (the check is due in 5: late), waiting at the eligibility
           review ever since (overdue by June, still open).
    May:   Bob's appeal against the refusal (rejected); Alice's complaint about her case
           (not our activity); a complaint about Chen's case (still open).
    """
    alice = take_application(engine, clock, "alice", "CWI", datetime(2026, 3, 10, 9), 2, "grant")
    bob = take_application(engine, clock, "bob", "DPO", datetime(2026, 4, 5, 9), 4, "refuse")
    chen = take_application(engine, clock, "chen", "CWI", datetime(2026, 4, 20, 9), 9)
    clock.set(datetime(2026, 5, 2, 9))
    appeal = lodge_appeal(engine, bob, "bob")
    do(engine, appeal, "acknowledge_appeal", "clerk")
    do(engine, appeal, "validate_appeal", "panel")
    do(engine, appeal, "investigate_appeal", "panel")
    do(
        engine,
        appeal,
        "decide_appeal",
        "panel",
        appeal_outcome="rejected",
        appeal_rationale="The score was computed correctly against the pass mark.",
    )
    not_ours = lodge_complaint(engine, alice, "alice")
    do(
        engine,
        not_ours,
        "confirm_relevance",
        "complaints",
        complaint_relevant=False,
        complaint_relevance_reasons="The complaint is about the training provider's invoices.",
    )
    open_complaint = engine.start_case(
        "complaint",
        actor="complaints",
        data={"complaint_text": "The exam venue was not accessible by wheelchair."},
        links={"concerns": chen},
    ).case_id
    clock.set(QUERY_TIME)
    return {"appeal": appeal, "not_ours": not_ours, "open": open_complaint}


def test_the_default_period_is_the_last_twelve_months_up_to_this_one():
    query = analytics.parse_query({}, date(2026, 6, 15))
    assert (query.first_month, query.last_month) == (date(2025, 7, 1), date(2026, 6, 1))
    assert len(query.months) == 12
    assert query.end == datetime(2026, 7, 1)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"from": "2026-13"}, "from"),
        ({"to": "June"}, "to"),
        ({"from": "2026-05", "to": "2026-04"}, "from"),
        ({"from": "2015-01", "to": "2026-04"}, "from"),
        ({"scheme": "CWI; drop table"}, "scheme"),
    ],
)
def test_a_period_that_cannot_be_right_names_the_parameter(params, parameter):
    with pytest.raises(InvalidFilter) as refused:
        analytics.parse_query(params, date(2026, 6, 15))
    assert refused.value.parameter == parameter


def test_cases_started_and_completed_per_month_per_scheme_are_the_hand_counts(engine, history):
    query = analytics.parse_query({}, QUERY_TIME.date())
    with engine.sessions() as session:
        counts = analytics.cases_per_month(session, query)
    found = {(c.month, c.scheme, c.process): (c.started, c.completed) for c in counts}
    assert found == {
        (date(2026, 3, 1), "CWI", "application"): (1, 1),
        (date(2026, 4, 1), "DPO", "application"): (1, 1),
        (date(2026, 4, 1), "CWI", "application"): (1, 0),
        (date(2026, 5, 1), "DPO", "appeal"): (1, 1),
        (date(2026, 5, 1), "CWI", "complaint"): (2, 1),
    }


def test_a_period_and_a_scheme_narrow_every_figure(engine, history):
    april = analytics.parse_query({"from": "2026-04", "to": "2026-04"}, QUERY_TIME.date())
    cwi = analytics.parse_query({"scheme": "CWI"}, QUERY_TIME.date())
    with engine.sessions() as session:
        in_april = analytics.cases_per_month(session, april)
        cwi_cases = analytics.cases_per_month(session, cwi)
        cwi_times = analytics.median_time_per_step(session, cwi).steps
        cwi_decisions = analytics.certification_decisions(session, cwi)
        april_received = analytics.appeals_and_complaints(session, april)
    assert {(c.scheme, c.started, c.completed) for c in in_april} == {
        ("DPO", 1, 1),
        ("CWI", 1, 0),
    }
    assert {c.scheme for c in cwi_cases} == {"CWI"}
    [check] = [t for t in cwi_times if t.step == "check_completeness"]
    assert (check.completed, check.median_days) == (2, pytest.approx(5.5))
    assert [(d.granted, d.refused) for d in cwi_decisions] == [(1, 0)]
    assert april_received == []


def test_certification_decisions_give_the_pass_rate_per_scheme(engine, history):
    query = analytics.parse_query({}, QUERY_TIME.date())
    with engine.sessions() as session:
        decisions = analytics.certification_decisions(session, query)
    assert [(d.month, d.scheme, d.granted, d.refused) for d in decisions] == [
        (date(2026, 3, 1), "CWI", 1, 0),
        (date(2026, 4, 1), "DPO", 0, 1),
    ]
    rates = {r.scheme: r.pass_rate for r in analytics.pass_rates(decisions)}
    assert rates == {"CWI": 1.0, "DPO": 0.0}


def test_median_time_per_step_runs_from_ready_to_completed(engine, history):
    query = analytics.parse_query({}, QUERY_TIME.date())
    with engine.sessions() as session:
        times = analytics.median_time_per_step(session, query)
    by_step = {(t.process, t.step): t for t in times.steps}
    # completeness checks took 2, 4 and 9 days: the median is 4
    check = by_step[("application", "check_completeness")]
    assert (check.completed, check.median_days) == (3, pytest.approx(4.0))
    assert by_step[("application", "submit_application")].median_days == 0
    assert times.steps[0] == check  # the slowest step first
    assert not times.sampled


def test_steps_most_often_overdue_count_late_completions_and_open_steps(engine, history):
    query = analytics.parse_query({}, QUERY_TIME.date())
    with engine.sessions() as session:
        overdue = analytics.most_overdue_steps(session, query, QUERY_TIME)
    found = {(o.process, o.step): (o.overdue, o.still_open) for o in overdue}
    # Chen's completeness check was done 4 days late; his eligibility review waits since
    # April; the open complaint's first step waits since 2 May.
    assert found[("application", "check_completeness")] == (1, 0)
    assert found[("application", "review_eligibility")] == (1, 1)
    assert found[("complaint", "confirm_relevance")] == (1, 1)
    assert sum(o.overdue for o in overdue) == 3


def test_appeals_and_complaints_are_counted_with_their_outcomes(engine, history):
    query = analytics.parse_query({}, QUERY_TIME.date())
    with engine.sessions() as session:
        received = analytics.appeals_and_complaints(session, query)
    assert [(r.case_id, r.kind, r.scheme, r.outcome) for r in received] == [
        (history["appeal"], "appeal", "DPO", "rejected"),
        (history["not_ours"], "complaint", "CWI", "not_relevant"),
        (history["open"], "complaint", "CWI", "open"),
    ]
    counts = {c.kind: dict(c.outcomes) for c in analytics.outcome_counts(received)}
    assert counts == {"appeal": {"rejected": 1}, "complaint": {"not_relevant": 1, "open": 1}}
