"""Records pages: the public single-use feedback form, the feedback aggregates, records
retention (propose, approve under four eyes, withdraw, legal hold, retention periods) and the
evidence pack download,
each for the roles allowed and refused to the others."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.models import AuditEvent, Document, FeedbackResponse, Person, RecordDisposal, Scheme
from tests.engine.helpers import events, person_id
from tests.engine.test_appeals_complaints import decided_case
from tests.engine.test_feedback import feedback_token
from tests.engine.test_retention import ended_complaint, months_later
from tests.web.test_auth import csrf_token, login
from web import create_app


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def signed_in(app, username: str):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def post(client, path: str, data: dict, page: str):
    return client.post(path, data={"csrf_token": csrf_token(client, page), **data})


def scheme_row(engine, code: str) -> Scheme:
    with engine.sessions() as session:
        return session.scalars(select(Scheme).where(Scheme.code == code)).one()


def audit_count(engine) -> int:
    with engine.sessions() as session:
        return len(session.scalars(select(AuditEvent.id)).all())


def flashed_errors(client) -> list[str]:
    with client.session_transaction() as session:
        return [message for category, message in session.get("_flashes", []) if category == "error"]


# -- feedback -----------------------------------------------------------------------------------


def test_feedback_link_opens_a_form_without_login_and_takes_one_answer(engine, client):
    token = feedback_token(engine, decided_case(engine, "alice"))
    page = client.get(f"/feedback/{token}")
    assert page.status_code == 200 and "How did we do?" in page.get_data(as_text=True)
    answer = {"overall_rating": "5", "clarity_rating": "4", "comment": "Well run."}
    done = post(client, f"/feedback/{token}", answer, f"/feedback/{token}")
    assert done.status_code == 200 and "Thank you" in done.get_data(as_text=True)
    again = client.get(f"/feedback/{token}")
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    resent = client.post(f"/feedback/{token}", data={**answer, "csrf_token": "x"})
    assert resent.status_code in (400, 410)
    with engine.sessions() as session:
        assert len(session.scalars(select(FeedbackResponse)).all()) == 1


def test_feedback_form_names_the_fields_it_refuses(engine, client):
    token = feedback_token(engine, decided_case(engine, "alice"))
    refused = post(
        client,
        f"/feedback/{token}",
        {"overall_rating": "9", "clarity_rating": "", "comment": "x" * 2001},
        f"/feedback/{token}",
    )
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "choose your overall rating from 1 to 5" in body
    assert "choose how clear the process was from 1 to 5" in body
    assert "keep the comment to 2,000 characters" in body


def test_expired_and_unknown_feedback_links_say_so(engine, client, clock):
    token = feedback_token(engine, decided_case(engine, "alice"))
    assert client.get("/feedback/not-a-real-token").status_code == 404
    clock.set(clock.now() + timedelta(days=61))
    expired = client.get(f"/feedback/{token}")
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)


def test_feedback_aggregates_are_for_managers_and_quality_managers(engine, app):
    token = feedback_token(engine, decided_case(engine, "alice"))
    anonymous = app.test_client()
    post(
        anonymous,
        f"/feedback/{token}",
        {"overall_rating": "3", "clarity_rating": "2"},
        f"/feedback/{token}",
    )
    for username in ("manager", "quality"):
        page = signed_in(app, username).get("/records/feedback")
        body = page.get_data(as_text=True)
        assert page.status_code == 200 and "DPO" in body and "3.00" in body and "2.00" in body
    for username in ("clerk", "alice", "admin"):
        assert signed_in(app, username).get("/records/feedback").status_code == 403
    assert signed_in(app, "manager").get("/records/feedback?from=2026-99-01").status_code == 400


# -- retention ----------------------------------------------------------------------------------------


def test_retention_page_proposes_and_a_second_person_approves(engine, app, clock):
    case_id = ended_complaint(engine, "bob")
    bob = person_id(engine, "bob")
    months_later(clock, 37)
    quality = signed_in(app, "quality")
    page = quality.get("/records/retention")
    assert page.status_code == 200 and f"#{case_id}" in page.get_data(as_text=True)
    proposed = post(
        quality, "/records/retention/propose", {"case_id": str(case_id)}, "/records/retention"
    )
    assert proposed.status_code == 303
    with engine.sessions() as session:
        disposal = session.scalars(select(RecordDisposal)).one()
    own = post(quality, f"/records/retention/{disposal.id}/approve", {}, "/records/retention")
    assert own.status_code == 303
    assert "four eyes" in quality.get("/records/retention").get_data(as_text=True)
    manager = signed_in(app, "manager")
    approved = post(manager, f"/records/retention/{disposal.id}/approve", {}, "/records/retention")
    assert approved.status_code == 303
    with engine.sessions() as session:
        assert session.get(RecordDisposal, disposal.id).status == "disposed"
        assert session.get(Person, bob).given_name == "Disposed person"
        assert session.scalars(select(Document).where(Document.case_id == case_id)).all() == []


def test_legal_hold_from_the_page_blocks_approval(engine, app, clock):
    case_id = ended_complaint(engine, "bob")
    months_later(clock, 37)
    quality = signed_in(app, "quality")
    post(quality, "/records/retention/propose", {"case_id": str(case_id)}, "/records/retention")
    manager = signed_in(app, "manager")
    held = post(
        manager,
        "/records/retention/hold",
        {"case_id": str(case_id), "reason": "court order", "action": "place"},
        "/records/retention",
    )
    assert held.status_code == 303
    with engine.sessions() as session:
        disposal = session.scalars(select(RecordDisposal)).one()
    refused = post(manager, f"/records/retention/{disposal.id}/approve", {}, "/records/retention")
    assert refused.status_code == 303
    assert "legal hold" in manager.get("/records/retention").get_data(as_text=True)
    assert engine.case(case_id).legal_hold
    bob = person_id(engine, "bob")
    with engine.sessions() as session:
        assert session.get(RecordDisposal, disposal.id).status == "proposed"
        assert session.get(Person, bob).given_name == "Bob"


def test_retention_forms_name_the_field_they_refuse(engine, app):
    quality = signed_in(app, "quality")
    bad = post(quality, "/records/retention/propose", {"case_id": "abc"}, "/records/retention")
    assert bad.status_code == 422 and "enter the case number" in bad.get_data(as_text=True)
    no_reason = post(
        quality,
        "/records/retention/hold",
        {"case_id": "1", "reason": "", "action": "place"},
        "/records/retention",
    )
    assert no_reason.status_code == 422 and "say why" in no_reason.get_data(as_text=True)


def test_a_proposal_is_withdrawn_from_the_page_and_the_case_is_due_again(engine, app, clock):
    case_id = ended_complaint(engine, "bob")
    months_later(clock, 37)
    quality = signed_in(app, "quality")
    post(quality, "/records/retention/propose", {"case_id": str(case_id)}, "/records/retention")
    with engine.sessions() as session:
        disposal = session.scalars(select(RecordDisposal)).one()
    withdraw_url = f"/records/retention/{disposal.id}/withdraw"
    assert f'action="{withdraw_url}"' in quality.get("/records/retention").get_data(as_text=True)
    no_reason = post(quality, withdraw_url, {"reason": " "}, "/records/retention")
    assert no_reason.status_code == 422 and "say why" in no_reason.get_data(as_text=True)
    with engine.sessions() as session:
        assert session.get(RecordDisposal, disposal.id).status == "proposed"
    # The proposer may withdraw their own proposal.
    withdrawn = post(quality, withdraw_url, {"reason": "the file is wanted"}, "/records/retention")
    assert withdrawn.status_code == 303
    with engine.sessions() as session:
        assert session.get(RecordDisposal, disposal.id).status == "withdrawn"
    [event] = events(engine, case_id=case_id, action="disposal_withdrawn")
    assert event.actor == "quality" and event.after["reason"] == "the file is wanted"
    page = quality.get("/records/retention").get_data(as_text=True)
    assert "No disposal is waiting for approval." in page
    assert f'name="case_id" value="{case_id}"' in page  # due again: "Propose disposal" is back
    again = post(
        manager := signed_in(app, "manager"), withdraw_url, {"reason": "x"}, "/records/retention"
    )
    assert again.status_code == 303 and "withdrawn, not proposed" in " ".join(
        flashed_errors(manager)
    )
    assert len(events(engine, action="disposal_withdrawn")) == 1


def test_quality_manager_sets_a_scheme_retention_period_from_the_page(engine, app):
    dpo = scheme_row(engine, "DPO")
    quality = signed_in(app, "quality")
    page = quality.get("/records/retention").get_data(as_text=True)
    assert "Retention periods" in page and 'action="/records/retention/period"' in page
    done = post(
        quality,
        "/records/retention/period",
        {"scheme_id": str(dpo.id), "months": "60"},
        "/records/retention",
    )
    assert done.status_code == 303
    assert scheme_row(engine, "DPO").retention_months == 60
    assert scheme_row(engine, "CWI").retention_months == 48
    [event] = events(engine, action="retention_period_set")
    assert event.actor == "quality"
    assert event.before == {"scheme_id": dpo.id, "retention_months": 36}
    assert event.after == {"scheme_id": dpo.id, "retention_months": 60}
    page = quality.get("/records/retention").get_data(as_text=True)
    assert "<td>60 months</td>" in page and "now kept 60 months" in page


def test_manager_without_quality_role_is_refused_setting_a_retention_period(engine, app):
    dpo = scheme_row(engine, "DPO")
    manager = signed_in(app, "manager")
    page = manager.get("/records/retention").get_data(as_text=True)
    assert "Retention periods" in page and "<td>36 months</td>" in page
    assert 'action="/records/retention/period"' not in page and 'name="months"' not in page
    before = audit_count(engine)
    refused = post(
        manager,
        "/records/retention/period",
        {"scheme_id": str(dpo.id), "months": "60"},
        "/records/retention",
    )
    assert refused.status_code == 303 and refused.headers["Location"].endswith("/records/retention")
    assert "only a quality manager or an administrator may set retention" in " ".join(
        flashed_errors(manager)
    )
    assert scheme_row(engine, "DPO").retention_months == 36
    assert audit_count(engine) == before


@pytest.mark.parametrize(
    ("months", "message"),
    [
        ("", "enter the number of months as a whole number"),
        ("sixty", "enter the number of months as a whole number"),
        ("4.5", "enter the number of months as a whole number"),
        ("-40", "enter the number of months as a whole number"),
        ("²", "enter the number of months as a whole number"),
        ("9" * 40, "enter the number of months as a whole number"),
        ("23", "must be at least 24 months"),
        ("1201", "must be at most 1200 months"),
    ],
)
def test_retention_period_form_names_the_months_it_refuses(engine, app, months, message):
    dpo = scheme_row(engine, "DPO")
    quality = signed_in(app, "quality")
    before = audit_count(engine)
    refused = post(
        quality,
        "/records/retention/period",
        {"scheme_id": str(dpo.id), "months": months},
        "/records/retention",
    )
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert f'<p class="field-error">Months: {message}' in body
    assert scheme_row(engine, "DPO").retention_months == 36
    assert audit_count(engine) == before


@pytest.mark.parametrize("scheme_id", ["999999", "abc", ""])
def test_retention_period_form_refuses_an_unknown_scheme(engine, app, scheme_id):
    quality = signed_in(app, "quality")
    before = audit_count(engine)
    refused = post(
        quality,
        "/records/retention/period",
        {"scheme_id": scheme_id, "months": "60"},
        "/records/retention",
    )
    assert refused.status_code == 422
    assert "choose a scheme from the table" in refused.get_data(as_text=True)
    assert {s.retention_months for s in (scheme_row(engine, "DPO"), scheme_row(engine, "CWI"))} == {
        36,
        48,
    }
    assert audit_count(engine) == before


@pytest.mark.parametrize("username", ["clerk", "alice", "admin", "decider"])
def test_retention_pages_are_refused_to_other_roles(engine, app, username):
    client = signed_in(app, username)
    assert client.get("/records/retention").status_code == 403
    token = csrf_token(client, "/impartiality/declarations" if username != "alice" else "/portal")
    for path in (
        "/records/retention/propose",
        "/records/retention/hold",
        "/records/retention/1/approve",
        "/records/retention/1/withdraw",
        "/records/retention/period",
    ):
        form = {
            "csrf_token": token,
            "case_id": "1",
            "reason": "r",
            "scheme_id": "1",
            "months": "60",
        }
        assert client.post(path, data=form).status_code == 403


# -- the evidence pack -------------------------------------------------------------------------------


def test_manager_downloads_the_evidence_pack(engine, app, clock):
    decided_case(engine, "alice")
    manager = signed_in(app, "manager")
    assert manager.get("/records/evidence-pack").status_code == 200
    today = clock.now().date().isoformat()
    response = manager.get(f"/records/evidence-pack.zip?from={today}&to={today}")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.data)) as pack:
        assert "README.txt" in pack.namelist() and "appeals_log.csv" in pack.namelist()
    assert manager.get(f"/records/evidence-pack.zip?from={today}&to=2020-01-01").status_code == 400
    assert manager.get("/records/evidence-pack.zip?from=nonsense&to=x").status_code == 400
    # Without a period the form is shown to choose one.
    assert manager.get("/records/evidence-pack.zip").status_code == 303


@pytest.mark.parametrize("username", ["clerk", "alice", "owner"])
def test_evidence_pack_is_refused_to_other_roles(engine, app, username):
    client = signed_in(app, username)
    assert client.get("/records/evidence-pack").status_code == 403
    assert client.get("/records/evidence-pack.zip").status_code == 403


def test_anonymous_users_are_sent_to_log_in(client):
    for path in ("/records/retention", "/records/feedback", "/records/evidence-pack.zip"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
