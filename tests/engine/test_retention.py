"""Records retention: per-scheme periods, legal holds, and disposal under four eyes that
anonymises, deletes documents, leaves tombstones and writes its audit events."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine.certificate_lifecycle import LifecycleChange, withdraw
from engine.certificates import add_months
from engine.cli import main
from engine.documents import attach_document
from engine.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from engine.evidence_pack import build_pack
from engine.models import (
    Case,
    Certificate,
    Document,
    HumanTask,
    Person,
    RecordDisposal,
    Scheme,
    User,
)
from engine.retention import (
    MAX_RETENTION_MONTHS,
    approve_disposal,
    due_for_disposal,
    proposals,
    propose_disposal,
    set_legal_hold,
    set_retention_period,
    withdraw_disposal,
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


def withdraw_proposal(engine, disposal_id: int, username: str = "manager", reason="keep it"):
    with engine.unit_of_work() as uow:
        return withdraw_disposal(uow, disposal_id, user(uow, username), reason)


def disposal_status(engine, disposal_id: int) -> str:
    with engine.sessions() as session:
        return session.get(RecordDisposal, disposal_id).status


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


def test_retention_longer_than_a_century_is_refused_and_nothing_changes(engine):
    with engine.sessions() as session:
        dpo = session.scalars(select(Scheme).where(Scheme.code == "DPO")).one().id
    with pytest.raises(ValidationError) as refused, engine.unit_of_work() as uow:
        set_retention_period(uow, dpo, user(uow, "quality"), MAX_RETENTION_MONTHS + 1)
    assert list(refused.value.fields) == ["retention_months"]
    with engine.unit_of_work() as uow:
        set_retention_period(uow, dpo, user(uow, "admin"), MAX_RETENTION_MONTHS)
    with engine.sessions() as session:
        assert session.get(Scheme, dpo).retention_months == MAX_RETENTION_MONTHS
    assert [e.actor for e in events(engine, action="retention_period_set")] == ["admin"]


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


# -- withdrawal --------------------------------------------------------------------------------------


def test_withdrawn_proposal_is_audited_and_its_case_is_due_again(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    disposal = propose(engine, case_id, "quality")
    # The proposer may withdraw their own proposal: keeping records needs no four eyes.
    assert withdraw_proposal(engine, disposal, "quality", "  the file is wanted  ").status == (
        "withdrawn"
    )
    assert disposal_status(engine, disposal) == "withdrawn"
    [withdrawn] = events(engine, case_id=case_id, action="disposal_withdrawn")
    assert withdrawn.actor == "quality"
    assert withdrawn.before == {"disposal_id": disposal, "status": "proposed"}
    assert withdrawn.after == {
        "disposal_id": disposal,
        "status": "withdrawn",
        "reason": "the file is wanted",
    }
    assert "the file is wanted" in withdrawn.message
    with engine.sessions() as session:
        assert proposals(session) == []
        [due] = due_for_disposal(session, engine.clock.now())
    assert due.case_id == case_id and due.proposal is None
    assert verify(engine).ok


def test_a_withdrawn_case_can_be_proposed_again_and_disposed_of(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    first = propose(engine, case_id, "quality")
    withdraw_proposal(engine, first)
    second = propose(engine, case_id, "manager")
    assert second != first
    with engine.sessions() as session:
        assert [p.id for p in proposals(session)] == [second]
    assert approve(engine, second, "quality").status == "disposed"
    assert disposal_status(engine, first) == "withdrawn"
    assert due_ids(engine) == []


def test_withdrawing_twice_or_approving_a_withdrawn_proposal_is_a_conflict(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    disposal = propose(engine, case_id, "quality")
    withdraw_proposal(engine, disposal)
    with pytest.raises(ConflictError, match="withdrawn, not proposed"):
        withdraw_proposal(engine, disposal, "quality")
    with pytest.raises(ConflictError, match="withdrawn, not proposed"):
        approve(engine, disposal, "manager")
    assert disposal_status(engine, disposal) == "withdrawn"
    assert len(events(engine, action="disposal_withdrawn")) == 1
    assert events(engine, action="record_disposed") == []
    with engine.sessions() as session:
        assert session.scalars(select(Document).where(Document.case_id == case_id)).all() != []


def test_a_disposed_proposal_cannot_be_withdrawn(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    disposal = propose(engine, case_id, "quality")
    approve(engine, disposal, "manager")
    with pytest.raises(ConflictError, match="disposed, not proposed"):
        withdraw_proposal(engine, disposal)
    assert disposal_status(engine, disposal) == "disposed"


@pytest.mark.parametrize("username", ["alice", "examiner", "clerk"])
def test_only_records_roles_withdraw_a_disposal_proposal(engine, clock, username):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    disposal = propose(engine, case_id)
    with pytest.raises(PermissionDenied):
        withdraw_proposal(engine, disposal, username)
    assert disposal_status(engine, disposal) == "proposed"
    assert events(engine, action="disposal_withdrawn") == []


def test_withdrawal_needs_a_reason_and_an_existing_proposal(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    disposal = propose(engine, case_id)
    for empty in ("", "   ", None):
        with pytest.raises(ValidationError) as refused:
            withdraw_proposal(engine, disposal, reason=empty)
        assert list(refused.value.fields) == ["reason"]
    with pytest.raises(NotFoundError):
        withdraw_proposal(engine, disposal + 1000)
    assert disposal_status(engine, disposal) == "proposed"
    assert events(engine, action="disposal_withdrawn") == []


def test_evidence_pack_lists_disposals_carried_out_not_withdrawn_proposals(engine, clock):
    kept = ended_complaint(engine, "bob")
    disposed = ended_complaint(engine, "alice")
    months_later(clock, 37)
    withdraw_proposal(engine, propose(engine, kept))
    carried_out = propose(engine, disposed)
    approve(engine, carried_out)
    today = clock.now().date()
    with zipfile.ZipFile(io.BytesIO(build_pack(engine, today, today))) as pack:
        rows = list(csv.DictReader(io.StringIO(pack.read("retention_disposals.csv").decode())))
    assert [(row["disposal_id"], row["case_id"]) for row in rows] == [
        (str(carried_out), str(disposed))
    ]


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
