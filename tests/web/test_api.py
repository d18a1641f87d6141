"""The REST API: token authentication, each endpoint's happy path and its permission
boundaries, request validation, and a whole application driven only through the API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine import Engine
from engine.accounts import issue_api_token
from engine.cli import main as certrail
from engine.demo import load_demo
from engine.models import ApiToken
from tests.engine.helpers import (
    DEFAULT_PERFORMERS,
    do,
    drive_to_scoring,
    form_data,
    person_id,
    ready_task,
    start_application,
)
from web import create_app


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


class Api:
    """The test client with a bearer token per demo user."""

    def __init__(self, client, engine):
        self.client = client
        self.engine = engine
        self.tokens: dict[str, str] = {}

    def token(self, username: str) -> str:
        if username not in self.tokens:
            with self.engine.unit_of_work() as uow:
                self.tokens[username] = issue_api_token(uow, username, "tests")
        return self.tokens[username]

    def call(self, method: str, path: str, user: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    def get(self, path: str, user: str | None = None, **kwargs):
        return self.call("GET", path, user, **kwargs)

    def post(self, path: str, user: str | None = None, **kwargs):
        return self.call("POST", path, user, **kwargs)

    def complete(self, task_id: int, user: str, data: dict):
        return self.post(f"/tasks/{task_id}/complete", user, json={"data": data})


@pytest.fixture
def api(client, engine) -> Api:
    return Api(client, engine)


def api_complete_step(api: Api, case_id: int, spec_id: str, user: str, **overrides) -> dict:
    """Find the step among the case's ready tasks, claim it and complete it, all via the API."""
    case = api.get(f"/cases/{case_id}", user)
    assert case.status_code == 200, case.json
    tasks = [t for t in case.json["ready_tasks"] if t["task_spec_id"] == spec_id]
    assert len(tasks) == 1, [t["task_spec_id"] for t in case.json["ready_tasks"]]
    task_id = tasks[0]["id"]
    detail = api.get(f"/tasks/{task_id}", user)
    assert detail.status_code == 200, detail.json
    claimed = api.post(f"/tasks/{task_id}/claim", user)
    assert claimed.status_code == 200, claimed.json
    assert claimed.json["claimed_by_me"] is True
    data = form_data(api.engine, detail.json["form"], **overrides) if detail.json["form"] else {}
    done = api.complete(task_id, user, data)
    assert done.status_code == 200, done.json
    assert done.json["status"] == "completed"
    return done.json


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer ", "Basic Y2xlcms6eA==", "Bearer ctr_not-a-real-token", "Token x"],
)
def test_requests_without_a_valid_token_get_401_with_a_bearer_challenge(api, header):
    headers = {"Authorization": header} if header is not None else {}
    response = api.get("/tasks", headers=headers)
    assert response.status_code == 401
    assert response.is_json and response.json["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_refused(api, engine):
    assert api.get("/tasks", "clerk").status_code == 200
    with engine.unit_of_work() as uow:
        uow.session.execute(update(ApiToken).values(revoked=True))
    response = api.get("/tasks", "clerk")
    assert response.status_code == 401
    assert "invalid or revoked" in response.json["error"]


def test_a_token_of_a_deactivated_user_is_refused(api, engine):
    from engine.models import User

    api.token("reviewer")
    with engine.unit_of_work() as uow:
        uow.session.execute(update(User).where(User.username == "reviewer").values(active=False))
    assert api.get("/tasks", "reviewer").status_code == 401


def test_a_tokens_last_use_is_kept_to_the_minute(api, engine, clock):
    def last_used():
        with engine.sessions() as session:
            return session.scalars(select(ApiToken.last_used_at)).one()

    api.token("clerk")
    assert last_used() is None
    first_use = clock.now()
    assert api.get("/tasks", "clerk").status_code == 200
    assert last_used() == first_use
    clock.set(first_use + timedelta(seconds=59))
    assert api.get("/tasks", "clerk").status_code == 200
    assert last_used() == first_use, "a use within the minute writes nothing"
    clock.set(first_use + timedelta(minutes=1, seconds=30))
    assert api.get("/tasks", "clerk").status_code == 200
    assert last_used() == first_use + timedelta(minutes=1, seconds=30)


def test_the_session_cookie_is_not_enough_for_the_api(client):
    from tests.web.test_auth import login

    login(client, "clerk")
    assert client.get("/api/v1/tasks").status_code == 401


def test_cli_issues_a_token_the_api_accepts(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    setup = Engine(url)
    setup.create_schema()
    with setup.unit_of_work() as uow:
        load_demo(uow)
    setup.db.dispose()
    assert certrail(["--database", url, "tokens", "issue", "clerk", "--name", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ctr_")
    client = create_app({"DATABASE_URL": url, "TESTING": True}).test_client()
    response = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert certrail(["--database", url, "tokens", "issue", "nobody", "--name", "ci"]) == 1
    assert "does not exist" in capsys.readouterr().err


# -- tasks -------------------------------------------------------------------------------


def test_task_lists_follow_the_inbox_tabs(api, engine):
    case_id = start_application(engine)
    mine = api.get("/tasks?tab=available", "alice")
    assert mine.status_code == 200
    assert [t["task_spec_id"] for t in mine.json["items"]] == ["submit_application"]
    assert mine.json["total"] == 1 and mine.json["page"] == 1 and mine.json["per_page"] == 25
    assert api.get("/tasks?tab=available", "bob").json["items"] == []
    assert api.get("/tasks?tab=available", "clerk").json["total"] == 0

    task_id = mine.json["items"][0]["id"]
    assert api.post(f"/tasks/{task_id}/claim", "alice").status_code == 200
    assigned = api.get("/tasks", "alice").json
    assert [t["id"] for t in assigned["items"]] == [task_id]
    assert assigned["items"][0]["case_id"] == case_id
    released = api.post(f"/tasks/{task_id}/unclaim", "alice")
    assert released.status_code == 200 and released.json["assignee_id"] is None
    assert api.get("/tasks", "alice").json["total"] == 0

    done = api.complete(task_id, "alice", form_data(engine, "application"))
    assert done.status_code == 200
    completed = api.get("/tasks?tab=completed", "alice").json
    assert [t["id"] for t in completed["items"]] == [task_id]
    available = api.get("/tasks?tab=available&process=application&scheme=CWI", "clerk").json
    assert [t["task_spec_id"] for t in available["items"]] == ["check_completeness"]
    assert api.get("/tasks?tab=available&scheme=DPO", "clerk").json["total"] == 0
    assert api.get("/tasks?tab=available&overdue=true", "clerk").json["total"] == 0


def test_task_list_paginates(api, engine):
    for applicant in ("alice", "bob", "chen"):
        start_application(engine, applicant)
        task = engine.ready_tasks(start_application(engine, applicant))[0]
        engine.complete(task.id, applicant, form_data(engine, "application"))
    first = api.get("/tasks?tab=available&per_page=2&sort=-age", "clerk").json
    second = api.get("/tasks?tab=available&per_page=2&page=2&sort=-age", "clerk").json
    assert first["total"] == second["total"] == 3
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert not {t["id"] for t in first["items"]} & {t["id"] for t in second["items"]}


@pytest.mark.parametrize(
    "query, field",
    [
        ("tab=mine", "tab"),
        ("sort=name", "sort"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("per_page=1000", "per_page"),
        ("overdue=perhaps", "overdue"),
        ("process=%00", "process"),
        ("scheme=" + "X" * 41, "scheme"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_field(api, query, field):
    response = api.get(f"/tasks?{query}", "clerk")
    assert response.status_code == 400
    assert field in response.json["fields"]


def test_task_detail_has_its_form_schema_and_is_hidden_from_others(api, engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    response = api.get(f"/tasks/{task.id}", "alice")
    assert response.status_code == 200
    assert response.json["form"] == "application"
    assert response.json["form_schema"]["type"] == "object"
    assert response.json["case_id"] == case_id
    hidden = api.get(f"/tasks/{task.id}", "bob")
    unknown = api.get("/tasks/999999", "alice")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json["error"] == f"task {task.id} does not exist or is not yours to see"
    assert "case" not in hidden.json["error"], "a hidden task must not tell which case it is in"
    assert api.post(f"/tasks/{task.id}/claim", "bob").status_code == 404
    assert api.complete(task.id, "bob", {}).status_code == 404


def test_completing_with_invalid_data_is_422_naming_each_field(api, engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    data = form_data(engine, "application")
    first = next(iter(data))
    del data[first]
    data["no_such_field"] = 1
    response = api.complete(task.id, "alice", data)
    assert response.status_code == 422
    assert first in response.json["fields"]
    assert "no_such_field" in response.json["fields"]
    assert ready_task(engine, case_id, "submit_application").status == "ready"


def test_reviewer_cannot_complete_an_examiner_task(api, engine):
    case_id = start_application(engine)
    drive_to_scoring(engine, case_id)
    task = ready_task(engine, case_id, "score_written")
    response = api.complete(task.id, "reviewer", form_data(engine, "written_score"))
    assert response.status_code == 403
    assert response.json["error"]
    assert ready_task(engine, case_id, "score_written").status == "ready"


def test_completing_twice_is_a_conflict_that_says_who_did_it(api, engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    data = form_data(engine, "application")
    assert api.complete(task.id, "alice", data).status_code == 200
    again = api.complete(task.id, "alice", data)
    assert again.status_code == 409
    assert "already completed by Alice Applicant" in again.json["error"]


def test_claiming_a_task_someone_else_holds_is_a_conflict(api, engine):
    case_id = start_application(engine)
    engine.complete(
        ready_task(engine, case_id, "submit_application").id,
        "alice",
        form_data(engine, "application"),
    )
    task = ready_task(engine, case_id, "check_completeness")
    assert api.post(f"/tasks/{task.id}/claim", "clerk").status_code == 200
    assert api.post(f"/tasks/{task.id}/claim", "clerk").status_code == 200  # idempotent
    assert api.post(f"/tasks/{task.id}/claim", "admin").status_code in (403, 409)
    assert api.post(f"/tasks/{task.id}/unclaim", "reviewer").status_code in (403, 404)


# -- cases -------------------------------------------------------------------------------


def test_applicant_starts_their_own_application(api, engine):
    response = api.post("/cases", "alice", json={"process": "application", "scheme": "CWI"})
    assert response.status_code == 201, response.json
    case = response.json
    assert case["process_id"] == "application" and case["status"] == "running"
    assert case["person"] == {"id": person_id(engine, "alice"), "name": "Alice Applicant"}
    assert case["scheme"]["code"] == "CWI"
    assert [t["task_spec_id"] for t in case["ready_tasks"]] == ["submit_application"]
    assert case["certificate"] is None
    assert response.headers["Location"].endswith(f"/api/v1/cases/{case['id']}")


def test_applicant_cannot_start_a_case_for_someone_else(api, engine):
    bob = person_id(engine, "bob")
    response = api.post(
        "/cases", "alice", json={"process": "application", "scheme": "CWI", "person_id": bob}
    )
    assert response.status_code == 403
    assert "for themselves only" in response.json["error"]
    assert api.post("/cases", "reviewer", json={"process": "application"}).status_code == 403


def test_clerk_starts_an_application_for_a_person(api, engine):
    bob = person_id(engine, "bob")
    response = api.post(
        "/cases", "clerk", json={"process": "application", "scheme": "DPO", "person_id": bob}
    )
    assert response.status_code == 201, response.json
    assert response.json["person"]["id"] == bob
    case_id = response.json["id"]
    assert api.get(f"/cases/{case_id}", "clerk").status_code == 200
    assert api.get(f"/cases/{case_id}", "bob").status_code == 200


@pytest.mark.parametrize(
    "payload, status, field",
    [
        ({}, 400, "process"),
        ({"process": "application", "person_id": "1"}, 400, "person_id"),
        ({"process": "application", "person_id": 0}, 400, "person_id"),
        ({"process": "application", "colour": "red"}, 400, "colour"),
        ({"process": "bad process!"}, 400, "process"),
        ({"process": "application", "scheme": "NOPE"}, 422, "scheme"),
    ],
)
def test_start_case_body_is_validated(api, payload, status, field):
    response = api.post("/cases", "alice", json=payload)
    assert response.status_code == status, response.json
    assert field in response.json["fields"]


def test_unknown_process_or_person_is_404_for_staff(api):
    assert api.post("/cases", "clerk", json={"process": "nonexistent"}).status_code == 404
    response = api.post("/cases", "clerk", json={"process": "application", "person_id": 99999})
    assert response.status_code == 404


def test_case_list_shows_only_visible_cases_with_filters(api, engine):
    alice_case = start_application(engine, "alice", "CWI")
    bob_case = start_application(engine, "bob", "DPO")
    alice = api.get("/cases", "alice").json
    assert [c["id"] for c in alice["items"]] == [alice_case] and alice["total"] == 1
    everyone = api.get("/cases", "manager").json
    assert {c["id"] for c in everyone["items"]} == {alice_case, bob_case}
    assert [c["id"] for c in api.get("/cases?scheme=DPO", "manager").json["items"]] == [bob_case]
    assert api.get("/cases?status=completed", "manager").json["total"] == 0
    assert api.get("/cases?process=application&per_page=1", "manager").json["total"] == 2
    assert api.get("/cases?status=lost", "manager").status_code == 400


def test_applicant_cannot_read_another_persons_case(api, engine):
    case_id = start_application(engine, "alice")
    assert api.get(f"/cases/{case_id}", "bob").status_code == 404
    assert api.get(f"/cases/{case_id}/history", "bob").status_code == 404
    assert api.get(f"/cases/{case_id}", "alice").status_code == 200


def test_case_history_is_the_audit_timeline(api, engine):
    case_id = start_application(engine)
    engine.complete(
        ready_task(engine, case_id, "submit_application").id,
        "alice",
        form_data(engine, "application"),
    )
    staff = api.get(f"/cases/{case_id}/history", "manager").json
    actions = [e["action"] for e in staff["items"]]
    assert actions[0] == "case_started" and "task_completed" in actions
    assert staff["total"] == len(actions)
    completed = next(e for e in staff["items"] if e["action"] == "task_completed")
    assert completed["details"]["task"] == "submit_application"
    mine = api.get(f"/cases/{case_id}/history", "alice").json
    assert all(e["details"] is None for e in mine["items"])
    page = api.get(f"/cases/{case_id}/history?per_page=1&page=2", "manager").json
    assert page["items"] == staff["items"][1:2]


# -- certificates, persons, schemes ------------------------------------------------------


def test_unknown_certificate_is_404_and_needs_no_token(api):
    response = api.get("/certificates/CWI-2026-999999")
    assert response.status_code == 404 and response.is_json
    assert api.get("/certificates/" + "X" * 60).status_code == 404
    assert api.get("/certificates/bad%00number").status_code == 404


def test_person_is_visible_to_themself_oversight_and_staff_on_their_cases_only(api, engine):
    alice = person_id(engine, "alice")
    own = api.get(f"/persons/{alice}", "alice")
    assert own.status_code == 200
    assert own.json["full_name"] == "Alice Applicant" and own.json["email"] == "alice@example.org"
    assert "password_hash" not in own.json
    assert api.get(f"/persons/{alice}", "manager").status_code == 200
    assert api.get(f"/persons/{alice}", "bob").status_code == 404
    # No case of alice's has a step for an examiner: her record stays hidden from them.
    assert api.get(f"/persons/{alice}", "examiner").status_code == 404
    case_id = start_application(engine, "alice", "DPO")
    assert api.get(f"/persons/{alice}", "clerk").status_code == 404
    do(engine, case_id, "submit_application", "alice")  # now the clerk has a step in it
    assert api.get(f"/persons/{alice}", "clerk").status_code == 200
    assert api.get("/persons/999999", "manager").status_code == 404


def test_schemes_are_listed(api):
    response = api.get("/schemes", "alice")
    assert response.status_code == 200
    assert [s["code"] for s in response.json["items"]] == ["CWI", "DPO"]
    assert response.json["items"][0]["validity_months"] == 36
    assert api.get("/schemes?per_page=1&page=2", "alice").json["items"][0]["code"] == "DPO"


# -- malformed requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"data": "process=application", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"data": "{not json", "content_type": "application/json"}, 400),
        ({"data": "[1, 2]", "content_type": "application/json"}, 400),
        ({"data": '"text"', "content_type": "application/json"}, 400),
        ({"data": "", "content_type": "application/json"}, 400),
        ({"data": '{"process": NaN}', "content_type": "application/json"}, 400),
        ({"data": "[" * 5000 + "]" * 5000, "content_type": "application/json"}, 400),
        ({"data": json.dumps({"process": "x" * 400_000}), "content_type": "application/json"}, 413),
        ({"data": b"\xff\xfe\x00", "content_type": "application/json"}, 400),
    ],
)
def test_malformed_bodies_get_json_errors(api, kwargs, status):
    response = api.post("/cases", "alice", **kwargs)
    assert response.status_code == status
    assert response.is_json and response.json["error"]


def test_deeply_nested_task_data_is_refused(api, engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    nested: dict = {}
    for _ in range(100):
        nested = {"a": nested}
    response = api.complete(task.id, "alice", nested)
    assert response.status_code == 400
    assert api.post(f"/tasks/{task.id}/complete", "alice", json={"data": []}).status_code == 400


@pytest.mark.parametrize(
    "path",
    ["/tasks/abc", "/tasks/-1", "/tasks/0", "/tasks/99999999999999999999", "/cases/1.5", "/nope"],
)
def test_non_integer_or_out_of_range_ids_are_json_404(api, path):
    response = api.get(path, "clerk")
    assert response.status_code == 404
    assert response.is_json and response.json["error"]


def test_wrong_method_is_json_405(api):
    response = api.call("DELETE", "/cases", "clerk")
    assert response.status_code == 405 and response.is_json


# -- the whole story through the API ----------------------------------------------------


def test_application_to_certificate_only_through_the_api(api, engine):
    started = api.post("/cases", "alice", json={"process": "application", "scheme": "CWI"})
    assert started.status_code == 201
    case_id = started.json["id"]

    steps = [
        ("submit_application", {}),
        ("check_completeness", {}),
        ("review_eligibility", {}),
        ("schedule_assessment", {}),
        ("assign_examiner", {"examiner": "examiner"}),
        ("administer_exam", {}),
        ("score_written", {}),
        ("score_practical", {}),
        ("review_file", {}),
        ("decide_certification", {}),
    ]
    for spec_id, overrides in steps:
        api_complete_step(api, case_id, spec_id, DEFAULT_PERFORMERS[spec_id], **overrides)

    case = api.get(f"/cases/{case_id}", "alice").json
    assert case["status"] == "completed" and case["ready_tasks"] == []
    number = case["certificate"]["number"]
    assert number.startswith("CWI-2026-")
    assert case["certificate"]["status"] == "active"

    record = api.get(f"/certificates/{number}")
    assert record.status_code == 200
    assert record.json["status"] == "active"
    assert record.json["holder"] == "Alice Applicant"
    assert api.get(f"/certificates/{number.lower()}").json["number"] == number

    history = api.get(f"/cases/{case_id}/history?per_page=200", "manager").json
    assert "certificate_issued" in [e["action"] for e in history["items"]]
    done = api.get("/tasks?tab=completed", "examiner").json
    assert {t["task_spec_id"] for t in done["items"]} == {"score_written", "score_practical"}
