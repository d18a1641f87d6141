"""The manager's dashboard page: who may see it, what it shows, filters, CSV, and
reassignment that obeys the impartiality rules."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from tests.conftest import START
from tests.engine.helpers import (
    do,
    drive_to_decision,
    ready_task,
    start_application,
    task_row,
)
from tests.web.test_auth import login
from web import create_app

DAY = timedelta(days=1)


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def page_token(client, path: str = "/dashboard") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


@pytest.fixture
def overdue_cases(engine, clock):
    """Alice's CWI case at the clerk's completeness check (26 days overdue) and Bob's DPO case
    at his own application form (1 day overdue), as of START + 31 days."""
    alice = start_application(engine, "alice", "CWI")
    do(engine, alice, "submit_application", "alice")
    bob = start_application(engine, "bob", "DPO")
    clock.set(START + 31 * DAY)
    return alice, bob


@pytest.fixture
def decision_by_barred_examiner(engine, clock):
    """Alice's case waiting at the certification decision, overdue; Max Multirole examined
    her, so the impartiality rules bar him from deciding (SOD-DECIDE)."""
    case_id = start_application(engine, "alice", "CWI")
    drive_to_decision(engine, case_id, examiner="examiner_decider")
    task = ready_task(engine, case_id, "decide_certification")
    clock.set(task.due_at + 2 * DAY)
    return case_id, task.id


def test_anonymous_visitor_is_sent_to_login(client):
    for path in ("/dashboard", "/dashboard.csv"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("username", ["alice", "clerk", "reviewer", "decider"])
def test_applicants_and_staff_without_oversight_may_not_open_it(client, username):
    login(client, username)
    assert client.get("/dashboard").status_code == 403
    assert client.get("/dashboard.csv").status_code == 403
    assert 'href="/dashboard"' not in client.get("/models").get_data(as_text=True)


@pytest.mark.parametrize("username", ["manager", "admin", "quality"])
def test_managers_admins_and_quality_managers_see_it_in_the_navigation(client, username):
    login(client, username)
    assert 'href="/dashboard"' in client.get("/models").get_data(as_text=True)
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert "<h1>Dashboard</h1>" in response.get_data(as_text=True)


def test_overdue_steps_are_listed_most_overdue_first_with_their_details(client, overdue_cases):
    alice, bob = overdue_cases
    login(client, "manager")
    html = client.get("/dashboard").get_data(as_text=True)
    assert re.search(r'id="count-overdue">2<', html)
    assert re.search(r'id="count-due-soon">0<', html)
    rows = re.findall(r'<tr class="is-overdue" data-task="(\d+)">(.*?)</tr>', html, re.S)
    assert len(rows) == 2
    first, second = rows[0][1], rows[1][1]
    assert ">26</td>" in first and "Check application completeness" in first
    assert f'href="/cases/{alice}"' in first and "Alice Applicant" in first and "CWI" in first
    assert ">1</td>" in second and "Bob Builder" in second and f'href="/cases/{bob}"' in second
    assert "waits for the applicant" in second
    # Surveillance and recertification lead the per-process counts.
    per_process = re.search(r'id="per-process">(.*?)</table>', html, re.S).group(1)
    keys = re.findall(r'data-key="([^"]*)"', per_process)
    assert keys == ["surveillance", "recertification", "application"]
    assert "<svg" in html and "2026-W14" in html and "W10" in html
    assert "Certificates expiring soon" in html


def test_the_clock_decides_what_is_overdue(client, engine, clock):
    start_application(engine, "alice", "CWI")
    login(client, "manager")
    assert re.search(r'id="count-overdue">0<', client.get("/dashboard").get_data(as_text=True))
    clock.set(START + 25 * DAY)
    html = client.get("/dashboard").get_data(as_text=True)
    assert re.search(r'id="count-overdue">0<', html)
    assert re.search(r'id="count-due-soon">1<', html)
    assert '<td class="days soon" title="days left">-5</td>' in html
    clock.set(START + 32 * DAY)
    html = client.get("/dashboard").get_data(as_text=True)
    assert re.search(r'id="count-overdue">1<', html)
    assert '<td class="days late" title="days past due">2</td>' in html


def test_filters_narrow_the_table_and_the_counts(client, overdue_cases):
    alice, bob = overdue_cases
    login(client, "manager")
    html = client.get("/dashboard?scheme=DPO&window=overdue").get_data(as_text=True)
    assert re.search(r'id="count-overdue">1<', html)
    assert f'href="/cases/{bob}"' in html and f'href="/cases/{alice}"' not in html
    html = client.get("/dashboard?task=check_completeness").get_data(as_text=True)
    assert f'href="/cases/{alice}"' in html and f'href="/cases/{bob}"' not in html
    html = client.get("/dashboard?process=surveillance").get_data(as_text=True)
    assert "No open step is overdue or due soon with these filters" in html
    html = client.get("/dashboard?assignee=unassigned&window=due_soon").get_data(as_text=True)
    assert re.search(r'id="count-overdue">0<', html)
    html = client.get("/dashboard?sort=-overdue&per_page=1").get_data(as_text=True)
    assert f'href="/cases/{bob}"' in html and f'href="/cases/{alice}"' not in html
    assert "Page 1 of 2" in html


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("window=late", "window"),
        ("days=0", "days"),
        ("days=abc", "days"),
        ("page=abc", "page"),
        ("page=-3", "page"),
        ("sort=random", "sort"),
        ("horizon=45", "horizon"),
        ("scheme=NOPE", "scheme"),
        ("process=nonexistent", "process"),
        ("assignee=nobody_here", "assignee"),
        ("task=%3Cscript%3E", "task"),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(client, query, parameter):
    login(client, "manager")
    for path in ("/dashboard", "/dashboard.csv"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert f"the parameter &#39;{parameter}&#39;" in response.get_data(as_text=True)
    api_style = client.get(f"/dashboard?{query}", headers={"Accept": "application/json"})
    assert api_style.status_code == 400
    assert f"'{parameter}'" in api_style.get_json()["error"]


def test_parameters_the_dashboard_does_not_know_are_ignored(client, overdue_cases):
    login(client, "manager")
    response = client.get("/dashboard?_external=1&_scheme=javascript&_anchor=x&junk=1")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "javascript" not in html and "junk" not in html
    assert 'href="/dashboard.csv"' in html


def test_csv_export_has_every_selected_step_with_the_same_filters(client, overdue_cases):
    alice, bob = overdue_cases
    login(client, "quality")
    response = client.get("/dashboard.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["case_id"], r["task"], r["days_overdue"], r["overdue"]) for r in rows] == [
        (str(alice), "check_completeness", "26", "yes"),
        (str(bob), "submit_application", "1", "yes"),
    ]
    assert rows[0]["person"] == "Alice Applicant" and rows[0]["scheme"] == "CWI"
    assert rows[0]["assignee"] == "" and rows[0]["due_at"] == "2026-03-07 09:00:00"
    filtered = client.get("/dashboard.csv?scheme=DPO").get_data(as_text=True)
    assert [r["case_id"] for r in csv.DictReader(io.StringIO(filtered))] == [str(bob)]
    empty = client.get("/dashboard.csv?process=surveillance").get_data(as_text=True)
    assert empty.splitlines() == [
        "task_id,case_id,process,task,task_name,role,assignee,assignee_name,person,scheme,"
        "due_at,days_overdue,overdue,certificate,certificate_expires_on"
    ]


def eligible_options(html: str, task_id: int) -> list[str]:
    select = re.search(
        rf'<select id="assignee-{task_id}" name="assignee">(.*?)</select>', html, re.S
    ).group(1)
    return re.findall(r'<option value="([^"]+)"', select)


def test_reassign_offers_only_eligible_staff_and_assigns_with_a_flash(
    client, engine, decision_by_barred_examiner
):
    case_id, task_id = decision_by_barred_examiner
    login(client, "manager")
    html = client.get("/dashboard").get_data(as_text=True)
    options = eligible_options(html, task_id)
    assert set(options) == {"decider", "decider2"}
    assert "examiner_decider" not in options

    response = client.post(
        f"/dashboard/tasks/{task_id}/assign",
        data={
            "csrf_token": page_token(client),
            "assignee": "decider2",
            "next": "/dashboard?window=overdue",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/dashboard?window=overdue")
    assert task_row(engine, task_id).assignee_id == engine.user("decider2").id
    after = client.get("/dashboard?window=overdue").get_data(as_text=True)
    assert f"Decide on certification (case #{case_id}) is now assigned to Diego Decider" in after
    assert "Reassign" in after


def test_a_forged_post_for_a_barred_colleague_is_refused_and_changes_nothing(
    client, engine, decision_by_barred_examiner
):
    _case_id, task_id = decision_by_barred_examiner
    login(client, "manager")
    response = client.post(
        f"/dashboard/tasks/{task_id}/assign",
        data={"csrf_token": page_token(client), "assignee": "examiner_decider"},
    )
    assert response.status_code == 403
    body = response.get_data(as_text=True)
    assert "Max Multirole" in body and "9.4" in body
    assert task_row(engine, task_id).assignee_id is None


def test_only_managers_and_admins_may_reassign(client, engine, decision_by_barred_examiner):
    _case_id, task_id = decision_by_barred_examiner
    login(client, "quality")
    html = client.get("/dashboard").get_data(as_text=True)
    assert f'action="/dashboard/tasks/{task_id}/assign"' not in html
    response = client.post(
        f"/dashboard/tasks/{task_id}/assign",
        data={"csrf_token": page_token(client), "assignee": "decider"},
    )
    assert response.status_code == 403
    assert task_row(engine, task_id).assignee_id is None


def test_reassign_needs_a_real_staff_member_a_token_and_an_open_task(
    client, engine, decision_by_barred_examiner
):
    _case_id, task_id = decision_by_barred_examiner
    login(client, "admin")
    token = page_token(client)
    url = f"/dashboard/tasks/{task_id}/assign"
    assert client.post(url, data={"assignee": "decider"}).status_code == 400
    missing = client.post(url, data={"csrf_token": token})
    assert missing.status_code == 400 and "assignee" in missing.get_data(as_text=True)
    unknown = client.post(url, data={"csrf_token": token, "assignee": "nobody_here"})
    assert unknown.status_code == 400 and "assignee" in unknown.get_data(as_text=True)
    wrong_role = client.post(url, data={"csrf_token": token, "assignee": "clerk"})
    assert wrong_role.status_code == 403
    gone = client.post(
        "/dashboard/tasks/999999/assign", data={"csrf_token": token, "assignee": "decider"}
    )
    assert gone.status_code == 404
    assert task_row(engine, task_id).assignee_id is None


def test_a_failed_job_shows_as_an_incident_that_a_manager_retries(client, engine, clock):
    """A surveillance that could not start for a certificate is listed with its error; the
    retry runs the job again at once."""
    from engine.incidents import record_incident
    from engine.models import Certificate, Incident
    from tests.engine.test_certificate_lifecycle import certify

    certificate = certify(engine, "alice", "CWI")
    with engine.unit_of_work() as uow:
        incident = record_incident(
            uow,
            "start_due_surveillance",
            RuntimeError("the mail server refused the notice"),
            certificate_id=certificate.id,
        )
        uow.session.flush()
        incident_id = incident.id
    login(client, "quality")
    html = client.get("/dashboard").get_data(as_text=True)
    assert f'data-incident="{incident_id}"' in html
    assert "the mail server refused the notice" in html
    assert certificate.number in html
    assert f"/dashboard/incidents/{incident_id}/retry" not in html  # oversight, no retry
    token = page_token(client)
    assert (
        client.post(f"/dashboard/incidents/{incident_id}/retry", data={"csrf_token": token})
    ).status_code == 403

    login(client, "manager")
    response = client.post(
        f"/dashboard/incidents/{incident_id}/retry", data={"csrf_token": page_token(client)}
    )
    assert response.status_code == 303
    with engine.sessions() as session:
        assert session.get(Incident, incident_id).status == "resolved"
        assert session.get(Certificate, certificate.id).next_surveillance_on is not None
    after = client.get("/dashboard").get_data(as_text=True)
    assert f'data-incident="{incident_id}"' not in after
    assert "Retried: start due surveillance handled 0" in after  # its date has not come yet
    again = client.post(
        f"/dashboard/incidents/{incident_id}/retry", data={"csrf_token": page_token(client)}
    )
    assert again.status_code == 303
    assert "already resolved" in client.get("/dashboard").get_data(as_text=True)
