"""The staff inbox: tabs, filters, sorting, pagination, claim and release."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from tests.engine.helpers import do, ready_task, start_application
from tests.web.test_auth import login
from web import create_app
from web import inbox as inbox_views


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def page_token(client, path: str = "/inbox") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


@pytest.fixture
def eligibility(engine):
    """Alice's case, waiting at the reviewer's eligibility review."""
    case_id = start_application(engine)
    do(engine, case_id, "submit_application", "alice")
    do(engine, case_id, "check_completeness")
    return case_id, ready_task(engine, case_id, "review_eligibility").id


def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get("/inbox")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_applicant_may_not_open_the_staff_inbox(client):
    login(client, "alice")
    assert client.get("/inbox").status_code == 403
    assert client.get("/inbox?tab=available").status_code == 403


def test_reviewer_sees_task_under_available_claims_it_and_releases_it(client, eligibility):
    case_id, task_id = eligibility
    login(client, "reviewer")
    html = client.get("/inbox?tab=available").get_data(as_text=True)
    assert "Available to my roles" in html and "Assigned to me" in html
    assert f'href="/tasks/{task_id}"' in html
    assert f'href="/cases/{case_id}"' in html
    assert "Alice Applicant" in html and "CWI" in html
    assert re.search(r"Available to my roles\s*<span class=\"count\">1</span>", html)

    token = page_token(client)
    response = client.post(
        f"/tasks/{task_id}/claim", data={"csrf_token": token, "next": "/inbox?tab=available"}
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/inbox?tab=available")
    after = client.get("/inbox?tab=available").get_data(as_text=True)
    assert "Review eligibility claimed" in after
    assert f'href="/tasks/{task_id}"' not in after
    assigned = client.get("/inbox?tab=assigned").get_data(as_text=True)
    assert f'href="/tasks/{task_id}"' in assigned
    assert f'action="/tasks/{task_id}/unclaim"' in assigned

    response = client.post(f"/tasks/{task_id}/unclaim", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/inbox")
    assert "Review eligibility released" in client.get("/inbox").get_data(as_text=True)


def test_staff_of_another_role_is_refused_with_the_reason(client, eligibility):
    _case_id, task_id = eligibility
    login(client, "clerk")
    assert f'href="/tasks/{task_id}"' not in client.get("/inbox?tab=available").get_data(
        as_text=True
    )
    response = client.post(
        f"/tasks/{task_id}/claim", data={"csrf_token": page_token(client)}, follow_redirects=True
    )
    html = response.get_data(as_text=True)
    assert "Review eligibility was not claimed" in html
    assert "needs the reviewer role" in html


def test_claimed_task_cannot_be_claimed_or_released_by_a_colleague(client, engine, eligibility):
    _case_id, task_id = eligibility
    engine.claim(task_id, "reviewer")
    login(client, "reviewer_panel")
    token = page_token(client)
    html = client.post(
        f"/tasks/{task_id}/claim", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert "already claimed by Rafael Reviewer" in html
    html = client.post(
        f"/tasks/{task_id}/unclaim", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert "only the assignee or a manager" in html


def test_claim_needs_csrf_token_post_and_an_existing_task(client, eligibility):
    _case_id, task_id = eligibility
    login(client, "reviewer")
    assert client.post(f"/tasks/{task_id}/claim").status_code == 400
    assert client.get(f"/tasks/{task_id}/claim").status_code == 405
    token = page_token(client)
    assert client.post("/tasks/999999/claim", data={"csrf_token": token}).status_code == 404
    assert client.post("/tasks/abc/claim", data={"csrf_token": token}).status_code == 404


def test_claim_redirect_never_leaves_the_site(client, eligibility):
    _case_id, task_id = eligibility
    login(client, "reviewer")
    response = client.post(
        f"/tasks/{task_id}/claim",
        data={"csrf_token": page_token(client), "next": "https://evil.example/"},
    )
    assert "evil.example" not in response.headers["Location"]


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("tab=everything", "tab"),
        ("sort=name", "sort"),
        ("due_before=yesterday", "due_before"),
        ("due_after=2026-13-45", "due_after"),
        ("page=abc", "page"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("overdue=maybe", "overdue"),
        ("process=" + "x" * 500, "process"),
    ],
)
def test_malformed_query_parameters_are_a_400_naming_the_parameter(client, query, parameter):
    login(client, "reviewer")
    response = client.get(f"/inbox?{query}")
    assert response.status_code == 400
    assert f"'{parameter}'" in html.unescape(response.get_data(as_text=True))


def test_filters_sort_and_overdue_badge(client, engine, clock, eligibility):
    case_id, task_id = eligibility
    other = start_application(engine, "bob", "DPO")
    do(engine, other, "submit_application", "bob")
    clock.set(clock.now() + timedelta(days=1))
    do(engine, other, "check_completeness")
    later_id = ready_task(engine, other, "review_eligibility").id
    login(client, "reviewer")

    html = client.get("/inbox?tab=available&sort=due").get_data(as_text=True)
    assert html.index(f'href="/tasks/{task_id}"') < html.index(f'href="/tasks/{later_id}"')
    html = client.get("/inbox?tab=available&sort=-due").get_data(as_text=True)
    assert html.index(f'href="/tasks/{later_id}"') < html.index(f'href="/tasks/{task_id}"')
    html = client.get("/inbox?tab=available&sort=-age").get_data(as_text=True)
    assert html.index(f'href="/tasks/{later_id}"') < html.index(f'href="/tasks/{task_id}"')

    html = client.get("/inbox?tab=available&scheme=DPO").get_data(as_text=True)
    assert f'href="/tasks/{later_id}"' in html and f'href="/tasks/{task_id}"' not in html
    html = client.get("/inbox?tab=available&task=review_eligibility&process=application")
    assert f'href="/tasks/{task_id}"' in html.get_data(as_text=True)
    html = client.get("/inbox?tab=available&process=decision").get_data(as_text=True)
    assert "No tasks here with these filters" in html

    assert '<span class="badge overdue">overdue</span>' not in client.get(
        "/inbox?tab=available"
    ).get_data(as_text=True)
    assert "No tasks here" in client.get("/inbox?tab=available&overdue=1").get_data(as_text=True)
    clock.set(clock.now() + timedelta(days=60))
    html = client.get("/inbox?tab=available&overdue=1").get_data(as_text=True)
    assert html.count('<span class="badge overdue">overdue</span>') == 2

    with engine.sessions() as session:
        from engine.models import HumanTask

        due = session.get(HumanTask, task_id).due_at
    day = due.strftime("%Y-%m-%d")
    next_day = (due + timedelta(days=1)).strftime("%Y-%m-%d")
    html = client.get(f"/inbox?tab=available&due_after={day}&due_before={next_day}")
    html = html.get_data(as_text=True)
    assert f'href="/tasks/{task_id}"' in html and f'href="/tasks/{later_id}"' not in html


def test_completed_tab_lists_what_the_user_did(client, eligibility):
    login(client, "clerk")
    html = client.get("/inbox?tab=completed").get_data(as_text=True)
    assert "Check application completeness" in html
    assert re.search(r"Completed by me\s*<span class=\"count\">1</span>", html)


def test_pagination_25_per_page(client, engine):
    for _ in range(27):
        case_id = start_application(engine, "bob", "DPO")
        do(engine, case_id, "submit_application", "bob")
    login(client, "clerk")
    first = client.get("/inbox?tab=available").get_data(as_text=True)
    assert first.count('action="/tasks/') == 25
    assert "Page 1 of 2" in first
    assert 'href="/inbox?tab=available&amp;page=2"' in first
    second = client.get("/inbox?tab=available&page=2").get_data(as_text=True)
    assert second.count('action="/tasks/') == 2
    assert "Page 2 of 2" in second
    past = client.get("/inbox?tab=available&page=9")
    assert past.status_code == 200
    assert "No tasks here" in past.get_data(as_text=True)


def test_a_capped_count_says_more_than_the_limit_and_next_still_reaches_every_task(
    client, engine, monkeypatch
):
    monkeypatch.setattr(inbox_views, "COUNT_LIMIT", 2)
    monkeypatch.setattr(inbox_views, "PER_PAGE", 1)
    for _ in range(4):
        case_id = start_application(engine, "bob", "DPO")
        do(engine, case_id, "submit_application", "bob")
    login(client, "clerk")
    seen, path, pages = set(), "/inbox?tab=available", 0
    while path:
        shown = client.get(path).get_data(as_text=True)
        pages += 1
        assert "More than 2 tasks in “Available to my roles”" in shown
        assert re.search(
            r'Available to my roles\s*<span class="count" title="more than 2">2\+</span>', shown
        )
        assert f"<span>Page {pages}</span>" in shown
        seen |= set(re.findall(r'action="/tasks/(\d+)/claim"', shown))
        following = re.search(r'href="([^"]+)" rel="next"', shown)
        path = html.unescape(following.group(1)) if following else None
    assert pages == 4 and len(seen) == 4
    assert 'rel="prev"' in shown
