"""The applicant's view of their cases, in plain words, and what applicants may do:
apply for a scheme, and lodge an appeal or a complaint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from .models import Case, Certificate, HumanTask, Person, Scheme, User
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from . import Engine

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
    "acknowledge_appeal": "Your appeal has been received and will be acknowledged shortly",
    "validate_appeal": "Your appeal is being checked by the appeals panel",
    "investigate_appeal": "Your appeal is being investigated",
    "decide_appeal": "The appeals panel is deciding on your appeal",
    "confirm_relevance": "Your complaint has been received and is being registered",
    "acknowledge_complaint": "Your complaint has been received and will be acknowledged shortly",
    "investigate_complaint": "Your complaint is being investigated",
    "approve_response": "The response to your complaint is being reviewed",
    "record_corrective_action": "The actions following your complaint are being recorded",
    "close_complaint": "Your complaint is being closed",
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
        if case.process_id in ("appeal", "complaint"):
            return f"Your {case.process_id} is closed; our notification to you explains the outcome"
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


# -- applicant operations --------------------------------------------------------------

OPEN_CASE_STATUSES = ("running", "errored")
MIN_STATEMENT = 20
MAX_STATEMENT = 5000


def available_schemes(session: Session) -> list[Scheme]:
    """The schemes an applicant may apply for: the current version of each active scheme."""
    schemes = session.scalars(
        select(Scheme).where(Scheme.active.is_(True)).order_by(Scheme.code, Scheme.id.desc())
    ).all()
    current: dict[str, Scheme] = {}
    for scheme in schemes:
        current.setdefault(scheme.code, scheme)
    return list(current.values())


def open_application(session: Session, person_id: int, scheme_code: str) -> Case | None:
    """The person's application for `scheme_code` that is still open, if any."""
    return session.scalars(
        select(Case)
        .join(Scheme, Scheme.id == Case.scheme_id)
        .where(
            Case.person_id == person_id,
            Case.process_id == "application",
            Case.status.in_(OPEN_CASE_STATUSES),
            Scheme.code == scheme_code,
        )
        .order_by(Case.id)
    ).first()


def apply_for_certification(engine: Engine, uow: UnitOfWork, user: User, scheme_code: str) -> Case:
    """Start an application case for the user's own person; one open application per scheme.

    The person row is locked first, so two submissions at the same moment cannot both pass
    the check (on SQLite the database write lock does the same)."""
    from .cases import check_may_start, start_case

    if user.person_id is None:
        raise PermissionDenied("only applicants can apply for certification")
    check_may_start(user, "application", user.person_id)
    person = uow.session.get(Person, user.person_id, with_for_update=True)
    if person is None:
        raise NotFoundError(f"person {user.person_id} does not exist")
    scheme = next((s for s in available_schemes(uow.session) if s.code == scheme_code), None)
    if scheme is None:
        raise ValidationError(
            "choose a certification scheme", {"scheme": [f"'{scheme_code}' is not a scheme"]}
        )
    existing = open_application(uow.session, person.id, scheme.code)
    if existing is not None:
        raise ConflictError(
            f"you already have an open application for {scheme.name} (case {existing.id}); "
            "you can apply again once it is closed"
        )
    case, _run = start_case(engine, uow, "application", user, person, scheme)
    return case


def own_case(session: Session, user: User, case_id: int) -> Case:
    """The applicant's own case; any other case is "not found" (ids reveal nothing)."""
    case = session.get(Case, case_id)
    if case is None or user.person_id is None or case.person_id != user.person_id:
        raise NotFoundError(f"case {case_id} does not exist or is not yours")
    return case


def _statement(text: str, what: str) -> str:
    text = (text or "").strip()
    if len(text) < MIN_STATEMENT:
        raise ValidationError(
            f"the {what} is too short",
            {"text": [f"Please explain in at least {MIN_STATEMENT} characters"]},
        )
    if len(text) > MAX_STATEMENT:
        raise ValidationError(
            f"the {what} is too long",
            {"text": [f"Please keep it under {MAX_STATEMENT} characters"]},
        )
    return text


