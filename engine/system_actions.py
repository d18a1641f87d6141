"""The system steps a process can call as BPMN service tasks.

Each runs inside the unit of work of the step that reached it, so a granted decision and its
certificate commit (or roll back) together. The BPMN names them with
`spiffworkflow:serviceTaskOperator id="..."`; a `spiffworkflow:parameter` passes a value from
the case data (its `value` is an expression), e.g. the reasons a notification gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from . import certificate_lifecycle as lifecycle_ops
from .certificate_lifecycle import LifecycleChange
from .certificates import certificate_summary, issue_certificate
from .errors import ConflictError
from .models import Case, CaseLink, Certificate, Person, Scheme, User
from .notifications import notify_person

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
    "record_surveillance",
    "start_suspension",
    "suspend_certificate",
    "reinstate_certificate",
    "withdraw_certificate",
    "reduce_certificate_scope",
    "expire_certificate",
    "renew_certificate",
    "add_audit_finding",
    "raise_corrective_actions",
    "gather_management_review_inputs",
)


def system_actions_for(engine: Engine, uow: UnitOfWork, run: CaseRun) -> dict[str, Any]:
    case = run.case

    def subject() -> tuple[Person, Scheme]:
        person = run.person()
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
        subject = str(params.get("subject") or "").strip() or step
        uow.audit.record(
            uow.now,
            "system",
            "applicant_notified",
            f"applicant notified: {step}" + (f". {reasons}" if reasons else ""),
            case_id=case.id,
            after={"reasons": reasons} if reasons else None,
        )
        person = uow.session.get(Person, case.person_id) if case.person_id else None
        if person is not None:
            notify_person(
                uow.session,
                uow.now,
                person,
                "applicant_notice",
                subject,
                f"Dear {person.full_name},\n\n{subject}."
                + (f"\n{reasons}" if reasons else "")
                + f"\n\nYour case: {engine.settings.base_url}/portal/cases/{case.id}\n",
                case_id=case.id,
                certificate_id=case.certificate_id,
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

    def certificate() -> Certificate:
        found = (
            uow.session.get(Certificate, case.certificate_id, with_for_update=True)
            if case.certificate_id is not None
            else None
        )
        if found is None:
            raise ConflictError("this step needs a case about a certificate")
        return found

    def change() -> LifecycleChange:
        actor = uow.session.scalars(select(User).where(User.username == run.actor)).first()
        return LifecycleChange(
            uow.session, uow.audit, uow.now, run.actor, actor.id if actor else None, case.id
        )

    def reasons_of(params: dict[str, Any], default: str) -> str:
        return str(params.get("reasons") or "").strip() or default

    def lifecycle(operation, default_reason: str):
        def act(task: Task, params: dict[str, Any]) -> dict[str, Any]:
            held = certificate()
            operation(change(), held, reasons_of(params, default_reason))
            return certificate_summary(held)

        return act

    def reduce(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        held = certificate()
        lifecycle_ops.reduce_scope(
            change(), held, str(params.get("scope") or ""), reasons_of(params, "scope reduced")
        )
        return certificate_summary(held)

    def expire(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        held = certificate()
        lifecycle_ops.expire(change(), held, reasons_of(params, "validity period ended"))
        return certificate_summary(held)

    def renew(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        held = certificate()
        scheme = uow.session.get(Scheme, held.scheme_id)
        lifecycle_ops.renew(change(), held, scheme, reasons_of(params, "recertification granted"))
        return certificate_summary(held)

    def start_suspension(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        """A surveillance (or other lifecycle) case asks for a decision on suspension: a new
        `suspension` case about the same certificate, linked to this one."""
        from .lifecycle import start_lifecycle_case

        held = certificate()
        reasons = reasons_of(params, f"raised by case {case.id}")
        started = start_lifecycle_case(
            engine, uow, "suspension", held, data={"suspension_request": reasons}, follows=case
        )
        uow.audit.record(
            uow.now,
            "system",
            "suspension_requested",
            f"suspension of certificate {held.number} to be decided in case {started.id}: {reasons}",
            case_id=case.id,
            after={"suspension_case_id": started.id, "reasons": reasons},
        )
        return {"case_id": started.id, "reasons": reasons}

    def add_audit_finding(task: Task, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The finding just recorded joins the audit's list of findings (`audit_findings`)."""
        finding = {
            "requirement": task.data.get("finding_requirement"),
            "type": task.data.get("finding_type"),
            "evidence": task.data.get("finding_evidence"),
        }
        findings = [*(task.data.get("audit_findings") or []), finding]
        uow.audit.record(
            uow.now,
            "system",
            "audit_finding_recorded",
            f"internal audit finding {len(findings)} ({finding['type']}): {finding['requirement']}",
            case_id=case.id,
            after=finding,
        )
        return findings

    def raise_corrective_actions(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        """A closed internal audit opens one corrective action per nonconformity."""
        from .corrective_actions import raise_corrective_action

        opened = []
        for finding in task.data.get("audit_findings") or []:
            if finding.get("type") != "nonconformity":
                continue
            description = f"{finding.get('requirement')}: {finding.get('evidence')}"
            raised = raise_corrective_action(
                engine, uow, None, "internal_audit", case.id, description[:4000]
            )
            opened.append(raised.id)
        return {"case_ids": opened, "count": len(opened)}

    def gather_review_inputs(task: Task, params: dict[str, Any]) -> dict[str, Any]:
        from .quality_inputs import management_review_inputs, review_period_start

        start = review_period_start(uow.session, case)
        return management_review_inputs(uow.session, start, uow.now)

    return {
        "add_audit_finding": add_audit_finding,
        "raise_corrective_actions": raise_corrective_actions,
        "gather_management_review_inputs": gather_review_inputs,
        "issue_certificate": issue,
        "issue_refusal_letter": refusal_letter,
        "notify_applicant": notify,
        "reopen_decision": reopen_decision,
        "record_surveillance": lifecycle(
            lifecycle_ops.record_surveillance, "surveillance declaration accepted"
        ),
        "start_suspension": start_suspension,
        "suspend_certificate": lifecycle(lifecycle_ops.suspend, "suspended"),
        "reinstate_certificate": lifecycle(lifecycle_ops.reinstate, "cause of suspension remedied"),
        "withdraw_certificate": lifecycle(lifecycle_ops.withdraw, "withdrawn"),
        "reduce_certificate_scope": reduce,
        "expire_certificate": expire,
        "renew_certificate": renew,
    }
