"""Demo quality management: the year before today as the management system lived it, played
with the certificate histories (engine.demo_history) on the engine with its clock moved.

A refused applicant appeals (rejected by the panel); a certified person complains about the
certificate's delivery (substantiated, closed with a corrective action); the quality manager
has the application process audited by a second quality manager who never worked in it
(SOD-AUDIT), whose nonconformity becomes a corrective action closed as effective; each annual
management review that the scheduler opens is held and its minutes approved; and a few
people answer the feedback links their decisions and closures sent them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from .demo import add_applicants, add_staff, drive_case
from .models import Case, Notification
from .passwords import hash_demo_password

Act = Callable[[Any], None]

# A second quality manager, who audits what the first one plans.
AUDITOR = ("auditor", "Aino Auditor", ["quality_manager"], False)
# username, given, family, e-mail, born
APPELLANT = ("nora", "Nora", "Novak", "nora@example.org", date(1987, 5, 19))
REFUSAL = "The employer reference could not be verified: the referee did not answer two requests."
APPEAL = (
    "My referee was on leave in the weeks you wrote; she has confirmed my two years of data "
    "protection work in the letter attached and is reachable again."
)
COMPLAINT = (
    "My certificate arrived three weeks after the decision, and the wallet card spells my "
    "name 'Farid Hadad'. Nobody answered my two e-mails about it."
)
REVIEW_ATTENDEES = "Mona Manager (chair), Quinn Quality, Olga Owner, Carl Complaints"

LINK = re.compile(r"/feedback/([A-Za-z0-9_-]+)")


def quality_story(now: datetime, first: datetime, password: str) -> list[tuple[datetime, Act]]:
    """What happens when (the moments of the past year, and a management review meeting
    looked for every two weeks from `first`, the start of the demo history)."""

    def days_ago(days: float) -> datetime:
        return now - timedelta(days=days)

    def due(days: float) -> str:
        return days_ago(days).date().isoformat()

    story: list[tuple[datetime, Act]] = [
        (days_ago(370), join_staff(password)),
        (days_ago(366), join_applicant(password)),
        # Nora's DPO application, refused for want of a verified reference; her appeal.
        (days_ago(352), application_until("check_completeness")),
        (days_ago(349), application_until("schedule_assessment")),
        (days_ago(344), application_until("administer_exam")),
        (days_ago(339), application_until("review_file")),
        (days_ago(335), application_until("decide_certification")),
        (days_ago(332), refuse_application),
        (days_ago(330), answer_feedback("nora", "2", "3", "Nobody told me the referee mattered.")),
        (days_ago(328), lodge_appeal),
        (days_ago(326), appeal_step("acknowledge_appeal", "clerk")),
        (days_ago(322), appeal_step("validate_appeal", "panel")),
        (days_ago(314), appeal_step("investigate_appeal", "panel")),
        (
            days_ago(305),
            appeal_step(
                "decide_appeal",
                "panel",
                appeal_outcome="rejected",
                appeal_rationale=(
                    "The reference was asked for twice within the scheme's time limits; the "
                    "new letter supports a fresh application, not a changed decision."
                ),
            ),
        ),
        # Farid's complaint about his certificate, with a corrective action.
        (days_ago(330), lodge_complaint),
        (days_ago(328), complaint_step("confirm_relevance", "complaints")),
        (days_ago(327), complaint_step("acknowledge_complaint", "complaints")),
        (
            days_ago(318),
            complaint_step(
                "investigate_complaint",
                "complaints",
                complaint_findings="Certificates were printed in monthly batches; the card "
                "printer's template dropped double consonants.",
                complaint_substantiated=True,
                complaint_proposed_response="Apologise, reissue the card at once, print "
                "certificates within five days of a decision.",
            ),
        ),
        (days_ago(315), complaint_step("approve_response", "quality")),
        (days_ago(312), complaint_corrective_action(due(252))),
        (days_ago(310), complaint_step("close_complaint", "complaints")),
        (days_ago(306), answer_feedback("farid", "4", "4", "The new card came within a week.")),
        # The internal audit of the application process and its corrective action.
        (days_ago(332), plan_audit(due(515), due(333))),
        (days_ago(325), audit_step("perform_audit", "auditor", audit_performed_on=due(325))),
        (days_ago(325), record_findings),
        (days_ago(320), audit_step("report_audit", "auditor", audit_conclusion="nonconforming")),
        (days_ago(316), audit_step("close_audit", "quality", audit_report_accepted=True)),
        # Both corrective actions worked through to the effectiveness check.
        (days_ago(311), action_step("internal_audit", "analyse_root_cause")),
        (days_ago(307), action_step("internal_audit", "plan_corrective_action", due=due(262))),
        (days_ago(304), action_step("complaint", "analyse_root_cause")),
        (days_ago(296), action_step("complaint", "plan_corrective_action", due=due(252))),
        (days_ago(275), action_step("internal_audit", "record_implementation")),
        (days_ago(264), action_step("complaint", "record_implementation")),
        (days_ago(248), action_step("internal_audit", "check_effectiveness")),
        (days_ago(240), action_step("complaint", "check_effectiveness")),
        # Feedback after the decisions the certificate histories took in the year.
        (days_ago(175), answer_feedback("kim", "5", "4", "")),
        (days_ago(26), answer_feedback("lena", "4", "5", "Renewal was quick and clear.")),
    ]
    meeting = first + timedelta(days=14)
    while meeting < now:
        story.append((meeting, hold_management_review))
        meeting += timedelta(days=14)
    return story


# -- people -------------------------------------------------------------------------------------


def join_staff(password: str) -> Act:
    def act(engine) -> None:
        with engine.unit_of_work() as uow:
            add_staff(uow, [AUDITOR], hash_demo_password(password))

    return act


def join_applicant(password: str) -> Act:
    def act(engine) -> None:
        with engine.unit_of_work() as uow:
            add_applicants(uow, [APPELLANT], hash_demo_password(password))

    return act


# -- the refused application and the appeal ----------------------------------------------------


def application_until(step: str) -> Act:
    def act(engine) -> None:
        case_id = _latest_case(engine, "application", "nora", allow_none=True)
        if case_id is None:
            person_id = engine.user("nora").person_id
            case_id = engine.start_case(
                "application", actor="nora", person_id=person_id, scheme_code="DPO"
            ).case_id
        drive_case(engine, case_id, "nora", stop_at=step, overrides={"examiner": "examiner2"})

    return act


def refuse_application(engine) -> None:
    case_id = _latest_case(engine, "application", "nora")
    _do(
        engine,
        case_id,
        "decide_certification",
        "decider",
        certification_decision="refuse",
        decision_rationale=REFUSAL,
    )


def lodge_appeal(engine) -> None:
    from .cases import find_user
    from .portal import lodge_appeal as lodge

    decided = _latest_case(engine, "application", "nora")
    with engine.unit_of_work() as uow:
        lodge(engine, uow, uow.session.get(Case, decided), find_user(uow, "nora"), APPEAL)


def appeal_step(step: str, username: str, **values: Any) -> Act:
    def act(engine) -> None:
        _do(engine, _latest_case(engine, "appeal", "nora"), step, username, **values)

    return act


# -- the complaint ------------------------------------------------------------------------------


def lodge_complaint(engine) -> None:
    from .cases import find_user
    from .portal import lodge_complaint as lodge

    about = _latest_case(engine, "application", "farid")
    with engine.unit_of_work() as uow:
        lodge(engine, uow, uow.session.get(Case, about), find_user(uow, "farid"), COMPLAINT)


def complaint_step(step: str, username: str, **values: Any) -> Act:
    def act(engine) -> None:
        _do(engine, _latest_case(engine, "complaint", "farid"), step, username, **values)

    return act


def complaint_corrective_action(due_on: str) -> Act:
    """The quality manager records the action on the complaint and raises the corrective
    action case that follows it through."""

    def act(engine) -> None:
        complaint = _latest_case(engine, "complaint", "farid")
        _do(
            engine,
            complaint,
            "record_corrective_action",
            "quality",
            corrective_action_needed=True,
            corrective_action_description="Print certificates and cards within five days of "
            "each decision; proof-read names against the application.",
            corrective_action_owner="clerk",
            corrective_action_due_on=due_on,
        )
        engine.raise_corrective_action(
            "quality",
            "complaint",
            complaint,
            "Certificates reached holders weeks after the decision, and a card misspelt the "
            "holder's name.",
        )

    return act


# -- the internal audit -------------------------------------------------------------------------


def plan_audit(period_from: str, period_to: str) -> Act:
    def act(engine) -> None:
        case_id = engine.start_case("internal_audit", actor="quality").case_id
        _do(
            engine,
            case_id,
            "plan_audit",
            "quality",
            audited_process="application",
            audited_area="Eligibility review and file review",
            audit_period_from=period_from,
            audit_period_to=period_to,
            audit_criteria="ISO/IEC 17024 9.1 and 9.2; procedure P-04 on applications.",
            auditor=AUDITOR[0],
        )

    return act


def audit_step(step: str, username: str, **values: Any) -> Act:
    def act(engine) -> None:
        _do(engine, _latest_case(engine, "internal_audit"), step, username, **values)

    return act


def record_findings(engine) -> None:
    case_id = _latest_case(engine, "internal_audit")
    _do(
        engine,
        case_id,
        "record_audit_finding",
        "auditor",
        finding_requirement="9.1.2",
        finding_type="nonconformity",
        finding_evidence="3 of 12 sampled eligibility reviews record no check of the "
        "evidence of practice the scheme requires.",
        another_finding=True,
    )
    _do(
        engine,
        case_id,
        "record_audit_finding",
        "auditor",
        finding_requirement="9.2.1",
        finding_type="observation",
        finding_evidence="File review summaries vary in length and depth between reviewers.",
        another_finding=False,
    )


# -- corrective actions -------------------------------------------------------------------------

ACTIONS = {
    "internal_audit": {
        "analyse_root_cause": dict(
            root_cause="The eligibility form let reviewers pass a file without naming the "
            "evidence they checked.",
            root_cause_method="five_whys",
        ),
        "plan_corrective_action": dict(
            planned_action="Make the evidence checked a required field of the eligibility "
            "review; brief the reviewers.",
            action_owner="owner",
        ),
        "record_implementation": dict(
            implementation_record="Eligibility review form 2026.2 published; reviewers briefed.",
        ),
        "check_effectiveness": dict(
            action_effective=True,
            effectiveness_evidence="All 15 eligibility reviews since name the evidence checked.",
        ),
    },
    "complaint": {
        "analyse_root_cause": dict(
            root_cause="Certificates were printed in monthly batches from a template that "
            "dropped double consonants.",
            root_cause_method="cause_and_effect",
        ),
        "plan_corrective_action": dict(
            planned_action="Print within five days of a decision; fix the template; check "
            "names against the application before printing.",
            action_owner="clerk",
        ),
        "record_implementation": dict(
            implementation_record="Weekly printing since; template fixed and tested.",
        ),
        "check_effectiveness": dict(
            action_effective=True,
            effectiveness_evidence="No late or misspelt certificate in the 8 weeks since.",
        ),
    },
}


def action_step(source: str, step: str, due: str | None = None) -> Act:
    def act(engine) -> None:
        with engine.sessions() as session:
            actions = session.scalars(
                select(Case.id)
                .where(Case.process_id == "corrective_action")
                .order_by(Case.id.desc())
            ).all()
        case_id = next(
            a for a in actions if engine.case_data(a)["nonconformity"]["source"] == source
        )
        values = dict(ACTIONS[source][step])
        if due is not None:
            values["action_due_on"] = due
        if step == "record_implementation":
            values["implemented_on"] = engine.clock.now().date().isoformat()
        _do(engine, case_id, step, "quality", **values)

    return act


# -- management reviews -------------------------------------------------------------------------


def hold_management_review(engine) -> None:
    """Top management meets three weeks or more after the review opened; the quality manager
    approves the minutes a week or more after the meeting."""
    now = engine.clock.now()
    with engine.sessions() as session:
        open_reviews = list(
            session.scalars(
                select(Case.id).where(
                    Case.process_id == "management_review", Case.status == "running"
                )
            )
        )
    for case_id in open_reviews:
        for task in engine.ready_tasks(case_id):
            waited = now - task.created_at
            if task.task_spec_id == "record_review_decisions" and waited >= timedelta(days=21):
                _do(
                    engine,
                    case_id,
                    task.task_spec_id,
                    "manager",
                    review_held_on=now.date().isoformat(),
                    review_attendees=REVIEW_ATTENDEES,
                    review_conclusions="The management system is effective; appeals and "
                    "complaints are handled in time; open corrective actions are on track.",
                    review_actions=[
                        "Publish certificates within five days of a decision (owner: clerk)",
                        "Re-audit the application process next year (owner: quality)",
                    ],
                )
            elif task.task_spec_id == "approve_review_minutes" and waited >= timedelta(days=7):
                _do(engine, case_id, task.task_spec_id, "quality", minutes_approved=True)


# -- feedback -----------------------------------------------------------------------------------


def answer_feedback(username: str, overall: str, clarity: str, comment: str) -> Act:
    """The person follows the newest feedback link e-mailed to them, as they would click it."""

    def act(engine) -> None:
        from .feedback import submit_feedback

        user = engine.user(username)
        with engine.sessions() as session:
            mail = session.scalars(
                select(Notification)
                .where(
                    Notification.recipient_user_id == user.id,
                    Notification.kind == "feedback_invitation",
                )
                .order_by(Notification.id.desc())
            ).first()
        if mail is None:
            raise RuntimeError(f"demo story: {username} was never asked for feedback")
        token = LINK.search(mail.body).group(1)
        with engine.unit_of_work() as uow:
            submit_feedback(
                uow,
                token,
                {"overall_rating": overall, "clarity_rating": clarity, "comment": comment},
            )

    return act


# -- shared -------------------------------------------------------------------------------------


def _do(engine, case_id: int, step: str, username: str, **values: Any) -> None:
    """Complete the case's ready `step` as `username`, with `values` over valid defaults."""
    from .simulation import HAPPY_PATH, valid_form_data

    [task] = [t for t in engine.ready_tasks(case_id) if t.task_spec_id == step]
    form = engine.task_form(task)
    schema = form.schema if form is not None else {}
    data = valid_form_data(schema, {**HAPPY_PATH.get(task.form, {}), **values})
    engine.complete(task.id, username, data)


def _latest_case(
    engine, process_id: str, username: str | None = None, allow_none: bool = False
) -> int | None:
    query = select(Case.id).where(Case.process_id == process_id).order_by(Case.id.desc())
    if username is not None:
        query = query.where(Case.person_id == engine.user(username).person_id)
    with engine.sessions() as session:
        case_id = session.scalars(query).first()
    if case_id is None and not allow_none:
        raise RuntimeError(
            f"demo story: no {process_id} case" + (f" of {username}" if username else "")
        )
    return case_id