def lodge_appeal(engine: Engine, uow: UnitOfWork, case: Case, user: User, grounds: str) -> Case:
    """Appeal against the decision taken in the applicant's own (closed) case: starts an
    `appeal` case linked `appeals` to it (ISO/IEC 17024 9.8).

    The grounds are the appeal's start data (`appeal_grounds`) and a text document on the
    appeal case, where the clerk and the appeals panel read them; the appealed case records an
    `appeal_lodged` event pointing at the appeal."""
    from .cases import check_may_start, check_subject, start_case
    from .documents import attach_document

    on_behalf = user.is_staff  # staff record an appeal received by letter or e-mail
    if not on_behalf and (case.person_id is None or case.person_id != user.person_id):
        raise NotFoundError(f"case {case.id} does not exist or is not yours")
    if case.status != "completed":
        raise ConflictError("an appeal can be lodged once a decision has been made in this case")
    grounds = _statement(grounds, "appeal")
    links = {"appeals": case.id}
    appellant_id = case.person_id if on_behalf else user.person_id
    check_may_start(user, "appeal", appellant_id, links, uow.session)
    check_subject(uow.session, "appeal", links)
    person = uow.session.get(Person, appellant_id) if appellant_id is not None else None
    scheme = uow.session.get(Scheme, case.scheme_id) if case.scheme_id else None
    appeal, _run = start_case(
        engine, uow, "appeal", user, person, scheme, {"appeal_grounds": grounds}, links
    )
    document = attach_document(
        uow,
        appeal,
        user,
        f"appeal-{uow.now:%Y%m%d-%H%M%S}.txt",
        "text/plain",
        grounds.encode("utf-8"),
    )
    uow.audit.record(
        uow.now,
        user.username,
        "appeal_lodged",
        f"appeal against the decision in case {case.id} lodged as case {appeal.id}",
        case_id=case.id,
        after={"appeal_case_id": appeal.id, "document_id": document.id},
    )
    return appeal


def lodge_complaint(
    engine: Engine, uow: UnitOfWork, case: Case | None, user: User, text: str
) -> Case:
    """A complaint by the applicant, about one of their own cases or (`case` None) about the
    body in general: starts a `complaint` case (ISO/IEC 17024 9.9), linked `concerns` to the
    case it is about. The text is its start data (`complaint_text`) and a document on it."""
    from .cases import check_may_start, check_subject, start_case
    from .documents import attach_document

    on_behalf = user.is_staff  # staff record a complaint received by letter, phone or e-mail
    if (
        case is not None
        and not on_behalf
        and (case.person_id is None or case.person_id != user.person_id)
    ):
        raise NotFoundError(f"case {case.id} does not exist or is not yours")
    text = _statement(text, "complaint")
    links = {"concerns": case.id} if case is not None else {}
    check_may_start(user, "complaint", user.person_id, links, uow.session)
    check_subject(uow.session, "complaint", links)
    person = uow.session.get(Person, user.person_id) if user.person_id is not None else None
    scheme = (
        uow.session.get(Scheme, case.scheme_id) if case is not None and case.scheme_id else None
    )
    complaint, _run = start_case(
        engine, uow, "complaint", user, person, scheme, {"complaint_text": text}, links
    )
    document = attach_document(
        uow,
        complaint,
        user,
        f"complaint-{uow.now:%Y%m%d-%H%M%S}.txt",
        "text/plain",
        text.encode("utf-8"),
    )
    uow.audit.record(
        uow.now,
        user.username,
        "complaint_lodged",
        f"complaint lodged as case {complaint.id}"
        + (f" about case {case.id}" if case is not None else ""),
        case_id=case.id if case is not None else complaint.id,
        after={"complaint_case_id": complaint.id, "document_id": document.id},
    )
    return complaint
