"""Public certificate verification: public fields only, 404/400, rate limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from engine import Engine
from engine.models import Certificate
from tests.engine.helpers import certificates, do, drive_to_decision, start_application
from web import create_app


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def number(engine) -> str:
    case_id = start_application(engine, "alice", "DPO")
    drive_to_decision(engine, case_id, "alice", has_practical=False)
    do(engine, case_id, "decide_certification")
    [certificate] = certificates(engine, case_id)
    return certificate.number


def test_verify_form_needs_no_login(client):
    response = client.get("/verify")
    assert response.status_code == 200
    assert 'name="number"' in response.get_data(as_text=True)


def test_verify_shows_only_the_public_record(client, number):
    response = client.get(f"/verify?number={number.lower()}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for expected in (
        number,
        "Alice Applicant",
        "Data Protection Officer",
        "Advising and monitoring compliance",
        "Valid: this certificate is active",
        "2026-03-02",
        "2028-03-02",
    ):
        assert expected in html, expected
    assert "alice@example.org" not in html
    assert "1988" not in html  # date of birth
    assert "/portal/cases" not in html
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("suspended", "Not valid: this certificate is suspended"),
        ("withdrawn", "Not valid: this certificate has been withdrawn"),
        ("expired", "Not valid: this certificate has expired"),
    ],
)
def test_verify_states_a_certificate_that_is_not_valid(client, engine, number, status, verdict):
    with engine.sessions() as session, session.begin():
        session.execute(
            update(Certificate).where(Certificate.number == number).values(status=status)
        )
    html = client.get(f"/verify?number={number}").get_data(as_text=True)
    assert verdict in html
    assert f"result cert-{status}" in html


def test_unknown_number_is_404(client):
    response = client.get("/verify?number=CWI-2026-999999")
    assert response.status_code == 404
    assert "No certificate with this number" in response.get_data(as_text=True)


@pytest.mark.parametrize("bad", ["A" * 41, "CWI 2026<script>", "CWI-2026-%00", "../../etc"])
def test_malformed_number_is_400(client, bad):
    response = client.get("/verify", query_string={"number": bad})
    assert response.status_code == 400
    assert "<script>" not in response.get_data(as_text=True)


def test_rate_limit_answers_429_per_client(engine):
    app = create_app({"ENGINE": engine, "TESTING": True, "VERIFY_RATE_LIMIT": 5})
    client = app.test_client()
    for _ in range(5):
        assert client.get("/verify?number=X-1").status_code == 404
    response = client.get("/verify?number=X-1")
    assert response.status_code == 429
    assert "Too many look-ups" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    other = client.get("/verify", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200


def test_default_limit_is_30_a_minute(client):
    statuses = [client.get("/verify").status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429


def test_rate_limit_window_resets_after_a_minute(engine, clock):
    assert engine.count_request("a", 2).allowed and engine.count_request("a", 2).allowed
    refused = engine.count_request("a", 2)
    assert not refused.allowed and 1 <= refused.retry_after_seconds <= 61
    assert engine.count_request("b", 2).allowed
    clock.set(clock.now() + timedelta(seconds=61))
    assert engine.count_request("a", 2).allowed


def test_every_web_process_shares_the_count(engine):
    """Two app instances, each with its own Engine (as two gunicorn workers have), on one
    database: the limit holds across them."""
    other_engine = Engine(sql_engine=engine.db, clock=engine.clock)
    apps = [
        create_app({"ENGINE": e, "TESTING": True, "VERIFY_RATE_LIMIT": 4})
        for e in (engine, other_engine)
    ]
    clients = [app.test_client() for app in apps]
    statuses = [clients[n % 2].get("/verify").status_code for n in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]


def test_printable_certificate_qr_links_to_verify(client, number):
    import re

    from engine.demo import DEMO_PASSWORD

    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    client.post(
        "/login", data={"username": "alice", "password": DEMO_PASSWORD, "csrf_token": token}
    )
    page = client.get(f"/certificates/{number}").get_data(as_text=True)
    assert f'href="http://localhost/verify?number={number}"' in page
    verify = client.get(f"/verify?number={number}")
    assert verify.status_code == 200
