"""A certificate's life with the clock moved forward: surveillance every scheme interval,
recertification before expiry, suspension, withdrawal, reinstatement and expiry, each
started by the lifecycle jobs or BPMN timers, recorded in the certificate's history and the
audit trail, told to the holder, and shown by the public verification."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from engine.certificates import public_record
from engine.errors import PermissionDenied
from engine.models import Case, Certificate, CertificateStatusChange, Notification
from engine.scheduler import run_jobs_until_idle
from tests.engine.helpers import (
    do,
    drive_to_decision,
    ready_spec_ids,
    renew_commitments,
    start_application,
    verify,
)


def certify(
    engine, applicant: str = "alice", scheme: str = "CWI", examiner: str = "examiner"
) -> Certificate:
    case_id = start_application(engine, applicant, scheme)
    drive_to_decision(engine, case_id, applicant, examiner, has_practical=scheme == "CWI")
    do(engine, case_id, "decide_certification")
    with engine.sessions() as session:
        return session.scalars(select(Certificate).where(Certificate.case_id == case_id)).one()


def travel(engine, clock, until: datetime, step: timedelta = timedelta(days=7)) -> None:
    """Move the clock to `until` a week at a time, running every job at each stop (as a
    worker would), then sign the staff commitments again so that staff may act."""
    while clock.now() < until:
        clock.set(min(clock.now() + step, until))
        run_jobs_until_idle(engine)
    renew_commitments(engine)


def certificate(engine, number: str) -> Certificate:
    with engine.sessions() as session:
        return session.scalars(select(Certificate).where(Certificate.number == number)).one()


def history(engine, number: str) -> list[str]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(CertificateStatusChange.event)
                .join(Certificate, Certificate.id == CertificateStatusChange.certificate_id)
                .where(Certificate.number == number)
                .order_by(CertificateStatusChange.id)
            )
        )


def lifecycle_cases(engine, number: str, process_id: str) -> list[Case]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(Case)
                .join(Certificate, Certificate.id == Case.certificate_id)
                .where(Certificate.number == number, Case.process_id == process_id)
                .order_by(Case.id)
            )
        )


def open_case(engine, number: str, process_id: str) -> int:
    [case] = [c for c in lifecycle_cases(engine, number, process_id) if c.status == "running"]
    return case.id


def mail_to(engine, address: str) -> list[str]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(Notification.kind)
                .where(Notification.recipient == address)
                .order_by(Notification.id)
            )
        )


def public_status(engine, number: str) -> str:
    with engine.sessions() as session:
        return public_record(session, number)["status"]


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0)


def test_three_years_of_surveillance_and_recertification(engine, clock):
    issued = certify(engine)
    number = issued.number
    assert issued.expires_on == date(2029, 3, 2)
    assert issued.next_surveillance_on == date(2027, 3, 2)
    assert issued.recertification_opens_on == date(2028, 12, 2)  # 90 days before expiry

    for year in (2027, 2028):
        travel(engine, clock, datetime(year, 3, 1, 9, 0))
        assert lifecycle_cases(engine, number, "surveillance")[-1:] == [] or all(
            c.status == "completed" for c in lifecycle_cases(engine, number, "surveillance")
        )
        travel(engine, clock, datetime(year, 3, 3, 9, 0))
        case_id = open_case(engine, number, "surveillance")
        assert ready_spec_ids(engine, case_id) == ["declare_continued_practice"]
        do(engine, case_id, "declare_continued_practice", "alice")
        do(engine, case_id, "review_surveillance", "reviewer")
        assert engine.case(case_id).status == "completed"
        held = certificate(engine, number)
        assert held.last_surveillance_on == clock.now().date()
        assert held.status == "active"

    assert certificate(engine, number).next_surveillance_on is None  # recertification next
    travel(engine, clock, datetime(2028, 12, 1, 9, 0))
    assert lifecycle_cases(engine, number, "recertification") == []
    travel(engine, clock, datetime(2028, 12, 3, 9, 0))
    recertification = open_case(engine, number, "recertification")
    do(engine, recertification, "submit_recertification_evidence", "alice")
    do(engine, recertification, "review_recertification", "reviewer")
    do(engine, recertification, "decide_recertification", "decider")
    assert engine.case(recertification).status == "completed"

    renewed = certificate(engine, number)
    assert renewed.status == "active"
    assert renewed.expires_on == date(2032, 3, 2)
    assert renewed.renewed_count == 1
    assert renewed.next_surveillance_on == date(2030, 3, 2)

    travel(engine, clock, datetime(2029, 3, 10, 9, 0), step=timedelta(days=30))
    assert certificate(engine, number).status == "active"  # renewed: no expiry at the old date
    assert public_status(engine, number) == "active"
    assert len(lifecycle_cases(engine, number, "surveillance")) == 2
    assert history(engine, number) == [
        "issued",
        "surveillance_passed",
        "surveillance_passed",
        "renewed",
    ]
    kinds = mail_to(engine, "alice@example.org")
    assert kinds.count("certificate_surveillance_passed") == 2
    assert "certificate_renewed" in kinds
    assert verify(engine).ok


def test_a_missing_declaration_escalates_and_an_unremedied_suspension_ends_in_withdrawal(
    engine, clock
):
    number = certify(engine).number
    travel(engine, clock, datetime(2027, 3, 3, 9, 0))
    surveillance = open_case(engine, number, "surveillance")

    # The declaration falls due after 30 days: the holder is reminded, nothing else changes.
    travel(engine, clock, datetime(2027, 4, 3, 9, 0), step=timedelta(days=1))
    assert ready_spec_ids(engine, surveillance) == ["declare_continued_practice"]
    assert "applicant_notice" in mail_to(engine, "alice@example.org")
    assert "task_overdue" in mail_to(engine, "alice@example.org")

    # Two weeks later the step is taken from the holder and escalated to a manager.
    travel(engine, clock, datetime(2027, 4, 17, 9, 0), step=timedelta(days=1))
    assert ready_spec_ids(engine, surveillance) == ["handle_missing_declaration"]
    do(
        engine,
        surveillance,
        "handle_missing_declaration",
        "manager",
        escalation_action="start_suspension",
    )
    assert engine.case(surveillance).status == "completed"

    suspension = open_case(engine, number, "suspension")
    do(engine, suspension, "decide_suspension", "decider", suspension_action="suspend")
    assert certificate(engine, number).status == "suspended"
    assert public_status(engine, number) == "suspended"
    assert ready_spec_ids(engine, suspension) == ["submit_remedy_evidence"]

    # The holder does nothing within the scheme's 60 days to remedy: withdrawn.
    travel(engine, clock, datetime(2027, 6, 16, 8, 0), step=timedelta(days=1))
    assert certificate(engine, number).status == "suspended"
    travel(engine, clock, datetime(2027, 6, 16, 10, 0), step=timedelta(hours=1))
    held = certificate(engine, number)
    assert held.status == "withdrawn"
    assert public_status(engine, number) == "withdrawn"
    assert engine.case(suspension).status == "completed"
    assert held.next_surveillance_on is None and held.recertification_opens_on is None
    assert history(engine, number) == ["issued", "suspended", "withdrawn"]
    kinds = mail_to(engine, "alice@example.org")
    assert "certificate_suspended" in kinds and "certificate_withdrawn" in kinds

    # A withdrawn certificate gets no more surveillance.
    travel(engine, clock, datetime(2028, 3, 10, 9, 0), step=timedelta(days=30))
    assert len(lifecycle_cases(engine, number, "surveillance")) == 1
    assert verify(engine).ok


def test_a_remedied_suspension_is_reinstated_by_a_decider_who_did_not_examine(engine, clock):
    number = certify(engine, examiner="examiner_decider").number
    clock.set(clock.now() + timedelta(days=40))
    suspension = engine.request_suspension(number, "manager", "complaint about inspection reports")
    [decide] = engine.ready_tasks(suspension)
    assert decide.task_spec_id == "decide_suspension"
    with pytest.raises(PermissionDenied, match="9.4"):
        engine.claim(decide.id, "examiner_decider")  # examined the holder (SOD-DECIDE)

    do(engine, suspension, "decide_suspension", "decider", suspension_action="suspend")
    assert certificate(engine, number).status == "suspended"
    do(engine, suspension, "submit_remedy_evidence", "alice")
    do(engine, suspension, "decide_reinstatement", "decider2")
    assert certificate(engine, number).status == "active"
    assert history(engine, number) == ["issued", "suspended", "reinstated"]


def test_a_scope_reduction_narrows_the_public_record(engine, clock):
    number = certify(engine).number
    suspension = engine.request_suspension(number, "clerk", "practical skills no longer shown")
    do(
        engine,
        suspension,
        "decide_suspension",
        "decider",
        suspension_action="reduce_scope",
        reduced_scope="Visual inspection of fusion welds (ISO 5817 level D only)",
    )
    held = certificate(engine, number)
    assert held.status == "reduced"
    with engine.sessions() as session:
        record = public_record(session, number)
    assert record["status"] == "reduced"
    assert record["scope"] == "Visual inspection of fusion welds (ISO 5817 level D only)"


def test_without_recertification_evidence_the_certificate_expires_at_its_end_date(engine, clock):
    number = certify(engine).number
    with engine.sessions() as session, session.begin():
        session.execute(
            update(Certificate)
            .where(Certificate.number == number)
            .values(next_surveillance_on=None)
        )
    travel(engine, clock, datetime(2028, 12, 3, 9, 0), step=timedelta(days=30))
    recertification = open_case(engine, number, "recertification")
    travel(engine, clock, datetime(2028, 12, 25, 9, 0), step=timedelta(days=1))
    assert "applicant_notice" in mail_to(engine, "alice@example.org")  # evidence reminder

    travel(engine, clock, datetime(2029, 3, 2, 23, 0), step=timedelta(days=1))
    assert certificate(engine, number).status == "active"  # valid through its last day
    travel(engine, clock, datetime(2029, 3, 3, 0, 30), step=timedelta(hours=1))
    assert certificate(engine, number).status == "expired"
    assert public_status(engine, number) == "expired"
    assert engine.case(recertification).status == "completed"
    assert history(engine, number) == ["issued", "expired"]


def test_the_expiry_job_expires_a_certificate_no_case_is_watching(engine, clock):
    number = certify(engine, "bob", "DPO").number
    with engine.sessions() as session, session.begin():
        session.execute(
            update(Certificate)
            .where(Certificate.number == number)
            .values(next_surveillance_on=None, recertification_opens_on=None)
        )
    expires = certificate(engine, number).expires_on
    clock.set(at(expires))
    run_jobs_until_idle(engine)
    assert certificate(engine, number).status == "active"
    clock.set(at(expires + timedelta(days=1)))
    assert run_jobs_until_idle(engine)["expire_certificates"] == 1
    assert certificate(engine, number).status == "expired"
    assert run_jobs_until_idle(engine)["expire_certificates"] == 0
