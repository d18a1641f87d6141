"""SQL and HTML injection strings typed into every free-text field of a whole certification
are stored exactly as typed and shown escaped on every page that shows them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.models import Case
from tests.engine.helpers import DEFAULT_PERFORMERS, form_data, ready_task, start_application
from tests.web.test_no_server_errors import logged_in
from web import create_app

SCRIPT = '<script>alert("owned")</script>'
PAYLOAD = f"{SCRIPT}' OR 1=1; DROP TABLE cases;-- <img src=x onerror=alert(1)>"
# Fields whose value the process acts on (the user a task goes to) keep a real value.
ACTED_ON = {"examiner"}
STEPS = [
    "submit_application",
    "check_completeness",
    "review_eligibility",
    "schedule_assessment",
    "assign_examiner",
    "administer_exam",
    "score_written",
    "score_practical",
    "review_file",
    "decide_certification",
]


def hostile(schema: dict) -> dict[str, str]:
    """The payload for every free-text field of a form (cut to its maxLength)."""
    return {
        name: PAYLOAD[: prop.get("maxLength", len(PAYLOAD))]
        for name, prop in schema.get("properties", {}).items()
        if prop.get("type") == "string"
        and not {"enum", "format", "pattern", "const"} & set(prop)
        and name not in ACTED_ON
    }


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_injection_strings_are_stored_verbatim_and_shown_escaped(engine):
    case_id = start_application(engine, "alice", "CWI")
    typed: list[str] = []
    for step in STEPS:
        task = ready_task(engine, case_id, step)
        schema = engine.forms.get(task.form).schema
        overrides = hostile(schema)
        typed += overrides.values()
        engine.complete(
            task.id, DEFAULT_PERFORMERS[step], form_data(engine, task.form, **overrides)
        )
    assert typed, "the forms of the path have free-text fields"
    with engine.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Case)) > 0  # no table dropped

    app = create_app({"ENGINE": engine, "TESTING": True})
    for username, url in (
        ("manager", f"/cases/{case_id}"),
        ("manager", "/cases?q=" + PAYLOAD),
        ("alice", f"/portal/cases/{case_id}"),
        ("clerk", "/inbox?q=" + PAYLOAD),
    ):
        page = logged_in(app, username).get(url)
        html = page.get_data(as_text=True)
        assert page.status_code == 200, (url, page.status_code)
        assert SCRIPT not in html and "<img src=x" not in html, url
    case_page = logged_in(app, "manager").get(f"/cases/{case_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(" in case_page  # shown, as text

    stored = engine.case_data(case_id)
    assert set(typed) <= {v for v in stored.values() if isinstance(v, str)}  # kept as typed
