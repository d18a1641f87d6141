"""The demo's year of quality management (engine.demo_quality, played by `certrail demo load`
with the certificate histories): after loading, the analytics, the management review, the
corrective actions and the feedback show real figures, and the records agree with
themselves."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from engine import analytics
from engine.consistency import check
from engine.demo import DEMO_PASSWORD
from engine.demo_history import load_demo_history
from engine.feedback import feedback_summary
from engine.models import AuditEvent, Case, CaseLink, FeedbackResponse, HumanTask, User
from tests.engine.helpers import events, verify


def cases_of(engine, process_id: str) -> list[Case]:
    with engine.sessions() as session:
        return list(
            session.scalars(select(Case).where(Case.process_id == process_id).order_by(Case.id))
        )


def test_the_demo_year_fills_every_quality_figure_and_stays_consistent(engine, clock):
    assert load_demo_history(engine, DEMO_PASSWORD) == 8
    now = clock.now()

    # Appeals and complaints: one appeal rejected, one complaint resolved, in the last year.
    with engine.sessions() as session:
        query = analytics.parse_query({}, now.date())
        outcomes = {
            c.kind: dict(c.outcomes)
            for c in analytics.outcome_counts(analytics.appeals_and_complaints(session, query))
        }
        steps = analytics.median_time_per_step(session, query).steps
        decisions = analytics.pass_rates(analytics.certification_decisions(session, query))
        feedback = feedback_summary(session, query.start, query.end)
    assert outcomes == {"appeal": {"rejected": 1}, "complaint": {"resolved": 1}}
    # Steps took days, not moments.
    medians = {(s.process, s.step): s.median_days for s in steps}
    for step in (
        ("appeal", "decide_appeal"),
        ("complaint", "investigate_complaint"),
        ("internal_audit", "perform_audit"),
        ("corrective_action", "record_implementation"),
        ("management_review", "record_review_decisions"),
    ):
        assert medians[step] >= 5, step
    assert {d.scheme: (d.granted, d.refused) for d in decisions}["DPO"][1] == 1

    # The internal audit of the application process, by the second quality manager.
    [audit] = cases_of(engine, "internal_audit")
    data = engine.case_data(audit.id)
    assert audit.status == "completed"
    assert [f["type"] for f in data["audit_findings"]] == ["nonconformity", "observation"]
    with engine.sessions() as session:
        performers = dict(
            session.execute(
                select(HumanTask.task_spec_id, User.username)
                .join(User, User.id == HumanTask.completed_by_id)
                .where(HumanTask.case_id == audit.id)
            ).all()
        )
    assert performers["plan_audit"] == "quality"
    assert performers["perform_audit"] == performers["report_audit"] == "auditor"
    [passed, *_] = [
        e
        for e in events(engine, case_id=audit.id, action="sod_check_passed")
        if e.actor == "auditor"
    ]
    assert "SOD-AUDIT" in passed.after["rules"]

    # Both corrective actions (the audit's nonconformity, the complaint) closed as effective.
    actions = cases_of(engine, "corrective_action")
    assert {engine.case_data(a.id)["nonconformity"]["source"] for a in actions} == {
        "internal_audit",
        "complaint",
    }
    assert {a.status for a in actions} == {"completed"}
    for action in actions:
        assert engine.case_data(action.id)["action_effective"] is True
    with engine.sessions() as session:
        sources = set(
            session.scalars(
                select(Case.process_id)
                .join(CaseLink, CaseLink.to_case_id == Case.id)
                .where(CaseLink.kind == "raised_from")
            )
        )
    assert sources == {"internal_audit", "complaint"}

    # Every management review the scheduler opened was held and its minutes approved; the
    # last one's inputs count the year's audit, appeal, complaint and corrective actions.
    reviews = cases_of(engine, "management_review")
    assert len(reviews) >= 2 and {r.status for r in reviews} == {"completed"}
    last = engine.case_data(reviews[-1].id)
    assert last["minutes_approved"] is True
    inputs = last["management_review_inputs"]
    assert inputs["internal_audits"]["closed"] == 1
    assert inputs["internal_audits"]["nonconformities"] == 1
    assert inputs["corrective_actions"]["started"] == 2
    assert inputs["complaints"]["received"] == 1
    assert inputs["appeals"]["received"] == 1

    # Feedback given through the links the decisions and the complaint's closure sent.
    kinds = {(f.scheme_code, f.kind): f for f in feedback}
    assert kinds[("DPO", "complaint")].responses == 1
    assert sum(f.responses for f in feedback) >= 3
    assert all(f.mean_overall is not None for f in feedback if f.responses)

    report = check(engine, now)
    assert report.consistent, report.mismatches
    assert verify(engine).ok


def test_loading_the_demo_history_twice_adds_nothing(engine):
    load_demo_history(engine, DEMO_PASSWORD)
    with engine.sessions() as session:
        before = (
            session.scalar(select(func.count()).select_from(Case)),
            session.scalar(select(func.count()).select_from(AuditEvent)),
            session.scalar(select(func.count()).select_from(FeedbackResponse)),
        )
    assert load_demo_history(engine, DEMO_PASSWORD) == 0
    with engine.sessions() as session:
        after = (
            session.scalar(select(func.count()).select_from(Case)),
            session.scalar(select(func.count()).select_from(AuditEvent)),
            session.scalar(select(func.count()).select_from(FeedbackResponse)),
        )
    assert after == before
    assert date(2025, 3, 2) <= min(c.started_at for c in cases_of(engine, "appeal")).date()
