"""Records retention: which ended cases are past their scheme's retention period, legal
holds, and disposal under four eyes.

A case's personal records are due for disposal when the case ended (completed or cancelled)
longer ago than its scheme's `retention_months`, its person holds no live certificate
(active, reduced or suspended), and no legal hold is on it. Disposal is proposed by one
quality manager or manager and approved by another; approval carries it out: the case's
documents are deleted, the data submitted in its steps (and the workflow state's copy) is
replaced by a tombstone, its messages' bodies are cleared, and the person is anonymised once
none of their cases remains undisposed. A pending proposal may be withdrawn instead, with a
reason; the case is then due again.

The audit chain is never edited: it is the evidence that the records existed and were
disposed of under this procedure (editing an event would break `certrail audit verify`).
Events written before the disposal keep what they recorded; every event written here names
ids only, never personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .certificates import add_months
from .errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from .models import (
    HELD_STATUSES,
    Case,
    Certificate,
    Document,
    FeedbackInvitation,
    HumanTask,
    Notification,
    Person,
    RecordDisposal,
    Scheme,
    User,
)
from .models.schemes import check_retention_period
from .unit_of_work import UnitOfWork

RECORDS_ROLES = frozenset({"quality_manager", "manager"})
SCHEME_EDITOR_ROLES = frozenset({"quality_manager", "admin"})
ENDED_STATUSES = ("completed", "cancelled")
MAX_REASON = 2000
# A century: longer has no use, and due dates beyond year 9999 cannot be computed.
MAX_RETENTION_MONTHS = 1200
TOMBSTONE_KEY = "record_disposed"


def _require_records_role(user: User, doing: str) -> None:
    if not user.role_names & RECORDS_ROLES:
        raise PermissionDenied(f"only a quality manager or a manager may {doing}")


def _reason(reason: str | None, field: str = "reason") -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationError(f"the {field} is required", {field: ["say why"]})
    if len(text) > MAX_REASON:
        raise ValidationError(
            f"the {field} is too long", {field: [f"keep it to {MAX_REASON:,} characters"]}
        )
    return text


# -- retention periods and legal holds ----------------------------------------------------------


def set_retention_period(uow: UnitOfWork, scheme_id: int, user: User, months: int) -> Scheme:
    if not user.role_names & SCHEME_EDITOR_ROLES:
        raise PermissionDenied("only a quality manager or an administrator may set retention")
    scheme = uow.session.get(Scheme, scheme_id)
    if scheme is None:
        raise NotFoundError(f"scheme {scheme_id} does not exist")
    check_retention_period(scheme.validity_months, months)
    if months > MAX_RETENTION_MONTHS:
        raise ValidationError(
            f"the retention period ({months} months) is longer than {MAX_RETENTION_MONTHS} months",
            {"retention_months": [f"must be at most {MAX_RETENTION_MONTHS} months"]},
        )
    before = scheme.retention_months
    scheme.retention_months = months
    uow.audit.record(
        uow.now,
        user.username,
        "retention_period_set",
        f"records of {scheme.code} v{scheme.version} kept {months} months after a case ends",
        before={"scheme_id": scheme.id, "retention_months": before},
        after={"scheme_id": scheme.id, "retention_months": months},
    )
    return scheme


def set_legal_hold(
    uow: UnitOfWork, case_id: int, user: User, hold: bool, reason: str | None
) -> Case:
    """Place (or lift) a legal hold on a case: while it is on, nothing of the case is
    disposed of, and a pending disposal cannot be approved."""
    _require_records_role(user, "place or lift a legal hold")
    why = _reason(reason)
    case = uow.session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist")
    if case.legal_hold == hold:
        raise ConflictError(f"case {case_id} is {'already' if hold else 'not'} on legal hold")
    before = {"legal_hold": case.legal_hold, "reason": case.legal_hold_reason}
    case.legal_hold = hold
    case.legal_hold_by_id = user.id
    case.legal_hold_at = uow.now
    case.legal_hold_reason = why
    uow.audit.record(
        uow.now,
        user.username,
        "legal_hold_placed" if hold else "legal_hold_lifted",
        f"legal hold {'placed' if hold else 'lifted'}: {why}",
        case_id=case.id,
        before=before,
        after={"legal_hold": hold, "reason": why},
    )
    return case


# -- what is due ----------------------------------------------------------------------------------


@dataclass
class DueRecord:
    case_id: int
    process_id: str
    status: str
    person_id: int | None
    scheme_code: str | None
    ended_at: datetime
    retention_months: int
    due_on: date
    proposal: RecordDisposal | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "process": self.process_id,
            "status": self.status,
            "person_id": self.person_id,
            "scheme": self.scheme_code,
            "ended_at": self.ended_at.isoformat(timespec="seconds"),
            "retention_months": self.retention_months,
            "due_on": self.due_on.isoformat(),
            "proposal_id": self.proposal.id if self.proposal else None,
        }


def _people_with_live_certificates(session: Session) -> set[int]:
    return set(
        session.scalars(
            select(Certificate.person_id).where(Certificate.status.in_(HELD_STATUSES)).distinct()
        )
    )


def _disposed_case_ids(session: Session) -> set[int]:
    return set(
        session.scalars(select(RecordDisposal.case_id).where(RecordDisposal.status == "disposed"))
    )


def due_for_disposal(session: Session, now: datetime) -> list[DueRecord]:
    """Ended cases about a person whose records are past retention, oldest first.

    Cases without a scheme (a complaint from a third party) are kept as long as the longest
    retention period of any scheme. Management-system records (cases about no person) are
    never listed."""
    schemes = {s.id: s for s in session.scalars(select(Scheme))}
    longest = max((s.retention_months for s in schemes.values()), default=0)
    live = _people_with_live_certificates(session)
    disposed = _disposed_case_ids(session)
    proposals = {
        p.case_id: p
        for p in session.scalars(select(RecordDisposal).where(RecordDisposal.status == "proposed"))
    }
    cases = session.scalars(
        select(Case)
        .where(
            Case.status.in_(ENDED_STATUSES),
            Case.person_id.is_not(None),
            Case.ended_at.is_not(None),
            Case.legal_hold.is_(False),
        )
        .order_by(Case.ended_at, Case.id)
    )
    today = now.date()
    due = []
    for case in cases:
        if case.id in disposed or case.person_id in live:
            continue
        scheme = schemes.get(case.scheme_id) if case.scheme_id is not None else None
        months = scheme.retention_months if scheme is not None else longest
        due_on = add_months(case.ended_at.date(), months)
        if due_on > today:
            continue
        due.append(
            DueRecord(
                case.id,
                case.process_id,
                case.status,
                case.person_id,
                scheme.code if scheme else None,
                case.ended_at,
                months,
                due_on,
                proposals.get(case.id),
            )
        )
    return due


def _due_record(session: Session, case_id: int, now: datetime) -> DueRecord:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist")
    if case.legal_hold:
        raise ConflictError(
            f"case {case_id} is on legal hold since {case.legal_hold_at:%d %b %Y} "
            f"({case.legal_hold_reason}); it cannot be disposed of"
        )
    for record in due_for_disposal(session, now):
        if record.case_id == case_id:
            return record
    raise ConflictError(
        f"case {case_id} is not due for disposal (it is running, within its retention "
        "period, already disposed of, or its person holds a live certificate)"
    )


def proposals(session: Session) -> list[RecordDisposal]:
    return list(
        session.scalars(
            select(RecordDisposal)
            .where(RecordDisposal.status == "proposed")
            .order_by(RecordDisposal.id)
        )
    )


def held_cases(session: Session) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.legal_hold.is_(True)).order_by(Case.id)))


def disposals_between(session: Session, start: datetime, end: datetime) -> list[RecordDisposal]:
    """Disposals carried out in [start, end). A proposal still pending or withdrawn has no
    `disposed_at`: nothing was disposed of, so it is not listed (its withdrawal is in the
    audit trail)."""
    return list(
        session.scalars(
            select(RecordDisposal)
            .where(RecordDisposal.disposed_at >= start, RecordDisposal.disposed_at < end)
            .order_by(RecordDisposal.disposed_at, RecordDisposal.id)
        )
    )


# -- proposal and approval (four eyes) ----------------------------------------------------------


def propose_disposal(
    uow: UnitOfWork, case_id: int, user: User, reason: str | None = None
) -> RecordDisposal:
    _require_records_role(user, "propose a disposal")
    record = _due_record(uow.session, case_id, uow.now)
    if record.proposal is not None:
        raise ConflictError(
            f"the disposal of case {case_id} is already proposed (proposal {record.proposal.id})"
        )
    why = (reason or "").strip() or f"retention period of {record.retention_months} months ended"
    proposal = RecordDisposal(
        case_id=case_id,
        status="proposed",
        reason=_reason(why),
        proposed_by_id=user.id,
        proposed_at=uow.now,
    )
    uow.session.add(proposal)
    uow.session.flush()
    uow.audit.record(
        uow.now,
        user.username,
        "disposal_proposed",
        f"disposal of the records of case {case_id} proposed",
        case_id=case_id,
        after={"disposal_id": proposal.id, "due_on": record.due_on.isoformat()},
    )
    return proposal


def approve_disposal(uow: UnitOfWork, disposal_id: int, user: User) -> RecordDisposal:
    """A second quality manager or manager approves a proposal, which carries it out."""
    _require_records_role(user, "approve a disposal")
    proposal = uow.session.get(RecordDisposal, disposal_id, with_for_update=True)
    if proposal is None:
        raise NotFoundError(f"disposal proposal {disposal_id} does not exist")
    if proposal.status != "proposed":
        raise ConflictError(f"disposal {disposal_id} is {proposal.status}, not proposed")
    if proposal.proposed_by_id == user.id:
        raise PermissionDenied(
            "you proposed this disposal; another quality manager or manager must approve it "
            "(four eyes)"
        )
    _due_record(uow.session, proposal.case_id, uow.now)
    dispose(uow, proposal, user)
    return proposal


def withdraw_disposal(
    uow: UnitOfWork, disposal_id: int, user: User, reason: str | None
) -> RecordDisposal:
    """Withdraw a pending proposal (the records are to be kept after all, or it was made in
    error). The case is due again and may be proposed afresh; the withdrawn row stays as the
    record that a disposal was once proposed. Any quality manager or manager may withdraw,
    the proposer included: keeping records needs no second pair of eyes."""
    _require_records_role(user, "withdraw a disposal proposal")
    why = _reason(reason)
    proposal = uow.session.get(RecordDisposal, disposal_id, with_for_update=True)
    if proposal is None:
        raise NotFoundError(f"disposal proposal {disposal_id} does not exist")
    if proposal.status != "proposed":
        raise ConflictError(f"disposal {disposal_id} is {proposal.status}, not proposed")
    proposal.status = "withdrawn"
    uow.audit.record(
        uow.now,
        user.username,
        "disposal_withdrawn",
        f"disposal of the records of case {proposal.case_id} withdrawn: {why}",
        case_id=proposal.case_id,
        before={"disposal_id": proposal.id, "status": "proposed"},
        after={"disposal_id": proposal.id, "status": "withdrawn", "reason": why},
    )
    return proposal


def dispose(uow: UnitOfWork, proposal: RecordDisposal, approver: User) -> None:
    session = uow.session
    case = session.get(Case, proposal.case_id, with_for_update=True)
    documents = list(session.scalars(select(Document).where(Document.case_id == case.id)))
    for document in documents:
        session.delete(document)
    tombstone = {TOMBSTONE_KEY: uow.now.isoformat(timespec="seconds"), "disposal_id": proposal.id}
    tasks = list(
        session.scalars(
            select(HumanTask).where(
                HumanTask.case_id == case.id, HumanTask.submitted_data.is_not(None)
            )
        )
    )
    for task in tasks:
        task.submitted_data = dict(tombstone)
    case.state = _scrub_state(case.state, tombstone)
    for message in session.scalars(select(Notification).where(Notification.case_id == case.id)):
        message.body = "[disposed]"
    for invitation in session.scalars(
        select(FeedbackInvitation).where(FeedbackInvitation.case_id == case.id)
    ):
        invitation.person_id = None
    proposal.status = "disposed"
    proposal.approved_by_id = approver.id
    proposal.disposed_at = uow.now
    proposal.documents_deleted = len(documents)
    proposal.tasks_tombstoned = len(tasks)
    session.flush()
    proposal.person_anonymised = _anonymise_if_no_live_records(uow, case.person_id)
    proposer = session.get(User, proposal.proposed_by_id)
    uow.audit.record(
        uow.now,
        approver.username,
        "record_disposed",
        f"records of case {case.id} disposed of "
        f"({len(documents)} document(s) deleted, {len(tasks)} step(s) tombstoned)",
        case_id=case.id,
        after={
            "disposal_id": proposal.id,
            "person_id": case.person_id,
            "documents_deleted": [{"id": d.id, "sha256": d.sha256} for d in documents],
            "tasks_tombstoned": [t.id for t in tasks],
            "person_anonymised": proposal.person_anonymised,
            "proposed_by": proposer.username if proposer else None,
            "approved_by": approver.username,
        },
    )


def _scrub_state(state: str, tombstone: dict[str, Any]) -> str:
    """The serialized workflow with every task's and workflow's data replaced by the
    tombstone (its structure kept, so the ended case still loads and shows its history)."""
    import json

    def scrub(node: Any) -> None:
        if isinstance(node, dict):
            tasks = node.get("tasks")
            if isinstance(tasks, dict):
                for task in tasks.values():
                    if isinstance(task, dict) and "data" in task:
                        task["data"] = dict(tombstone)
                if "data" in node:
                    node["data"] = {}
            for value in node.values():
                scrub(value)
        elif isinstance(node, list):
            for value in node:
                scrub(value)

    try:
        document = json.loads(state)
    except ValueError:
        return state
    scrub(document)
    return json.dumps(document, separators=(",", ":"))


def _anonymise_if_no_live_records(uow: UnitOfWork, person_id: int | None) -> bool:
    """Anonymise a person none of whose cases remains undisposed and who holds no live
    certificate; returns whether it was done."""
    session = uow.session
    person = session.get(Person, person_id) if person_id is not None else None
    if person is None or person.given_name == DISPOSED_NAME:
        return False
    disposed = _disposed_case_ids(session)
    others = [
        case_id
        for case_id in session.scalars(select(Case.id).where(Case.person_id == person.id))
        if case_id not in disposed
    ]
    live = session.scalar(
        select(func.count())
        .select_from(Certificate)
        .where(Certificate.person_id == person.id, Certificate.status.in_(HELD_STATUSES))
    )
    if others or live:
        return False
    person.given_name = DISPOSED_NAME
    person.family_name = f"#{person.id}"
    # The address column is unique and required: a reserved, undeliverable placeholder.
    person.email = f"disposed-person-{person.id}@disposed.invalid"
    person.date_of_birth = None
    for account in session.scalars(select(User).where(User.person_id == person.id)):
        account.username = f"disposed-{account.id}"
        account.display_name = f"{DISPOSED_NAME} #{person.id}"
        account.email = None
        account.password_hash = None
        account.active = False
    uow.audit.record(
        uow.now,
        "system",
        "person_anonymised",
        f"person {person.id} anonymised: none of their records is kept any longer",
        after={"person_id": person.id},
    )
    return True


DISPOSED_NAME = "Disposed person"
