"""Case pages: list and search, CSV export, one case in full, document downloads."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from engine.documents import attach_document
from engine.models import Case, User
from tests.engine.helpers import (
    certificates,
    do,
    drive_to_decision,
    start_application,
)
from tests.web.test_auth import login
from web import create_app
from web.cases import csv_cell


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def alice_case(engine):
    case_id = start_application(engine)
    do(engine, case_id, "submit_application", "alice")
    do(engine, case_id, "check_completeness")
    return case_id


def add_document(engine, case_id: int, username: str = "alice") -> int:
    from sqlalchemy import select

    with engine.unit_of_work() as uow:
        user = uow.session.scalars(select(User).where(User.username == username)).one()
        case = uow.session.get(Case, case_id)
        doc = attach_document(uow, case, user, "cv.txt", "text/plain", b"Curriculum vitae")
        return doc.id


def test_anonymous_and_applicants_are_kept_out_of_the_case_list(client, alice_case):
    assert "/login" in client.get("/cases").headers["Location"]
    assert "/login" in client.get(f"/cases/{alice_case}").headers["Location"]
    login(client, "alice")
    assert client.get("/cases").status_code == 403
    assert client.get("/cases.csv").status_code == 403


def test_applicant_sees_her_own_case_but_not_anyone_elses(client, engine, alice_case):
    bobs = start_application(engine, "bob", "DPO")
    login(client, "alice")
    page = client.get(f"/cases/{alice_case}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Alice Applicant" in html and "Submit application" in html
    # Staff forms stay with staff; the applicant reads back her own form.
    assert "Completeness notes" not in html
    assert client.get(f"/cases/{bobs}").status_code == 404


def test_case_page_shows_diagrams_timeline_forms_and_markers(client, alice_case):
    login(client, "reviewer")
    page = client.get(f"/cases/{alice_case}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-src="/models/application/v1.bpmn"' in html
    assert "/vendor/bpmn-js/bpmn-viewer.production.min.js" in html
    markers = json.loads(
        re.search(
            r'<script type="application/json" id="diagram-markers">(.*?)</script>', html, re.S
        ).group(1)
    )["processes"]
    assert markers["application"]["completed"] == ["check_completeness", "submit_application"]
    assert markers["application"]["current"] == ["review_eligibility"]
    assert "Application completeness check" in html or "Check application completeness" in html
    assert "Application is complete" in html  # the form's field title, not its key
    assert "Clara Clerk" in html
    assert "case started" in html and "task completed" in html  # timeline
    assert "Review eligibility" in html


def test_case_in_a_called_process_shows_its_diagram_too(client, engine):
    case_id = start_application(engine)
    drive_to_decision(engine, case_id)
    do(engine, case_id, "decide_certification")
    login(client, "manager")
    html = client.get(f"/cases/{case_id}").get_data(as_text=True)
    for process_id in ("application", "assessment", "decision"):
        assert f'data-src="/models/{process_id}/v1.bpmn"' in html
    number = certificates(engine, case_id)[0].number
    assert number in html and "active" in html
    found = client.get(f"/cases?certificate={number}").get_data(as_text=True)
    assert f'href="/cases/{case_id}"' in found


def test_staff_without_a_part_in_the_case_get_404(client, alice_case):
    login(client, "examiner")
    assert client.get(f"/cases/{alice_case}").status_code == 404


def test_bad_ids_are_404(client, alice_case):
    login(client, "manager")
    assert client.get("/cases/abc").status_code == 404
    assert client.get("/cases/999999").status_code == 404
    assert client.get("/documents/0").status_code == 404
    assert client.get("/documents/abc").status_code == 404


def test_case_list_search_and_filters(client, engine, alice_case):
    bobs = start_application(engine, "bob", "DPO")
    login(client, "manager")
    html = client.get("/cases").get_data(as_text=True)
    assert f'href="/cases/{alice_case}"' in html and f'href="/cases/{bobs}"' in html
    html = client.get("/cases?q=alice").get_data(as_text=True)
    assert f'href="/cases/{alice_case}"' in html and f'href="/cases/{bobs}"' not in html
    html = client.get("/cases?q=Bob+Builder").get_data(as_text=True)
    assert f'href="/cases/{bobs}"' in html and f'href="/cases/{alice_case}"' not in html
    html = client.get("/cases?scheme=DPO&status=running&process=application")
    assert f'href="/cases/{bobs}"' in html.get_data(as_text=True)
    assert "No cases" in client.get("/cases?status=completed").get_data(as_text=True)
    assert "No cases" in client.get("/cases?q=%25").get_data(as_text=True)
    assert client.get("/cases?status=sleeping").status_code == 400
    assert client.get("/cases?page=abc").status_code == 400


def test_case_list_shows_only_visible_cases(client, engine, alice_case):
    login(client, "examiner")
    html = client.get("/cases").get_data(as_text=True)
    assert f'href="/cases/{alice_case}"' not in html


def test_csv_export_has_the_filtered_cases_and_defuses_formulas(client, engine, alice_case):
    user = engine.register_applicant("=HYPERLINK(1)", "+Evil", "evil@example.org", None, "evil")
    evil_case = engine.start_case(
        "application", actor="evil", person_id=user.person_id, scheme_code="DPO"
    ).case_id
    login(client, "manager")
    response = client.get("/cases.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["case_id", "process", "status", "person"]
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id[str(alice_case)][3] == "Alice Applicant"
    assert by_id[str(alice_case)][7] == "Review eligibility"
    assert by_id[str(evil_case)][3] == "'=HYPERLINK(1) +Evil"
    filtered = client.get("/cases.csv?scheme=CWI").get_data(as_text=True)
    assert [r[0] for r in csv.reader(io.StringIO(filtered))][1:] == [str(alice_case)]


def test_csv_cell_guard():
    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("-2") == "'-2"
    assert csv_cell("@SUM") == "'@SUM"
    assert csv_cell("+x") == "'+x"
    assert csv_cell("plain") == "plain"
    assert csv_cell(None) == ""
    assert csv_cell(12) == "12"


def test_documents_are_downloadable_only_by_those_who_see_the_case(app, engine, alice_case):
    doc_id = add_document(engine, alice_case)
    alice = app.test_client()
    login(alice, "alice")
    response = alice.get(f"/documents/{doc_id}")
    assert response.status_code == 200
    assert response.data == b"Curriculum vitae"
    assert response.headers["Content-Disposition"] == 'attachment; filename="cv.txt"'
    assert "cv.txt" in alice.get(f"/cases/{alice_case}").get_data(as_text=True)
    bob = app.test_client()
    login(bob, "bob")
    assert bob.get(f"/documents/{doc_id}").status_code == 404
    reviewer = app.test_client()
    login(reviewer, "reviewer")
    assert reviewer.get(f"/documents/{doc_id}").status_code == 200
