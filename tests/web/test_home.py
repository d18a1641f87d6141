"""The procedures page, the model source endpoint and the error pages."""

from __future__ import annotations

import re

import pytest

from engine.demo import DEMO_PASSWORD
from web import create_app


@pytest.fixture
def client(engine):
    app = create_app({"ENGINE": engine, "TESTING": True})
    return app.test_client()


@pytest.fixture
def staff(client):
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    client.post(
        "/login", data={"username": "clerk", "password": DEMO_PASSWORD, "csrf_token": token}
    )
    return client


def test_home_lists_every_published_model_with_its_version(staff):
    page = staff.get("/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for process_id in ("application", "assessment", "decision"):
        assert f"{process_id} v1" in html
    assert "Running cases" in html


def test_procedures_are_for_signed_in_staff(client):
    response = client.get("/models")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_model_source_is_served_as_xml(staff):
    response = staff.get("/models/decision/v1.bpmn")
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert b'id="decide_certification"' in response.data


def test_unknown_model_version_is_a_404_page_not_a_traceback(staff):
    response = staff.get("/models/decision/v99.bpmn")
    assert response.status_code == 404
    assert b"has no version 99" in response.data
    assert b"Traceback" not in response.data


def test_vendor_route_serves_only_listed_library_files(client):
    assert client.get("/vendor/bpmn-js/bpmn-viewer.production.min.js").status_code == 200
    assert client.get("/vendor/bpmn-js/../package.json").status_code == 404
    assert client.get("/vendor/left-pad/index.js").status_code == 404


def test_health_check_reports_database_reachable(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_wrong_method_gets_a_405_page(staff):
    html = staff.get("/models").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    assert staff.post("/models", data={"csrf_token": token}).status_code == 405
