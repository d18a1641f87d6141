"""The feedback loop: after a certification decision or a complaint's closure the person is
sent a single-use link to a short form; answers are aggregated per scheme and period.

The link's token is random and only its SHA-256 is stored, so the database alone cannot be
used to answer in someone's name. A link works once and for 60 days.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .audit import AuditLog
from .errors import ConflictError, NotFoundError, ValidationError
from .models import Case, FeedbackInvitation, FeedbackResponse, Person, Scheme
from .notifications import notify_person
from .row_writes import insert_new
from .unit_of_work import UnitOfWork

# Which ended cases invite feedback, and what the feedback is about.
FEEDBACK_AFTER = {
    "application": "certification",
    "decision": "certification",
    "recertification": "certification",
    "complaint": "complaint",
}
LINK_VALID_FOR = timedelta(days=60)
MAX_COMMENT = 2000
RATINGS = {
    "overall_rating": "your overall rating",
    "clarity_rating": "how clear the process was",
}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invite_after_completion(
    session: Session,
    now: datetime,
    audit: AuditLog,
    case: Case,
    person: Person | None,
    base_url: str,
) -> FeedbackInvitation | None:
    """Send `person`, of a just-completed decision or complaint case, a feedback link.

    Called once, where the runtime notices a case has reached its end. Cases of other
    processes, and cases without a person, invite nothing."""
    kind = FEEDBACK_AFTER.get(case.process_id)
    if kind is None or person is None:
        return None
    token = secrets.token_urlsafe(32)
    invitation = FeedbackInvitation(
        token_hash=token_hash(token),
        kind=kind,
        case_id=case.id,
        person_id=person.id,
        scheme_id=case.scheme_id,
        created_at=now,
        expires_at=now + LINK_VALID_FOR,
    )
    insert_new(session, [invitation])
    about = "the certification decision" if kind == "certification" else "your complaint"
    notify_person(
        session,
        now,
        person,
        "feedback_invitation",
        "How did we do? Two questions about your case",
        f"Dear {person.full_name},\n\n"
        f"your case {case.id} has ended. We would value your view of how we handled "
        f"{about}: two ratings and an optional comment, no login needed.\n\n"
        f"{base_url}/feedback/{token}\n\n"
        f"The link works once, until {invitation.expires_at:%d %b %Y}.\n",
        case_id=case.id,
    )
    audit.record(
        now,
        "system",
        "feedback_invited",
        f"feedback on the {kind} asked for",
        case_id=case.id,
        after={"invitation_id": invitation.id, "kind": kind, "expires_at": _iso(invitation)},
    )
    return invitation


def _iso(invitation: FeedbackInvitation) -> str:
    return invitation.expires_at.isoformat(timespec="seconds")


def open_invitation(session: Session, token: str, now: datetime) -> FeedbackInvitation:
    """The invitation a link stands for, if it can still be answered; else a clear refusal."""
    invitation = session.scalars(
        select(FeedbackInvitation).where(FeedbackInvitation.token_hash == token_hash(token))
    ).first()
    if invitation is None:
        raise NotFoundError("this feedback link is not valid; check that it was copied whole")
    if invitation.used_at is not None:
        raise ConflictError(
            f"this feedback link was already used on {invitation.used_at:%d %b %Y}; "
            "thank you, your answers are recorded"
        )
    if invitation.expires_at <= now:
        raise ConflictError(f"this feedback link expired on {invitation.expires_at:%d %b %Y}")
    return invitation


def read_answers(form: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The submitted ratings (1-5) and comment, and the errors by field."""
    errors: dict[str, list[str]] = {}
    answers: dict[str, Any] = {}
    for name, label in RATINGS.items():
        value = str(form.get(name) or "").strip()
        if value not in ("1", "2", "3", "4", "5"):
            errors[name] = [f"choose {label} from 1 to 5"]
        else:
            answers[name] = int(value)
    comment = str(form.get("comment") or "").strip()
    if len(comment) > MAX_COMMENT:
        errors["comment"] = [f"keep the comment to {MAX_COMMENT:,} characters ({len(comment):,})"]
    answers["comment"] = comment
    return answers, errors


def submit_feedback(uow: UnitOfWork, token: str, form: dict[str, Any]) -> FeedbackResponse:
    """Store the answers given through a link, once."""
    answers, errors = read_answers(form)
    if errors:
        raise ValidationError("the feedback was not recorded", errors)
    invitation = open_invitation(uow.session, token, uow.now)
    invitation.used_at = uow.now
    response = FeedbackResponse(
        invitation_id=invitation.id,
        kind=invitation.kind,
        scheme_id=invitation.scheme_id,
        overall_rating=answers["overall_rating"],
        clarity_rating=answers["clarity_rating"],
        comment=answers["comment"],
        submitted_at=uow.now,
    )
    uow.session.add(response)
    uow.session.flush()
    uow.audit.record(
        uow.now,
        "feedback",
        "feedback_received",
        f"feedback on the {invitation.kind} received",
        case_id=invitation.case_id,
        after={
            "response_id": response.id,
            "overall_rating": response.overall_rating,
            "clarity_rating": response.clarity_rating,
            "commented": bool(response.comment),
        },
    )
    return response


# -- aggregates -------------------------------------------------------------------------------


@dataclass
class FeedbackSummary:
    """The answers about one scheme (None: not about a scheme) and kind in a period."""

    scheme_code: str | None
    kind: str
    invitations: int = 0
    responses: int = 0
    overall_total: int = 0
    clarity_total: int = 0
    comments: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def mean_overall(self) -> float | None:
        return round(self.overall_total / self.responses, 2) if self.responses else None

    @property
    def mean_clarity(self) -> float | None:
        return round(self.clarity_total / self.responses, 2) if self.responses else None

    @property
    def response_rate(self) -> float | None:
        return round(self.responses / self.invitations, 2) if self.invitations else None

    def as_row(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme_code or "",
            "kind": self.kind,
            "invitations": self.invitations,
            "responses": self.responses,
            "mean_overall": "" if self.mean_overall is None else self.mean_overall,
            "mean_clarity": "" if self.mean_clarity is None else self.mean_clarity,
            "comments": len(self.comments),
        }


def feedback_summary(session: Session, start: datetime, end: datetime) -> list[FeedbackSummary]:
    """Invitations sent and answers given in [start, end), per scheme and kind."""
    codes = dict(session.execute(select(Scheme.id, Scheme.code)).all())
    summaries: dict[tuple[str | None, str], FeedbackSummary] = {}

    def summary(scheme_id: int | None, kind: str) -> FeedbackSummary:
        code = codes.get(scheme_id) if scheme_id is not None else None
        return summaries.setdefault((code, kind), FeedbackSummary(code, kind))

    for scheme_id, kind in session.execute(
        select(FeedbackInvitation.scheme_id, FeedbackInvitation.kind).where(
            FeedbackInvitation.created_at >= start, FeedbackInvitation.created_at < end
        )
    ):
        summary(scheme_id, kind).invitations += 1
    for response in session.scalars(
        select(FeedbackResponse)
        .where(FeedbackResponse.submitted_at >= start, FeedbackResponse.submitted_at < end)
        .order_by(FeedbackResponse.submitted_at)
    ):
        row = summary(response.scheme_id, response.kind)
        row.responses += 1
        row.overall_total += response.overall_rating
        row.clarity_total += response.clarity_rating
        if response.comment:
            row.comments.append((response.submitted_at, response.comment))
    return sorted(summaries.values(), key=lambda s: (s.scheme_code or "~", s.kind))
