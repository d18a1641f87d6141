"""Every route, hit with junk ids, junk query strings and bodies by every kind of user,
answers with a 2xx-4xx and never a 500 or a traceback page."""

from __future__ import annotations

import re

import pytest

from engine.demo import DEMO_PASSWORD
from web import create_app

JUNK_QUERY = "?page=abc&tab=%00&sort=../&from=2026-13-45&number=%27%3B--&per_page=-1&q=%3Cscript%3E"


def urls_for(app) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for values in ({"int": "999999", "default": "x"}, {"int": "0", "default": "%2e%2e"}):
            url = rule.rule
            for converter in re.findall(r"<(?:(\w+):)?(\w+)>", rule.rule):
                kind, name = converter
                value = values["int"] if kind == "int" else values["default"]
                url = re.sub(rf"<(?:\w+:)?{name}>", value, url, count=1)
            for method in sorted(rule.methods & {"GET", "POST"}):
                found.append((method, url))
    return sorted(set(found))


def logged_in(app, username: str | None):
    client = app.test_client()
    if username is None:
        return client
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(
        "/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token}
    )
    return client


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("username", [None, "alice", "clerk", "manager"])
def test_no_route_answers_500_to_junk(engine, username):
    app = create_app({"ENGINE": engine, "TESTING": True, "VERIFY_RATE_LIMIT": 10_000})
    client = logged_in(app, username)
    failures = []
    for method, url in urls_for(app):
        for target in (url, url + JUNK_QUERY):
            if method == "GET":
                response = client.get(target)
            else:
                response = client.post(target, data={"junk": "x" * 5000, "csrf_token": "forged"})
            body = response.get_data(as_text=True)
            if response.status_code >= 500 or "Traceback" in body:
                failures.append(f"{method} {target} as {username}: {response.status_code}")
    assert failures == []
    assert len(urls_for(app)) > 40
