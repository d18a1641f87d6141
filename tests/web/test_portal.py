"""The applicant portal: registration, applying, own cases, documents, the certificate,
appeals and complaints. Real engine, both databases, Flask test client."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from engine.demo import DEMO_PASSWORD
from engine.documents import MAX_DOCUMENT_BYTES
from engine.models import Case, CaseLink, Document, Person, User
from tests.engine.helpers import do, drive_to_decision, events, start_application
from web import create_app

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, username: str, password: str = DEMO_PASSWORD):
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def post(client, path: str, data: dict | None = None, **kwargs):
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client, "/login"))
    return client.post(path, data=data, **kwargs)


def text(response) -> str:
    return response.get_data(as_text=True)


def field_error(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error"[^>]*>([^<]*)<', html)
    return found.group(1) if found else ""


def granted_case(engine, applicant: str = "alice", scheme: str = "DPO") -> int:
    case_id = start_application(engine, applicant, scheme)
    drive_to_decision(engine, case_id, applicant, has_practical=scheme == "CWI")
    do(engine, case_id, "decide_certification")
    return case_id


# -- registration ---------------------------------------------------------------------

VALID = {
    "given_name": "Greta",
    "family_name": "Garcia",
    "email": "Greta@Example.org",
    "password": "long-enough-pw",
    "password_confirm": "long-enough-pw",
}


def test_login_page_links_to_registration(client):
    assert 'href="/register"' in text(client.get("/login"))


def test_registration_signs_the_applicant_in_and_opens_the_portal(client, engine):
    response = post(client, "/register", VALID)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/portal")
    page = text(client.get("/portal"))
    assert "Greta Garcia" in page
    assert "Apply for a certification" in page
    user = engine.user("greta@example.org")
    assert user.person_id is not None
    assert user.role_names == {"applicant"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("given_name", "  ", "Given name is required"),
        ("family_name", "", "Family name is required"),
        ("email", "not-an-address", "E-mail address is not valid"),
        ("password", "short", "at least 10 characters"),
        ("password_confirm", "", "Repeat your password"),
        ("password_confirm", "different-pw-1", "not the same"),
    ],
)
def test_registration_shows_each_fields_error_next_to_it(client, engine, field, value, message):
    response = post(client, "/register", {**VALID, field: value})
    assert response.status_code == 422
    html = text(response)
    assert message in field_error(html, field)
    others = [f for f in VALID if f != field and not (field == "password" and f.startswith("pass"))]
    assert all(not field_error(html, f) for f in others)
    # What was typed is kept, passwords are not.
    if field != "given_name":
        assert 'value="Greta"' in html
    assert "long-enough-pw" not in html
    with engine.sessions() as session:
        assert session.scalar(select(Person).where(Person.family_name == "Garcia")) is None


def test_registration_shows_every_problem_at_once(client):
    response = post(client, "/register", {"csrf_token": csrf_token(client, "/register")})
    html = text(response)
    for field in ("given_name", "family_name", "email", "password", "password_confirm"):
        assert field_error(html, field), field


def test_duplicate_email_is_refused_on_the_email_field(client, engine):
    response = post(client, "/register", {**VALID, "email": "ALICE@example.org"})
    assert response.status_code == 422
    assert "already exists" in field_error(text(response), "email")
    with engine.sessions() as session:
        assert session.scalar(select(User).where(User.username == "alice@example.org")) is None


def test_registration_needs_the_csrf_token(client):
    response = client.post("/register", data=VALID)
    assert response.status_code == 400


# -- portal and applying -------------------------------------------------------------


def test_portal_is_for_applicants_only(client):
    assert client.get("/portal").status_code == 302  # to the login page
    login(client, "clerk")
    assert client.get("/portal").status_code == 403


def test_apply_starts_a_case_waiting_for_the_applicant(client, engine):
    login(client, "alice")
    response = post(client, "/portal/apply", {"scheme": "DPO"})
    assert response.status_code == 303
    with engine.sessions() as session:
        case = session.scalars(select(Case).order_by(Case.id.desc())).first()
        alice = session.scalar(select(User).where(User.username == "alice"))
    assert case.process_id == "application"
    assert case.person_id == alice.person_id
    assert response.headers["Location"].endswith(f"/portal/cases/{case.id}")
    [task] = engine.ready_tasks(case.id)
    portal = text(client.get("/portal"))
    assert "waiting for you to submit" in portal
    assert "Data Protection Officer" in portal
    assert f'href="/tasks/{task.id}"' in portal
    started = events(engine, case_id=case.id, action="case_started")
    assert started[0].actor == "alice"


def test_second_open_application_for_the_same_scheme_is_refused(client, engine):
    login(client, "alice")
    post(client, "/portal/apply", {"scheme": "DPO"})
    response = post(client, "/portal/apply", {"scheme": "DPO"}, follow_redirects=True)
    assert "already have an open application for Data Protection Officer" in text(response)
    with engine.sessions() as session:
        assert len(session.scalars(select(Case)).all()) == 1
    # Another scheme is fine.
    post(client, "/portal/apply", {"scheme": "CWI"})
    with engine.sessions() as session:
        assert len(session.scalars(select(Case)).all()) == 2


def test_unknown_scheme_is_refused(client, engine):
    login(client, "alice")
    response = post(client, "/portal/apply", {"scheme": "NOPE"}, follow_redirects=True)
    assert "is not a scheme" in text(response)


def test_engine_refuses_a_second_open_application_too(engine):
    from engine.errors import ConflictError

    engine.apply_for_certification("bob", "CWI")
    with pytest.raises(ConflictError):
        engine.apply_for_certification("bob", "CWI")


# -- own cases only -----------------------------------------------------------------


def test_applicant_sees_own_case_and_not_anothers(client, engine):
    mine = start_application(engine, "alice", "DPO")
    theirs = start_application(engine, "bob", "DPO")
    login(client, "alice")
    page = client.get(f"/portal/cases/{mine}")
    assert page.status_code == 200
    assert "waiting for you to submit" in text(page)
    assert client.get(f"/portal/cases/{theirs}").status_code == 404
    assert client.get("/portal/cases/999999").status_code == 404
    upload = post(
        client,
        f"/portal/cases/{theirs}/documents",
        {"file": (io.BytesIO(PDF), "cv.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 404
    assert post(client, f"/portal/cases/{theirs}/appeal", {"text": "x" * 40}).status_code == 404


# -- documents ------------------------------------------------------------------------


def upload(client, case_id: int, content: bytes, name: str, content_type: str):
    return post(
        client,
        f"/portal/cases/{case_id}/documents",
        {"file": (io.BytesIO(content), name, content_type)},
        content_type="multipart/form-data",
    )


def documents(engine, case_id: int) -> list[Document]:
    with engine.sessions() as session:
        return list(session.scalars(select(Document).where(Document.case_id == case_id)))


def test_upload_is_accepted_and_listed(client, engine):
    case_id = start_application(engine, "alice", "DPO")
    login(client, "alice")
    response = upload(client, case_id, PDF, "diploma.pdf", "application/pdf")
    assert response.status_code == 303
    [document] = documents(engine, case_id)
    assert document.filename == "diploma.pdf"
    assert document.size == len(PDF)
    assert "diploma.pdf" in text(client.get(f"/portal/cases/{case_id}"))


@pytest.mark.parametrize(
    ("content", "name", "content_type", "message"),
    [
        (b"MZ\x90\x00", "tool.exe", "application/x-msdownload", "are not accepted"),
        (b"", "empty.pdf", "application/pdf", "the file is empty"),
        (b"<html>not a pdf</html>", "disguised.pdf", "application/pdf", "content is not"),
        (PNG, "picture.pdf", "image/png", "must end with .png"),
        (b"x" * (MAX_DOCUMENT_BYTES + 1), "big.txt", "text/plain", "larger than 10 MB"),
    ],
    ids=["wrong-type", "empty", "disguised", "wrong-extension", "too-big"],
)
def test_upload_is_refused_with_the_reason_next_to_the_field(
    client, engine, content, name, content_type, message
):
    case_id = start_application(engine, "alice", "DPO")
    login(client, "alice")
    response = upload(client, case_id, content, name, content_type)
    assert response.status_code == 422
    assert message in field_error(text(response), "file")
    assert documents(engine, case_id) == []


def test_upload_without_a_file_asks_for_one(client, engine):
    case_id = start_application(engine, "alice", "DPO")
    login(client, "alice")
    response = post(client, f"/portal/cases/{case_id}/documents", {})
    assert response.status_code == 422
    assert "Choose a file" in field_error(text(response), "file")


def test_body_over_the_request_limit_gets_a_friendly_413(app, client, engine):
    case_id = start_application(engine, "alice", "DPO")
    login(client, "alice")
    token = csrf_token(client, f"/portal/cases/{case_id}")
    body = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = client.post(
        f"/portal/cases/{case_id}/documents",
        data={"csrf_token": token, "file": (io.BytesIO(body), "huge.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    html = text(response)
    assert "too large" in field_error(html, "file")
    assert "Documents" in html  # still the case page
    assert documents(engine, case_id) == []


# -- the certificate ----------------------------------------------------------------


def certificate_number(engine, case_id: int) -> str:
    from tests.engine.helpers import certificates

    [certificate] = certificates(engine, case_id)
    return certificate.number


def test_certified_applicant_sees_certified_and_the_printable_certificate(client, engine):
    case_id = granted_case(engine, "alice", "DPO")
    number = certificate_number(engine, case_id)
    login(client, "alice")
    portal = text(client.get("/portal"))
    assert "Certified" in portal
    assert f'href="/certificates/{number}"' in portal
    page = client.get(f"/certificates/{number}")
    assert page.status_code == 200
    html = text(page)
    for expected in (
        "Alice Applicant",
        "Data Protection Officer",
        "Advising and monitoring compliance",
        number,
        "02 March 2026",  # issued (the test clock)
        "02 March 2028",  # valid until: 24 months
        "cert-badge cert-active",
    ):
        assert expected in html, expected
    assert f"http://localhost/verify?number={number}" in html
    assert "<svg" in html  # the QR code
    assert "alice@example.org" not in html


def test_certificate_page_is_for_the_holder_and_staff_on_her_cases_only(client, engine):
    number = certificate_number(engine, granted_case(engine, "alice", "DPO"))
    assert client.get(f"/certificates/{number}").status_code == 302  # log in first
    login(client, "bob")
    assert client.get(f"/certificates/{number}").status_code == 404
    post(client, "/logout")
    login(client, "owner")  # staff, but with no step on any of alice's cases
    assert client.get(f"/certificates/{number}").status_code == 404
    post(client, "/logout")
    login(client, "clerk")  # checked her application
    assert client.get(f"/certificates/{number}").status_code == 200


def test_print_stylesheet_hides_the_navigation(client):
    css = text(client.get("/static/portal.css"))
    assert "@media print" in css
    assert "header.topbar" in css


# -- appeals and complaints ---------------------------------------------------------

GROUNDS = "The examiner marked question 4 against an outdated version of the scheme."


def linked_cases(engine, to_case_id: int, process_id: str) -> list[Case]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(Case)
                .join(CaseLink, CaseLink.from_case_id == Case.id)
                .where(CaseLink.to_case_id == to_case_id, Case.process_id == process_id)
            )
        )


def test_appeal_starts_an_appeal_case_linked_to_the_decided_case(client, engine):
    case_id = granted_case(engine, "alice", "DPO")
    login(client, "alice")
    assert "Appeal against the decision" in text(client.get(f"/portal/cases/{case_id}"))
    assert client.get(f"/portal/cases/{case_id}/appeal").status_code == 200
    response = post(client, f"/portal/cases/{case_id}/appeal", {"text": GROUNDS})
    assert response.status_code == 200
    assert "Your appeal has been received" in text(response)
    [appeal] = linked_cases(engine, case_id, "appeal")
    assert appeal.status == "running"
    assert appeal.person_id == engine.user("alice").person_id
    assert [t.task_spec_id for t in engine.ready_tasks(appeal.id)] == ["acknowledge_appeal"]
    assert engine.case_data(appeal.id)["appeal_grounds"] == GROUNDS
    [event] = events(engine, case_id=case_id, action="appeal_lodged")
    assert event.actor == "alice"
    # The grounds are a document on the appeal, where the clerk and the panel read them.
    [document] = [d for d in documents(engine, appeal.id) if d.filename.startswith("appeal-")]
    assert document.content_type == "text/plain"
    assert event.after == {"appeal_case_id": appeal.id, "document_id": document.id}
    with engine.sessions() as session:
        assert session.get(Document, document.id).content.decode() == GROUNDS
    # The appellant follows the appeal in the portal; a second appeal waits for the first.
    assert "Your appeal has been received" in text(client.get(f"/portal/cases/{appeal.id}"))
    again = post(client, f"/portal/cases/{case_id}/appeal", {"text": GROUNDS})
    assert again.status_code == 422
    assert "already under appeal" in field_error(text(again), "text")


def test_appeal_needs_grounds_and_a_decision(client, engine):
    running = start_application(engine, "alice", "DPO")
    login(client, "alice")
    response = post(client, f"/portal/cases/{running}/appeal", {"text": GROUNDS})
    assert response.status_code == 422
    assert "once a decision has been made" in field_error(text(response), "text")
    decided = granted_case(engine, "alice", "CWI")
    response = post(client, f"/portal/cases/{decided}/appeal", {"text": "too short"})
    assert response.status_code == 422
    assert "at least 20 characters" in field_error(text(response), "text")
    assert events(engine, action="appeal_lodged") == []
    with engine.sessions() as session:
        assert session.scalars(select(Case).where(Case.process_id == "appeal")).all() == []


def test_complaint_starts_a_complaint_case_about_the_chosen_case(client, engine):
    case_id = start_application(engine, "alice", "DPO")
    login(client, "alice")
    form = text(client.get(f"/portal/complaint?case={case_id}"))
    assert f'<option value="{case_id}" selected>' in form
    complaint = "Nobody answered my e-mails about the exam date for three weeks."
    response = post(client, "/portal/complaint", {"case_id": str(case_id), "text": complaint})
    assert response.status_code == 200
    assert "Your complaint has been received" in text(response)
    [opened] = linked_cases(engine, case_id, "complaint")
    assert opened.status == "running"
    assert [t.task_spec_id for t in engine.ready_tasks(opened.id)] == ["confirm_relevance"]
    assert engine.case_data(opened.id)["complaint_text"] == complaint
    [event] = events(engine, case_id=case_id, action="complaint_lodged")
    [document] = documents(engine, opened.id)
    assert event.after == {"complaint_case_id": opened.id, "document_id": document.id}
    assert document.content_type == "text/plain"
    assert documents(engine, case_id) == []


def test_complaint_needs_a_case_and_text(client, engine):
    other = start_application(engine, "bob", "DPO")
    login(client, "alice")
    response = post(client, "/portal/complaint", {"text": ""})
    assert response.status_code == 422
    assert "Choose the case" in field_error(text(response), "case_id")
    assert (
        post(client, "/portal/complaint", {"case_id": str(other), "text": GROUNDS}).status_code
        == 404
    )
    assert events(engine, action="complaint_lodged") == []
    with engine.sessions() as session:
        assert session.scalars(select(Case).where(Case.process_id == "complaint")).all() == []
