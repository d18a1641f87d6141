"""The system steps a process can call as BPMN service tasks.

Each runs inside the unit of work of the step that reached it, so a granted decision and its
certificate commit (or roll back) together. The BPMN names them with
`spiffworkflow:serviceTaskOperator id="..."`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .certificates import certificate_summary, issue_certificate
from .errors import ConflictError
from .models import Person, Scheme

if TYPE_CHECKING:
    from SpiffWorkflow.task import Task

    from .runtime.runner import CaseRun
    from .unit_of_work import UnitOfWork

SYSTEM_OPERATIONS = ("issue_certificate", "issue_refusal_letter", "notify_applicant")


def system_actions_for(uow: UnitOfWork, run: CaseRun) -> dict[str, Any]:
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
        uow.audit.record(
            uow.now, "system", "applicant_notified", f"applicant notified: {step}", case_id=case.id
        )
        return {"sent_at": uow.now.isoformat(), "subject": step}

    return {
        "issue_certificate": issue,
        "issue_refusal_letter": refusal_letter,
        "notify_applicant": notify,
    }
