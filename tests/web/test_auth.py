"""Logging in and out: passwords, lockout, CSRF, safe redirects."""

from __future__ import annotations

import re

import pytest

from engine.accounts import MAX_FAILED_LOGINS
from engine.demo import DEMO_PASSWORD
from web import create_app


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, username: str, password: str = DEMO_PASSWORD, next_url: str = ""):
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_token(client),
            "next": next_url,
        },
    )


def test_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")


def test_correct_password_signs_in_and_logout_signs_out(client):
    response = login(client, "clerk")
    assert response.status_code == 302
    assert "Clara Clerk" in client.get("/models").get_data(as_text=True)
    token = csrf_token(client, "/models")
    client.post("/logout", data={"csrf_token": token})
    assert "Clara Clerk" not in client.get("/models").get_data(as_text=True)


def test_wrong_password_is_refused_without_saying_whether_the_user_exists(client):
    wrong = login(client, "clerk", "not-the-password")
    unknown = login(client, "nobody-here", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert b"the username or password is wrong" in wrong.data
    assert b"the username or password is wrong" in unknown.data


def test_account_locks_after_repeated_failures_even_for_the_right_password(client):
    for _ in range(MAX_FAILED_LOGINS):
        login(client, "reviewer", "wrong-password")
    response = login(client, "reviewer")
    assert response.status_code == 401
    assert b"too many failed attempts" in response.data


def test_login_form_without_csrf_token_is_refused(client):
    response = client.post("/login", data={"username": "clerk", "password": DEMO_PASSWORD})
    assert response.status_code == 400
    assert b"Reload the page" in response.data


def test_login_never_redirects_to_another_site(client):
    response = login(client, "clerk", next_url="https://evil.example/")
    assert response.status_code == 302
    assert "evil.example" not in response.headers["Location"]


def test_session_cookie_is_http_only_and_same_site(client):
    response = login(client, "clerk")
    header = " ".join(response.headers.getlist("Set-Cookie"))
    assert "session=" in header
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header


def test_security_headers_are_set(client):
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_session_planted_before_login_is_not_carried_into_the_signed_in_session(app):
    """Session fixation: an attacker who gave the victim a session cookie (and so knows its
    CSRF token) learns nothing that works after the victim signs in."""
    victim = app.test_client()
    planted_token = csrf_token(victim)
    planted_cookie = victim.get_cookie("session").value
    victim.post(
        "/login",
        data={"username": "clerk", "password": DEMO_PASSWORD, "csrf_token": planted_token},
    )
    assert victim.get_cookie("session").value != planted_cookie
    assert csrf_token(victim, "/models") != planted_token
    forged = victim.post("/logout", data={"csrf_token": planted_token})
    assert forged.status_code == 400  # the planted token no longer passes
    assert "Clara Clerk" in victim.get("/models").get_data(as_text=True)

    attacker = app.test_client()
    attacker.set_cookie("session", planted_cookie)
    assert attacker.get("/models").status_code == 302  # still anonymous


def test_a_forged_csrf_token_is_refused_naming_the_problem(client):
    login(client, "clerk")
    refused = client.post("/logout", data={"csrf_token": "forged-token"})
    assert refused.status_code == 400
    assert "not accepted" in refused.get_data(as_text=True)
