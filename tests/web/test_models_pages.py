"""The process-model pages: library, history, version, diff, editor endpoints, uploads, forms
and migration, with document control by role (process owners edit, quality managers approve)
and untrusted uploads refused with nothing stored."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.catalog import BPMN_DIR
from engine.demo import DEMO_PASSWORD
from engine.models import ModelVersion
from tests.engine.helpers import start_application
from web import create_app

DECISION = (BPMN_DIR / "decision.bpmn").read_text()
CAMUNDA = (Path(__file__).parents[1] / "data" / "camunda7_file_review.bpmn").read_bytes()
# A user task with no incoming or outgoing flow: the lint rule for disconnected elements.
LOOSE_TASK = """    <bpmn:userTask id="loose_task" name="Loose task">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="role" value="reviewer" />
          <spiffworkflow:property name="form" value="file_review" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
  </bpmn:process>"""
CHANGED_DECISION = DECISION.replace('name="Review certification file"', 'name="Review the file"')


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def text(response) -> str:
    return response.get_data(as_text=True)


def token(client) -> str:
    html = text(client.get("/login"))
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def log_in(client, username: str):
    client.post(
        "/login",
        data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token(client)},
    )
    return client


def post(client, url: str, data: dict | None = None, **kwargs):
    return client.post(url, data={**(data or {}), "csrf_token": token(client)}, **kwargs)


def post_json(client, url: str, body: dict):
    return client.post(
        url,
        data=json.dumps(body),
        content_type="application/json",
        headers={"X-CSRFToken": token(client), "Accept": "application/json"},
    )


def version_rows(engine) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(ModelVersion))


def save_draft(client, xml: str, summary: str = "clearer review step"):
    return post_json(client, "/models/decision/draft", {"xml": xml, "change_summary": summary})


def history_version(engine, number: int) -> ModelVersion:
    return next(v for v in engine.model_history("decision") if v.version == number)


# -- pages show identification -----------------------------------------------------------


def test_library_lists_each_process_with_its_published_version_and_running_cases(engine, client):
    start_application(engine, "alice")
    log_in(client, "owner")
    html = text(client.get("/models"))
    for process_id in ("application", "assessment", "decision"):
        assert f"{process_id} v1" in html
    assert "Running cases" in html
    row = re.search(r'<tr data-process="application".*?</tr>', html, re.S).group(0)
    assert '<td class="running">1</td>' in row
    assert 'action="/models/upload"' in html


def test_a_quality_manager_sees_the_library_without_the_upload_form(client):
    log_in(client, "quality")
    html = text(client.get("/models"))
    assert "decision v1" in html
    assert "/models/upload" not in html


def test_history_lists_versions_newest_first_with_author_and_dates(engine, client):
    log_in(client, "owner")
    assert save_draft(client, CHANGED_DECISION).status_code == 200
    html = text(client.get("/models/decision"))
    assert html.index('data-version="2"') < html.index('data-version="1"')
    assert "Olga Owner" in html
    assert "clearer review step" in html
    assert history_version(engine, 2).checksum[:12] in html
    assert "Submit for review" in html
    assert "Approve" not in html


def test_version_page_shows_identification_and_findings(engine, client):
    log_in(client, "examiner")
    published = history_version(engine, 1)
    html = text(client.get("/models/decision/v1"))
    assert 'data-process="decision" data-version="1"' in html
    assert published.checksum[:12] in html
    assert "published" in html
    assert "Certification decision" in html
    assert "/models/decision/v1.bpmn?download=1" in html
    assert "No findings" in html


def test_model_source_downloads_as_a_named_bpmn_file(client):
    log_in(client, "clerk")
    response = client.get("/models/decision/v1.bpmn?download=1")
    assert response.mimetype == "application/xml"
    assert 'filename="decision-v1.bpmn"' in response.headers["Content-Disposition"]


def test_diff_page_lists_the_changed_task_and_marks_both_diagrams(engine, client):
    log_in(client, "owner")
    save_draft(client, CHANGED_DECISION.replace("</bpmn:process>", LOOSE_TASK))
    response = client.get("/models/decision/diff?from=1&to=2")
    assert response.status_code == 200
    html = text(response)
    assert "v1 → v2" in html
    assert 'class="change-changed" data-element-id="review_file"' in html
    assert 'class="change-added" data-element-id="loose_task"' in html
    assert "&#34;diff-added&#34;: [&#34;loose_task&#34;]" in html or '"loose_task"' in html


def test_diff_with_a_version_that_does_not_exist_is_a_404_naming_it(client):
    log_in(client, "owner")
    response = client.get("/models/decision/diff?from=1&to=9")
    assert response.status_code == 404
    assert "has no version 9" in text(response)
    assert client.get("/models/decision/diff?from=one&to=1").status_code == 400


# -- the editor's JSON endpoints ------------------------------------------------------------


def test_editor_page_configures_the_modeler_on_the_published_version(client):
    log_in(client, "owner")
    html = text(client.get("/models/decision/edit"))
    config = json.loads(re.search(r'id="modeler-config">(.*?)</script>', html, re.S).group(1))
    assert config["version"]["version"] == 1
    assert config["version"]["status"] == "published"
    assert config["source_url"] == "/models/decision/v1.bpmn"
    assert config["can_edit"] is True
    assert "bpmn-modeler.production.min.js" in html
    assert 'value="decision_maker"' in html and 'value="SOD-DECIDE"' in html
    assert 'value="certification_decision"' in html


def test_validate_returns_the_disconnected_task_as_a_finding(client):
    log_in(client, "owner")
    response = post_json(
        client, "/models/validate", {"xml": DECISION.replace("</bpmn:process>", LOOSE_TASK)}
    )
    assert response.status_code == 200
    findings = response.get_json()["findings"]
    loose = [f for f in findings if f["element_id"] == "loose_task"]
    assert loose and all(set(f) >= {"severity", "element_name", "message"} for f in loose)
    assert any(f["severity"] == "error" for f in loose)


def test_saving_twice_updates_the_one_open_draft(engine, client):
    log_in(client, "owner")
    first = save_draft(client, CHANGED_DECISION)
    assert first.status_code == 200
    body = first.get_json()
    assert body["version"]["version"] == 2 and body["status"] == "draft"
    second = save_draft(client, CHANGED_DECISION.replace("Review the file", "Review it"))
    assert second.get_json()["version"]["id"] == body["version"]["id"]
    assert [v.version for v in engine.model_history("decision")] == [2, 1]


@pytest.mark.parametrize(
    "xml, says",
    [
        ("this is not XML", "not well-formed"),
        ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "DTD"),
    ],
)
def test_hostile_xml_posted_to_the_draft_endpoint_is_refused_as_json(engine, client, xml, says):
    log_in(client, "owner")
    before = version_rows(engine)
    response = save_draft(client, xml)
    assert response.status_code == 400
    assert says in response.get_json()["error"]
    assert version_rows(engine) == before


def test_draft_endpoint_names_a_missing_xml_field(client):
    log_in(client, "owner")
    response = post_json(client, "/models/decision/draft", {"change_summary": "x"})
    assert response.status_code == 400
    assert "'xml'" in response.get_json()["error"]


# -- uploads ----------------------------------------------------------------------------------


def upload(client, data: bytes, filename: str = "model.bpmn"):
    import io

    return post(
        client,
        "/models/upload",
        {"file": (io.BytesIO(data), filename), "change_summary": "from Camunda"},
        content_type="multipart/form-data",
    )


def test_camunda_upload_creates_a_draft_and_lists_what_could_not_be_mapped(engine, client):
    log_in(client, "owner")
    response = upload(client, CAMUNDA, "review.bpmn")
    assert response.status_code == 200
    html = text(response)
    assert "saved as file_review_camunda v1" in html
    [draft] = engine.model_history("file_review_camunda")
    assert draft.status == "draft"
    assert 'spiffworkflow:property name="role" value="reviewer"' in draft.bpmn_xml
    warnings = html.split("What could not be mapped", 1)[1].split("Findings", 1)[0]
    assert "Activity_review" in warnings and "assignee" in warnings


HOSTILE = {
    "XXE": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;'
    b"</bpmn:definitions>",
    "entity bomb": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<l>&c;</l>",
    "3 MB": DECISION.replace(
        "</bpmn:definitions>", "<!--" + "x" * (3 * 1024 * 1024) + "--></bpmn:definitions>"
    ).encode(),
    "not XML": b"%PDF-1.7 definitely not a process model",
    "sandbox-breaking script": DECISION.replace(
        "</bpmn:process>",
        '<bpmn:scriptTask id="evil" name="Evil"><bpmn:script>'
        "__import__('os').system('rm -rf /')</bpmn:script></bpmn:scriptTask></bpmn:process>",
    ).encode(),
}
SAYS = {
    "XXE": "DTD",
    "entity bomb": "DTD",
    "3 MB": "the limit is",
    "not XML": "not well-formed",
    "sandbox-breaking script": "sandbox",
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_upload_is_refused_with_a_clear_message_and_nothing_stored(engine, client, kind):
    log_in(client, "owner")
    before = version_rows(engine)
    response = upload(client, HOSTILE[kind])
    assert 400 <= response.status_code < 500
    html = text(response)
    assert "was not accepted" in html
    assert SAYS[kind] in html
    assert "Nothing was stored" in html
    assert version_rows(engine) == before


def test_upload_without_a_file_names_the_field(client):
    log_in(client, "owner")
    response = post(client, "/models/upload", {})
    assert response.status_code == 400
    assert "choose a .bpmn file" in text(response)


# -- document control through the pages ----------------------------------------------------


def test_owner_submits_and_quality_manager_approves_and_publishes(engine, client):
    log_in(client, "owner")
    draft_id = save_draft(client, CHANGED_DECISION).get_json()["version"]["id"]
    response = post(client, f"/models/versions/{draft_id}/submit", {"change_summary": "renamed"})
    assert response.status_code == 303
    assert engine.model_version(draft_id).status == "in_review"
    assert post(client, f"/models/versions/{draft_id}/approve").status_code == 403
    client.post("/logout", data={"csrf_token": token(client)})

    log_in(client, "quality")
    assert "Approve" in text(client.get("/models/decision"))
    assert post(client, f"/models/versions/{draft_id}/approve").status_code == 303
    response = post(client, f"/models/versions/{draft_id}/publish", {"review_due_on": "2027-01-31"})
    assert response.status_code == 303
    published = engine.model_version(draft_id)
    assert published.status == "published"
    assert str(published.review_due_on) == "2027-01-31"
    assert history_version(engine, 1).status == "retired"
    html = text(client.get("/models/decision"))
    assert "Quinn Quality" in html and "renamed" in html


def test_quality_manager_returns_a_version_with_a_comment(engine, client):
    log_in(client, "owner")
    draft_id = save_draft(client, CHANGED_DECISION).get_json()["version"]["id"]
    post(client, f"/models/versions/{draft_id}/submit")
    client.post("/logout", data={"csrf_token": token(client)})
    log_in(client, "quality")
    assert post(client, f"/models/versions/{draft_id}/return", {}).status_code == 400
    response = post(client, f"/models/versions/{draft_id}/return", {"comment": "name the SLA"})
    assert response.status_code == 303
    returned = engine.model_version(draft_id)
    assert returned.status == "draft" and returned.review_comment == "name the SLA"


def test_submitting_a_draft_with_errors_is_refused_naming_the_element(engine, client):
    log_in(client, "owner")
    broken = DECISION.replace("</bpmn:process>", LOOSE_TASK)
    draft_id = save_draft(client, broken).get_json()["version"]["id"]
    response = post(client, f"/models/versions/{draft_id}/submit")
    assert response.status_code == 422
    assert "loose_task" in text(response)
    assert engine.model_version(draft_id).status == "draft"


def test_publish_with_a_malformed_review_date_is_a_400_naming_the_field(engine, client):
    log_in(client, "quality")
    response = post(client, "/models/versions/1/publish", {"review_due_on": "next year"})
    assert response.status_code == 400
    assert "review_due_on" in text(response)


# -- forms --------------------------------------------------------------------------------------


def test_form_editor_shows_the_schema_of_the_shipped_form(client):
    log_in(client, "owner")
    html = text(client.get("/models/decision/forms/file_review"))
    assert "&#34;type&#34;: &#34;object&#34;" in html or '"type": "object"' in html
    assert 'id="form-preview"' in html


def test_form_preview_is_drawn_like_the_task_page(client):
    log_in(client, "owner")
    schema = {
        "title": "Site visit",
        "type": "object",
        "required": ["visited_on"],
        "properties": {"visited_on": {"type": "string", "format": "date", "title": "Visited on"}},
    }
    response = post_json(client, "/models/forms/preview", {"schema": json.dumps(schema)})
    assert response.status_code == 200
    html = text(response)
    assert "<h2>Site visit</h2>" in html
    assert 'name="visited_on"' in html and "Visited on" in html


@pytest.mark.parametrize(
    "schema, says",
    [
        ("{not json", "not valid JSON"),
        ('{"type": "object", "properties": {"a": {"type": "colour"}}}', "invalid JSON Schema"),
        ('{"type": "array"}', '"type": "object"'),
    ],
)
def test_form_preview_names_what_is_wrong_with_the_schema(client, schema, says):
    log_in(client, "owner")
    response = post_json(client, "/models/forms/preview", {"schema": schema})
    assert response.status_code == 422
    assert says in response.get_json()["error"]


def test_a_new_form_is_saved_into_the_draft(engine, client):
    log_in(client, "owner")
    schema = {"title": "Site visit", "type": "object", "properties": {"notes": {"type": "string"}}}
    response = post(client, "/models/decision/forms/site_visit", {"schema": json.dumps(schema)})
    assert response.status_code == 303
    draft = next(v for v in engine.model_history("decision") if v.status == "draft")
    assert engine.version_forms(draft.id)["site_visit"] == schema
    assert "Site visit" in text(client.get("/models/decision/forms/site_visit"))


def test_saving_a_form_that_is_not_json_keeps_the_text_and_says_why(engine, client):
    log_in(client, "owner")
    before = version_rows(engine)
    response = post(client, "/models/decision/forms/site_visit", {"schema": "{oops"})
    assert response.status_code == 422
    assert "not valid JSON" in text(response) and "{oops" in text(response)
    assert version_rows(engine) == before


# -- migration ------------------------------------------------------------------------------


def publish_change(engine, xml: str) -> int:
    saved = engine.save_model_draft("owner", xml, change_summary="change")
    engine.submit_model_for_review(saved.version.id, "owner")
    engine.approve_model_version(saved.version.id, "quality")
    engine.publish_model_version(saved.version.id, "quality")
    return saved.version.id


def test_quality_manager_previews_and_migrates_a_running_case(engine, client):
    case_id = start_application(engine, "alice")
    app_xml = (BPMN_DIR / "application.bpmn").read_text()
    target = publish_change(engine, app_xml.replace('name="', 'name="Renamed: ', 1))
    log_in(client, "quality")
    history = text(client.get("/models/application"))
    assert f"/models/application/migrate?to={target}" in history
    page = text(client.get(f"/models/application/migrate?to={target}"))
    assert f'value="{case_id}"' in page
    preview = post(
        client,
        "/models/application/migrate",
        {"to": str(target), "case_id": str(case_id), "action": "preview"},
    )
    assert preview.status_code == 200
    assert "can migrate" in text(preview)
    result = post(
        client,
        "/models/application/migrate",
        {"to": str(target), "case_id": str(case_id), "action": "migrate"},
    )
    assert result.status_code == 200
    assert "migrated" in text(result)
    assert engine.case(case_id).model_version_id == target


def test_migration_without_a_chosen_case_is_a_400(engine, client):
    log_in(client, "quality")
    target = history_version(engine, 1).id
    response = post(client, "/models/decision/migrate", {"to": str(target), "action": "preview"})
    assert response.status_code == 400
    assert "case_id" in text(response)


# -- who may do what ---------------------------------------------------------------------------

USERS = ("owner", "quality", "examiner", "alice", None)
GET_ROUTES = {
    # path: users who get a 200 page
    "/models": {"owner", "quality", "examiner"},
    "/models/decision": {"owner", "quality", "examiner"},
    "/models/decision/v1": {"owner", "quality", "examiner"},
    "/models/decision/v1.bpmn": {"owner", "quality", "examiner", "alice"},
    "/models/decision/diff?from=1&to=1": {"owner", "quality", "examiner"},
    "/models/decision/edit": {"owner", "quality"},
    "/models/decision/forms/file_review": {"owner", "quality"},
    "/models/decision/migrate": {"quality"},
}


@pytest.mark.parametrize("username", USERS)
def test_every_models_page_answers_each_role_without_a_server_error(client, username):
    if username:
        log_in(client, username)
    for path, allowed in GET_ROUTES.items():
        status = client.get(path).status_code
        if username is None:
            assert status == 302, path
        elif username in allowed:
            assert status == 200, path
        else:
            assert status == 403, path


POST_ROUTES = {
    # path: (form data or JSON body, the role that may do it)
    "/models/upload": ({}, "owner"),
    "/models/decision/draft": ({"xml": DECISION}, "owner"),
    "/models/validate": ({"xml": DECISION}, "modeller"),
    "/models/forms/preview": ({"schema": {"type": "object"}}, "modeller"),
    "/models/decision/forms/site_visit": ({"schema": "{}"}, "owner"),
    "/models/versions/1/submit": ({}, "owner"),
    "/models/versions/1/approve": ({}, "quality"),
    "/models/versions/1/return": ({"comment": "x"}, "quality"),
    "/models/versions/1/publish": ({}, "quality"),
    "/models/versions/1/retire": ({}, "quality"),
    "/models/decision/migrate": ({"to": "1", "case_id": "1"}, "quality"),
}
JSON_ROUTES = {"/models/decision/draft", "/models/validate", "/models/forms/preview"}


@pytest.mark.parametrize("username", USERS)
def test_every_models_action_is_refused_to_the_wrong_role_and_never_fails(engine, client, username):
    if username:
        log_in(client, username)
    for path, (body, role) in POST_ROUTES.items():
        if path in JSON_ROUTES:
            response = post_json(client, path, body)
        else:
            response = post(client, path, body)
        status = response.status_code
        assert status < 500, (path, status)
        may = role == username or (role == "modeller" and username in ("owner", "quality"))
        if username is None:
            assert status in (302, 401), path
        elif not may:
            assert status == 403, (path, status)
            assert "may" in text(response) or "only" in text(response), path
        else:
            assert status != 403, (path, status)


def test_a_post_without_the_csrf_token_is_a_400(engine, client):
    log_in(client, "owner")
    before = version_rows(engine)
    response = client.post(
        "/models/decision/draft",
        data=json.dumps({"xml": DECISION}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert version_rows(engine) == before
    assert client.post("/models/versions/1/retire").status_code == 400
