"""Staff record an appeal or complaint received outside the portal, from the case page."""

from __future__ import annotations

import re

import pytest

from engine.demo import DEMO_PASSWORD
from engine.models import CaseLink
from tests.engine.helpers import do, drive_to_decision, start_application
from web import create_app


def client_for(engine, username):
    app = create_app({"ENGINE": engine, "TESTING": True})
    client = app.test_client()
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)
    ).group(1)
    client.post(
        "/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token}
    )
    return client


def post(client, url, **data):
    page = client.get("/models").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client.post(url, data={**data, "csrf_token": token})


@pytest.fixture
def decided_case(engine):
    case_id = start_application(engine, "alice")
    drive_to_decision(engine, case_id)
    do(engine, case_id, "decide_certification")
    return case_id


def test_clerk_starts_an_appeal_linked_to_the_decided_case(engine, decided_case):
    clerk = client_for(engine, "clerk")
    assert "Record an appeal or complaint" in clerk.get(f"/cases/{decided_case}").get_data(
        as_text=True
    )
    response = post(
        clerk,
        f"/cases/{decided_case}/appeal",
        text="The practical exam was marked against the wrong criteria.",
    )
    assert response.status_code == 303
    appeal_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    assert engine.case(appeal_id).process_id == "appeal"
    assert engine.case(appeal_id).person_id == engine.case(decided_case).person_id
    with engine.sessions() as session:
        link = session.query(CaseLink).filter_by(from_case_id=appeal_id).one()
    assert (link.kind, link.to_case_id) == ("appeals", decided_case)
    assert [t.task_spec_id for t in engine.ready_tasks(appeal_id)] == ["acknowledge_appeal"]


def test_complaint_text_too_short_is_refused_with_a_message(engine, decided_case):
    clerk = client_for(engine, "clerk")
    response = post(clerk, f"/cases/{decided_case}/complaint", text="bad")
    assert response.status_code == 422


def test_staff_without_a_lodging_role_cannot_start_one(engine, decided_case):
    reviewer = client_for(engine, "reviewer")
    assert "Record an appeal or complaint" not in reviewer.get(f"/cases/{decided_case}").get_data(
        as_text=True
    )
    response = post(
        reviewer,
        f"/cases/{decided_case}/complaint",
        text="A complaint long enough to be accepted here.",
    )
    assert response.status_code == 403
