"""The feedback loop: a single-use, expiring link after a certification decision or a
complaint's closure, and the aggregates per scheme and period."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine.errors import ConflictError, NotFoundError, ValidationError
from engine.feedback import feedback_summary, open_invitation, submit_feedback, token_hash
from engine.models import FeedbackInvitation, FeedbackResponse, Notification
from tests.engine.helpers import do, events
from tests.engine.test_appeals_complaints import decided_case, lodge_complaint

LINK = re.compile(r"/feedback/([A-Za-z0-9_-]+)")


def feedback_token(engine, case_id: int) -> str:
    """The token in the feedback e-mail queued for a case (as the recipient would click it)."""
    with engine.sessions() as session:
        [mail] = session.scalars(
            select(Notification).where(
                Notification.case_id == case_id, Notification.kind == "feedback_invitation"
            )
        ).all()
    return LINK.search(mail.body).group(1)


def answer(engine, token: str, overall="5", clarity="4", comment=""):
    with engine.unit_of_work() as uow:
        return submit_feedback(
            uow, token, {"overall_rating": overall, "clarity_rating": clarity, "comment": comment}
        )


def test_certification_decision_queues_a_feedback_link_stored_only_as_a_hash(engine):
    case_id = decided_case(engine, "alice")
    token = feedback_token(engine, case_id)
    with engine.sessions() as session:
        [invitation] = session.scalars(
            select(FeedbackInvitation).where(FeedbackInvitation.case_id == case_id)
        ).all()
        [mail] = session.scalars(
            select(Notification).where(Notification.kind == "feedback_invitation")
        ).all()
    assert invitation.kind == "certification"
    assert invitation.token_hash == token_hash(token) != token
    assert invitation.expires_at == engine.clock.now() + timedelta(days=60)
    assert mail.recipient == "alice@example.org"
    [invited] = events(engine, case_id=case_id, action="feedback_invited")
    assert token not in str(invited.after) and token not in invited.message


def test_feedback_link_works_once(engine):
    case_id = decided_case(engine, "alice")
    token = feedback_token(engine, case_id)
    response = answer(engine, token, "4", "2", "The exam room was cold.")
    assert (response.overall_rating, response.clarity_rating) == (4, 2)
    with pytest.raises(ConflictError, match="already used"):
        answer(engine, token, "1", "1")
    with engine.sessions() as session:
        assert len(session.scalars(select(FeedbackResponse)).all()) == 1
    [received] = events(engine, case_id=case_id, action="feedback_received")
    assert received.after["overall_rating"] == 4 and received.after["commented"] is True


def test_feedback_link_expires_after_sixty_days(engine, clock):
    case_id = decided_case(engine, "alice")
    token = feedback_token(engine, case_id)
    clock.set(clock.now() + timedelta(days=60))
    with pytest.raises(ConflictError, match="expired"):
        answer(engine, token)
    with engine.sessions() as session:
        assert session.scalars(select(FeedbackResponse)).all() == []


def test_unknown_feedback_token_is_not_found(engine):
    with engine.sessions() as session, pytest.raises(NotFoundError, match="not valid"):
        open_invitation(session, "made-up-token", engine.clock.now())


def test_feedback_answers_are_validated_by_field(engine):
    token = feedback_token(engine, decided_case(engine, "alice"))
    with pytest.raises(ValidationError) as refused:
        answer(engine, token, "0", "six", "x" * 2001)
    assert set(refused.value.fields) == {"overall_rating", "clarity_rating", "comment"}
    # A refused answer leaves the link usable.
    assert answer(engine, token, "5", "5", "x" * 2000).comment == "x" * 2000


def test_complaint_closure_invites_the_complainant(engine):
    complaint = lodge_complaint(engine, None, "bob")
    do(
        engine,
        complaint,
        "confirm_relevance",
        "complaints",
        complaint_relevant=False,
        complaint_relevance_reasons="The complaint concerns a training provider.",
    )
    assert engine.case(complaint).status == "completed"
    with engine.sessions() as session:
        [invitation] = session.scalars(
            select(FeedbackInvitation).where(FeedbackInvitation.case_id == complaint)
        ).all()
    assert invitation.kind == "complaint"
    answer(engine, feedback_token(engine, complaint), "2", "3")


def test_running_cases_and_other_processes_invite_nothing(engine):
    from tests.engine.helpers import start_application

    start_application(engine, "alice")
    with engine.sessions() as session:
        assert session.scalars(select(FeedbackInvitation)).all() == []


def test_feedback_is_aggregated_per_scheme_and_period(engine, clock):
    alice = decided_case(engine, "alice")
    bob = decided_case(engine, "bob")
    answer(engine, feedback_token(engine, alice), "5", "4", "Clear and quick.")
    answer(engine, feedback_token(engine, bob), "2", "3")
    start = datetime(clock.now().year, clock.now().month, 1)
    with engine.sessions() as session:
        [dpo] = feedback_summary(session, start, start + timedelta(days=31))
        assert feedback_summary(session, start - timedelta(days=31), start) == []
    assert (dpo.scheme_code, dpo.kind) == ("DPO", "certification")
    assert (dpo.invitations, dpo.responses) == (2, 2)
    assert (dpo.mean_overall, dpo.mean_clarity) == (3.5, 3.5)
    assert [comment for _at, comment in dpo.comments] == ["Clear and quick."]
    assert dpo.as_row()["comments"] == 1
