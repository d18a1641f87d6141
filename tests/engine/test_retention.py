"""Records retention: per-scheme periods, legal holds, and disposal under four eyes that
anonymises, deletes documents, leaves tombstones and writes its audit events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine.certificate_lifecycle import LifecycleChange, withdraw
from engine.certificates import add_months
from engine.cli import main
from engine.documents import attach_document
from engine.errors import ConflictError, PermissionDenied, ValidationError
from engine.models import Case, Certificate, Document, HumanTask, Person, Scheme, User
from engine.retention import (
    approve_disposal,
    due_for_disposal,
    propose_disposal,
    set_legal_hold,
    set_retention_period,
)
from tests.engine.helpers import do, events, person_id, verify
from tests.engine.test_appeals_complaints import COMPLAINT, decided_case


def user(uow, username: str) -> User:
    return uow.session.scalars(select(User).where(User.username == username)).one()


def ended_complaint(engine, complainant: str = "bob", scheme: str = "DPO") -> int:
    """A complaint about the scheme, closed as outside the body's activities, with a letter
    attached."""
    case_id = engine.start_case(
        "complaint",
        actor="complaints",
        person_id=person_id(engine, complainant),
        scheme_code=scheme,
        data={"complaint_text": COMPLAINT},
    ).case_id
    with engine.unit_of_work() as uow:
        attach_document(
            uow,
            uow.session.get(Case, case_id),
            user(uow, "complaints"),
            "letter.txt",
            "text/plain",
            b"Letter from the complainant",
        )
    do(
        engine,
        case_id,
        "confirm_relevance",
        "complaints",
        complaint_relevant=False,
        complaint_relevance_reasons="It is about a training provider.",
    )
    assert engine.case(case_id).status == "completed"
    return case_id


def due_ids(engine) -> list[int]:
    with engine.sessions() as session:
        return [record.case_id for record in due_for_disposal(session, engine.clock.now())]


def months_later(clock, months: int) -> None:
    now = clock.now()
    clock.set(datetime.combine(add_months(now.date(), months), now.time()))


def propose(engine, case_id: int, username: str = "quality") -> int:
    with engine.unit_of_work() as uow:
        return propose_disposal(uow, case_id, user(uow, username), "period over").id


def approve(engine, disposal_id: int, username: str = "manager"):
    with engine.unit_of_work() as uow:
        return approve_disposal(uow, disposal_id, user(uow, username))


def hold(engine, case_id: int, username: str = "quality", on: bool = True, reason="litigation"):
    with engine.unit_of_work() as uow:
        return set_legal_hold(uow, case_id, user(uow, username), on, reason)


# -- retention periods ----------------------------------------------------------------------------


def test_scheme_retention_defaults_to_one_cycle_plus_twelve_months(engine):
    with engine.sessions() as session:
        periods = {
            s.code: (s.validity_months, s.retention_months) for s in session.scalars(select(Scheme))
        }
    assert periods == {"CWI": (36, 48), "DPO": (24, 36)}


def test_retention_shorter_than_one_certification_cycle_is_refused(engine):
    with engine.sessions() as session:
        dpo = session.scalars(select(Scheme).where(Scheme.code == "DPO")).one().id
    with pytest.raises(ValidationError) as refused, engine.unit_of_work() as uow:
        set_retention_period(uow, dpo, user(uow, "quality"), 23)
    assert list(refused.value.fields) == ["retention_months"]
    with pytest.raises(PermissionDenied), engine.unit_of_work() as uow:
        set_retention_period(uow, dpo, user(uow, "clerk"), 30)
    with engine.unit_of_work() as uow:
        set_retention_period(uow, dpo, user(uow, "quality"), 24)
    [changed] = events(engine, action="retention_period_set")
    assert changed.before["retention_months"] == 36 and changed.after["retention_months"] == 24


def test_a_scheme_stored_with_too_short_retention_is_refused(engine):
    with pytest.raises(ValidationError, match="shorter than one certification cycle"):
        with engine.unit_of_work() as uow:
            uow.session.add(
                Scheme(
                    code="X",
                    version="1",
                    name="X",
                    scope="x",
                    validity_months=36,
                    retention_months=12,
                )
            )


# -- what is due -----------------------------------------------------------------------------------


def test_ended_case_is_due_once_its_scheme_retention_period_has_passed(engine, clock):
    case_id = ended_complaint(engine)
    assert due_ids(engine) == []
    with engine.sessions() as session:
        ended = session.get(Case, case_id).ended_at
    due_day = datetime.combine(add_months(ended.date(), 36), datetime.min.time())
    clock.set(due_day - timedelta(minutes=1))
    assert due_ids(engine) == []
    clock.set(due_day)
    assert due_ids(engine) == [case_id]


def test_retention_list_excludes_people_holding_a_live_certificate(engine, clock):
    application = decided_case(engine, "alice")
    months_later(clock, 40)
    assert due_ids(engine) == []  # alice's certificate is still active
    with engine.unit_of_work() as uow:
        certificate = uow.session.scalars(
            select(Certificate).where(Certificate.case_id == application)
        ).one()
        change = LifecycleChange(uow.session, uow.audit, uow.now, "decider")
        withdraw(change, certificate, "no longer practising")
    assert due_ids(engine) == [application]


def test_retention_list_excludes_cases_on_legal_hold(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    hold(engine, case_id)
    assert due_ids(engine) == []
    [placed] = events(engine, case_id=case_id, action="legal_hold_placed")
    assert placed.actor == "quality" and placed.after == {
        "legal_hold": True,
        "reason": "litigation",
    }
    with engine.sessions() as session:
        case = session.get(Case, case_id)
        assert case.legal_hold and case.legal_hold_by_id and case.legal_hold_at == clock.now()
    hold(engine, case_id, "manager", on=False, reason="claim settled")
    assert due_ids(engine) == [case_id]


def test_only_quality_managers_and_managers_place_legal_holds_and_give_a_reason(engine):
    case_id = ended_complaint(engine)
    with pytest.raises(PermissionDenied):
        hold(engine, case_id, "clerk")
    with pytest.raises(ValidationError) as refused:
        hold(engine, case_id, reason="  ")
    assert list(refused.value.fields) == ["reason"]


# -- disposal ---------------------------------------------------------------------------------------


def test_disposal_needs_approval_by_someone_other_than_the_proposer(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    disposal = propose(engine, case_id, "quality")
    with pytest.raises(PermissionDenied, match="four eyes"):
        approve(engine, disposal, "quality")
    with pytest.raises(PermissionDenied):
        approve(engine, disposal, "clerk")
    with pytest.raises(ConflictError, match="already proposed"):
        propose(engine, case_id, "manager")
    assert events(engine, action="record_disposed") == []
    assert approve(engine, disposal, "manager").status == "disposed"
    assert due_ids(engine) == []


def test_a_case_within_its_retention_period_cannot_be_proposed(engine):
    case_id = ended_complaint(engine)
    with pytest.raises(ConflictError, match="not due"):
        propose(engine, case_id)


def test_disposal_anonymises_deletes_documents_leaves_tombstones_and_is_audited(engine, clock):
    case_id = ended_complaint(engine, "bob")
    bob = person_id(engine, "bob")
    months_later(clock, 37)
    disposal = propose(engine, case_id, "quality")
    approve(engine, disposal, "manager")
    with engine.sessions() as session:
        person = session.get(Person, bob)
        assert person.full_name == f"Disposed person #{bob}"
        assert person.date_of_birth is None and "bob" not in person.email
        account = session.scalars(select(User).where(User.person_id == bob)).one()
        assert not account.active and account.email is None and account.password_hash is None
        assert session.scalars(select(Document).where(Document.case_id == case_id)).all() == []
        steps = session.scalars(select(HumanTask).where(HumanTask.case_id == case_id)).all()
        assert steps and all(
            "complaint_relevance_reasons" not in (s.submitted_data or {}) for s in steps
        )
        assert all("record_disposed" in s.submitted_data for s in steps if s.submitted_data)
        assert COMPLAINT not in session.get(Case, case_id).state
    # The ended case still loads; what it recorded is gone.
    assert COMPLAINT not in json.dumps(engine.case_data(case_id))
    [disposed] = events(engine, case_id=case_id, action="record_disposed")
    assert disposed.actor == "manager"
    assert disposed.after["proposed_by"] == "quality" and disposed.after["person_anonymised"]
    assert len(disposed.after["documents_deleted"]) == 1
    assert "Bob" not in disposed.message and "Bob" not in json.dumps(disposed.after)
    assert [e.after for e in events(engine, action="person_anonymised")] == [{"person_id": bob}]
    assert verify(engine).ok


def test_person_with_other_undisposed_cases_is_not_anonymised(engine, clock):
    first = ended_complaint(engine, "bob")
    second = ended_complaint(engine, "bob")
    months_later(clock, 37)
    approve(engine, propose(engine, first))
    with engine.sessions() as session:
        assert session.get(Person, person_id(engine, "bob")).given_name == "Bob"
    assert approve(engine, propose(engine, second)).person_anonymised


def test_legal_hold_placed_after_the_proposal_blocks_the_approval(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    disposal = propose(engine, case_id)
    hold(engine, case_id, "manager", reason="a court asked for the file")
    with pytest.raises(ConflictError, match="legal hold"):
        approve(engine, disposal, "manager")
    assert events(engine, action="record_disposed") == []
    with engine.sessions() as session:
        assert session.scalars(select(Document).where(Document.case_id == case_id)).all() != []


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_retention_list_command_prints_due_records_as_json(engine, clock, capsys):
    case_id = ended_complaint(engine)
    held = ended_complaint(engine, "alice")
    hold(engine, held)
    later = datetime.combine(add_months(clock.now().date(), 37), clock.now().time())
    url = engine.db.url.render_as_string(hide_password=False)
    assert main(["--database", url, "retention", "list", "--json", "--now", later.isoformat()]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["count"] == 1
    assert [r["case_id"] for r in listed["records"]] == [case_id]
    assert listed["records"][0]["retention_months"] == 36
    assert main(["--database", url, "retention", "list", "--now", later.isoformat()]) == 0
    assert "1 record(s) due for disposal" in capsys.readouterr().out
