"""The system steps a process can call as BPMN service tasks.

Each runs inside the unit of work of the step that reached it, so a granted decision and its
certificate commit (or roll back) together. The BPMN names them with
`spiffworkflow:serviceTaskOperator id="..."`; a `spiffworkflow:parameter` passes a value from
the case data (its `value` is an expression), e.g. the reasons a notification gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from .certificates import certificate_summary, issue_certificate
from .errors import ConflictError
from .models import Case, CaseLink, Person, Scheme

if TYPE_CHECKING:
    from SpiffWorkflow.task import Task

    from . import Engine
    from .runtime.runner import CaseRun
    from .unit_of_work import UnitOfWork

SYSTEM_OPERATIONS = (
    "issue_certificate",
    "issue_refusal_letter",
    "notify_applicant",
    "reopen_decision",
)


def system_actions_for(engine: Engine, uow: UnitOfWork, run: CaseRun) -> dict[str, Any]:
    case = run.case

    def subject() -> tuple[Person, Scheme]:
        person = uow.session.get(Person, case.person_id) if case.person_id else None
        scheme = uow.session.get(Scheme, case.scheme_id) if case.scheme_id else None
        if person is None or scheme is None:
            raise ConflictError("this step needs a case with a person and a scheme")
        return person, scheme

    def issue(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        person, scheme = subject()
        certificate = issue_certificate(
            uow.session, uow.audit, case, person, scheme, uow.now, "system"
        )
        return certificate_summary(certificate)

    def refusal_letter(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        person, scheme = subject()
        reason = task.data.get("decision_rationale", "")
        text = (
            f"Dear {person.full_name}, your application for {scheme.name} was not granted. "
            f"Reason: {reason} You may appeal this decision within 30 days."
        )
        uow.audit.record(uow.now, "system", "refusal_letter_issued", text, case_id=case.id)
        return {"issued_on": uow.now.date().isoformat(), "text": text, "appeal_rights": True}

    def notify(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        step = task.task_spec.bpmn_name or task.task_spec.bpmn_id
        reasons = str(params.get("reasons") or "").strip()
        uow.audit.record(
            uow.now,
            "system",
            "applicant_notified",
            f"applicant notified: {step}" + (f". {reasons}" if reasons else ""),
            case_id=case.id,
            after={"reasons": reasons} if reasons else None,
        )
        notice = {"sent_at": uow.now.isoformat(), "subject": step}
        if reasons:
            notice["reasons"] = reasons
        return notice

    def reopen_decision(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        """An upheld appeal (9.8): the appealed decision is taken again in a new `decision`
        case for the same person and scheme, linked `reopens` to the appealed case so that
        its decision task bars the original examiners and deciders (SOD-DECIDE)."""
        from .cases import start_case

        appealed_id = uow.session.scalars(
            select(CaseLink.to_case_id)
            .where(CaseLink.from_case_id == case.id, CaseLink.kind == "appeals")
            .order_by(CaseLink.id)
        ).first()
        appealed = uow.session.get(Case, appealed_id) if appealed_id is not None else None
        if appealed is None:
            raise ConflictError("this appeal is not linked to the case whose decision it appeals")
        person = uow.session.get(Person, appealed.person_id) if appealed.person_id else None
        scheme = uow.session.get(Scheme, appealed.scheme_id) if appealed.scheme_id else None
        if person is None or scheme is None:
            raise ConflictError(f"case {appealed.id} has no person and scheme to decide on again")
        reopened, _run = start_case(
            engine,
            uow,
            "decision",
            None,
            person,
            scheme,
            data={"reopened_by_appeal": case.id},
            links={"reopens": appealed.id},
        )
        uow.audit.record(
            uow.now,
            "system",
            "decision_reopened",
            f"upheld appeal: the decision of case {appealed.id} is taken again in case {reopened.id}",
            case_id=case.id,
            after={"appealed_case_id": appealed.id, "decision_case_id": reopened.id},
        )
        return {"case_id": reopened.id, "reopens": appealed.id}

    return {
        "issue_certificate": issue,
        "issue_refusal_letter": refusal_letter,
        "notify_applicant": notify,
        "reopen_decision": reopen_decision,
    }
