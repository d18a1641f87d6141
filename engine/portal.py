"""The applicant's view of their cases, in plain words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Case, Certificate, HumanTask, Scheme, User

# What the applicant reads while a step is open (their own steps ask them to act).
STEP_PHRASES = {
    "submit_application": "Your application is waiting for you to submit it",
    "check_completeness": "Your application is being checked for completeness",
    "complete_application": "We need more information from you to complete your application",
    "review_eligibility": "Your eligibility is being reviewed",
    "provide_evidence": "We need more evidence from you",
    "schedule_assessment": "Your assessment is being scheduled",
    "assign_examiner": "Your examination is being arranged",
    "administer_exam": "Your examination is due",
    "score_written": "Your examination is being marked",
    "score_practical": "Your examination is being marked",
    "review_file": "Your file is being prepared for the certification decision",
    "decide_certification": "The certification decision is being made",
}


@dataclass
class ApplicantCase:
    case_id: int
    process_id: str
    scheme_name: str | None
    status: str
    progress: str
    started_at: datetime
    my_tasks: list[HumanTask]
    certificate: Certificate | None


def progress_phrase(
    case: Case, open_tasks: list[HumanTask], certificate: Certificate | None
) -> str:
    if case.status == "completed":
        if certificate is not None:
            return f"Certified: certificate {certificate.number}, valid until {certificate.expires_on:%d %b %Y}"
        return "Your case is closed; the letter in your documents explains the outcome and your right to appeal"
    if case.status == "errored":
        return "Your case is held up by a technical problem; our staff have been alerted"
    if not open_tasks:
        return "Your case is in progress"
    phrases = []
    for task in open_tasks:
        phrase = STEP_PHRASES.get(task.task_spec_id, f"Step in progress: {task.name}")
        if task.due_at is not None and task.role != "applicant":
            phrase += f"; expected by {task.due_at:%d %b %Y}"
        if phrase not in phrases:
            phrases.append(phrase)
    return ". ".join(phrases)


def applicant_cases(session: Session, user: User) -> list[ApplicantCase]:
    if user.person_id is None:
        return []
    cases = session.scalars(
        select(Case).where(Case.person_id == user.person_id).order_by(Case.id.desc())
    ).all()
    result = []
    for case in cases:
        open_tasks = list(
            session.scalars(
                select(HumanTask)
                .where(HumanTask.case_id == case.id, HumanTask.status == "ready")
                .order_by(HumanTask.id)
            )
        )
        certificate = session.scalars(
            select(Certificate).where(Certificate.case_id == case.id)
        ).first()
        scheme = session.get(Scheme, case.scheme_id) if case.scheme_id else None
        result.append(
            ApplicantCase(
                case_id=case.id,
                process_id=case.process_id,
                scheme_name=scheme.name if scheme else None,
                status=case.status,
                progress=progress_phrase(case, open_tasks, certificate),
                started_at=case.started_at,
                my_tasks=[t for t in open_tasks if t.role == "applicant"],
                certificate=certificate,
            )
        )
    return result
