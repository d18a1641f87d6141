"""The task page: the form rendered from the task's JSON Schema, completion, refusals."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from werkzeug.datastructures import MultiDict

from engine.forms import FormRegistry
from engine.models import Document
from tests.engine.helpers import do, drive_to_scoring, ready_task, start_application, task_row
from tests.web.test_auth import login
from web import create_app, forms_render


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def eligibility(engine):
    case_id = start_application(engine)
    do(engine, case_id, "submit_application", "alice")
    do(engine, case_id, "check_completeness")
    return case_id, ready_task(engine, case_id, "review_eligibility").id


def test_reviewer_completes_the_eligibility_review_from_the_task_page(client, engine, eligibility):
    case_id, task_id = eligibility
    login(client, "reviewer")
    page = client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Assess whether the applicant meets the prerequisites" in html  # instructions
    assert "Alice Applicant" in html and "Certified Welding Inspector" in html
    assert 'type="radio"' in html and 'name="eligibility_outcome"' in html
    assert "More evidence required" in html  # x-enum-labels
    assert '<textarea id="field-eligibility_rationale"' in html
    assert 'class="required"' in html

    response = client.post(
        f"/tasks/{task_id}",
        data={
            "csrf_token": token_of(html),
            "eligibility_outcome": "eligible",
            "eligibility_rationale": "Meets every prerequisite of the scheme.",
            "eligibility_evidence_requested": "",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/inbox")
    assert "Review eligibility completed" in client.get("/inbox").get_data(as_text=True)
    row = task_row(engine, task_id)
    assert row.status == "completed"
    assert row.submitted_data == {
        "eligibility_outcome": "eligible",
        "eligibility_rationale": "Meets every prerequisite of the scheme.",
    }
    assert [t.task_spec_id for t in engine.ready_tasks(case_id)] == ["schedule_assessment"]


def test_invalid_data_is_shown_next_to_each_field_and_input_is_kept(client, eligibility):
    _case_id, task_id = eligibility
    login(client, "reviewer")
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    response = client.post(
        f"/tasks/{task_id}",
        data={
            "csrf_token": token_of(html),
            "eligibility_outcome": "more_evidence",
            "eligibility_rationale": "Needs <proof> of practice",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<p class="field-error" id="error-eligibility_evidence_requested">' in html
    assert "Evidence requested is required" in html
    assert "Needs &lt;proof&gt; of practice</textarea>" in html
    assert re.search(r'value="more_evidence"[^>]*checked', html)


def test_unparsable_number_is_that_fields_error(client, engine):
    case_id = start_application(engine)
    login(client, "alice")
    task_id = ready_task(engine, case_id, "submit_application").id
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'type="number"' in html and 'min="0"' in html and 'max="70"' in html
    response = client.post(
        f"/tasks/{task_id}",
        data={"csrf_token": token_of(html), "motivation": "", "experience_years": "ten"},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Years of relevant experience must be a whole number" in html
    assert '<p class="field-error" id="error-motivation">' in html
    assert '<p class="field-error" id="error-declaration_accurate">' in html
    assert 'value="ten"' in html


def test_applicant_completes_their_own_step_and_goes_to_the_portal(client, engine):
    case_id = start_application(engine)
    task_id = ready_task(engine, case_id, "submit_application").id
    login(client, "alice")
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Declaration of accuracy" in html and 'type="checkbox"' in html
    response = client.post(
        f"/tasks/{task_id}",
        data={
            "csrf_token": token_of(html),
            "motivation": "I inspect welds every day.",
            "experience_years": "6",
            "employer": "",
            "declaration_accurate": "true",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/portal")
    assert task_row(engine, task_id).submitted_data == {
        "motivation": "I inspect welds every day.",
        "experience_years": 6,
        "declaration_accurate": True,
    }


def test_double_submit_is_a_409_saying_who_completed_it(client, eligibility):
    _case_id, task_id = eligibility
    login(client, "reviewer")
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    data = {
        "csrf_token": token_of(html),
        "eligibility_outcome": "eligible",
        "eligibility_rationale": "Fine.",
    }
    assert client.post(f"/tasks/{task_id}", data=data).status_code == 303
    again = client.post(f"/tasks/{task_id}", data=data)
    assert again.status_code == 409
    text = again.get_data(as_text=True)
    assert "already completed by Rafael Reviewer" in text
    assert "Fine." in text  # the submitted values, read-only


def test_staff_of_another_role_sees_the_form_read_only_with_the_reason(client, eligibility):
    _case_id, task_id = eligibility
    login(client, "clerk")
    page = client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "You cannot complete this task" in html
    assert "needs the reviewer role" in html
    assert "disabled" in html and "Complete “Review eligibility”" not in html
    response = client.post(
        f"/tasks/{task_id}",
        data={
            "csrf_token": token_of(html),
            "eligibility_outcome": "eligible",
            "eligibility_rationale": "x",
        },
    )
    assert response.status_code == 403
    assert "needs the reviewer role" in response.get_data(as_text=True)


def test_task_claimed_by_a_colleague_cannot_be_completed(client, engine, eligibility):
    _case_id, task_id = eligibility
    engine.claim(task_id, "reviewer")
    login(client, "reviewer_panel")
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "claimed by Rafael Reviewer" in html
    response = client.post(
        f"/tasks/{task_id}",
        data={"csrf_token": token_of(html), "eligibility_outcome": "eligible"},
    )
    assert response.status_code == 403


def test_applicants_cannot_see_other_peoples_or_staff_tasks(client, engine, eligibility):
    case_id, task_id = eligibility
    login(client, "alice")
    assert client.get(f"/tasks/{task_id}").status_code == 404  # a staff step of her own case
    client.post("/logout", data={"csrf_token": token_of(client.get("/login").get_data(True))})
    other = start_application(engine, "bob", "DPO")
    bobs = ready_task(engine, other, "submit_application").id
    assert client.get(f"/tasks/{bobs}").status_code == 302  # logged out: to the login page
    login(client, "alice")
    assert client.get(f"/tasks/{bobs}").status_code == 404


def test_examiner_not_involved_in_the_case_gets_404(client, eligibility):
    _case_id, task_id = eligibility
    login(client, "examiner")
    assert client.get(f"/tasks/{task_id}").status_code == 404


def test_bad_ids_and_anonymous_access(client, eligibility):
    _case_id, task_id = eligibility
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    login(client, "reviewer")
    assert client.get("/tasks/999999").status_code == 404
    assert client.get("/tasks/abc").status_code == 404
    assert client.get("/tasks/-1").status_code == 404


def test_wrong_content_type_and_huge_posts_are_4xx(client, app, eligibility):
    _case_id, task_id = eligibility
    login(client, "reviewer")
    response = client.post(
        f"/tasks/{task_id}",
        data=json.dumps({"eligibility_outcome": "eligible"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    huge = client.post(
        f"/tasks/{task_id}",
        data={"csrf_token": token_of(html), "eligibility_rationale": "x" * (13 * 1024 * 1024)},
    )
    assert 400 <= huge.status_code < 500
    assert task_row(app.extensions["certrail"], task_id).status == "ready"


def test_score_task_has_a_number_input_with_bounds(client, engine):
    case_id = start_application(engine)
    drive_to_scoring(engine, case_id)
    task_id = ready_task(engine, case_id, "score_written").id
    login(client, "examiner")
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert re.search(r'<input type="number" id="field-written_score"[^>]*min="0" max="100"', html)
    response = client.post(
        f"/tasks/{task_id}", data={"csrf_token": token_of(html), "written_score": "101"}
    )
    assert response.status_code == 422
    assert "must be at most 100" in response.get_data(as_text=True)


def test_file_field_is_stored_as_a_document_with_the_completion(client, engine, tmp_path):
    """A form with an `x-widget: file` property: the upload becomes a document whose id is the
    field's value; a refused completion keeps no file."""
    forms_dir = tmp_path / "forms"
    shutil.copytree(engine.forms.directory, forms_dir)
    path = forms_dir / "additional_evidence.json"
    schema = json.loads(path.read_text())
    schema["properties"]["evidence_file"] = {
        "type": "integer",
        "title": "Evidence file",
        "x-widget": "file",
    }
    schema["required"].append("evidence_file")
    path.write_text(json.dumps(schema))
    engine.forms = FormRegistry(forms_dir)

    case_id = start_application(engine)
    do(engine, case_id, "submit_application", "alice")
    do(engine, case_id, "check_completeness")
    do(engine, case_id, "review_eligibility", eligibility_outcome="more_evidence")
    task_id = ready_task(engine, case_id, "provide_evidence").id
    login(client, "alice")
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'type="file"' in html

    def post(**extra):
        import io

        return client.post(
            f"/tasks/{task_id}",
            data={
                "csrf_token": token_of(html),
                "evidence_description": "Eye test certificate",
                "evidence_file": (io.BytesIO(b"%PDF-1.4 test"), "eye test.pdf", "application/pdf"),
                **extra,
            },
            content_type="multipart/form-data",
        )

    refused = post()  # declaration missing: the document must not be kept
    assert refused.status_code == 422
    with engine.sessions() as session:
        assert session.query(Document).count() == 0
    done = post(evidence_declaration_accurate="true")
    assert done.status_code == 303
    with engine.sessions() as session:
        document = session.query(Document).one()
        assert document.filename == "eye test.pdf" and document.task_id == task_id
    assert task_row(engine, task_id).submitted_data["evidence_file"] == document.id


# -- the renderer on its own ----------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Name", "description": "Full name"},
        "level": {"type": "string", "enum": ["a", "b", "c", "d"], "x-enum-labels": ["A", "B"]},
        "ratio": {"type": "number", "minimum": 0.5},
        "tags": {"type": "array", "items": {"type": "integer"}},
        "modes": {"type": "array", "items": {"enum": ["x", "y"]}},
        "on": {"type": "boolean"},
        "when": {"type": "string", "format": "date"},
        "from_case": {"type": "string", "x-prefill": "person.name"},
    },
    "required": ["name"],
}


def test_renderer_widgets():
    fields = {f.name: f for f in forms_render.build_fields(SCHEMA)}
    assert fields["level"].kind == "select"
    assert fields["level"].options == [("a", "A"), ("b", "B"), ("c", "c"), ("d", "d")]
    assert fields["ratio"].kind == "number" and fields["tags"].kind == "lines"
    assert fields["modes"].kind == "choices" and fields["on"].kind == "checkbox"
    assert fields["when"].kind == "date" and fields["name"].required
    html = forms_render.render_fields(list(fields.values()))
    assert re.search(r'<input type="date" id="field-when"[^>]* name="when"', html)
    assert re.search(r'<select id="field-level"[^>]* name="level"', html)
    assert 'step="any"' in html and 'min="0.5"' in html
    assert '<p class="help" id="help-name">Full name</p>' in html


def test_renderer_converts_submitted_strings_to_schema_types():
    form = MultiDict(
        [
            ("name", "  Ada "),
            ("level", "b"),
            ("ratio", "0.75"),
            ("tags", "1\n2\n\n3"),
            ("modes", "x"),
            ("modes", "y"),
            ("when", ""),
            ("unknown", "ignored"),
        ]
    )
    data, errors = forms_render.parse_submission(SCHEMA, form)
    assert errors == {}
    assert data == {
        "name": "Ada",
        "level": "b",
        "ratio": 0.75,
        "tags": [1, 2, 3],
        "modes": ["x", "y"],
        "on": False,
    }
    data, errors = forms_render.parse_submission(
        SCHEMA, MultiDict([("ratio", "nan"), ("tags", "1\ntwo")])
    )
    assert set(errors) == {"ratio", "tags"} and "name" not in data


def test_renderer_prefill_and_display():
    assert forms_render.prefill_values(SCHEMA, {"person": {"name": "Alice"}}) == {
        "from_case": "Alice"
    }
    assert forms_render.display_value(SCHEMA["properties"]["level"], "a") == "A"
    assert forms_render.display_value({"type": "boolean"}, True) == "Yes"
