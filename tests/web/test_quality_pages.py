"""The quality pages: exam item analysis (upload, summary, charts, CSV) and the analytics page
(figures for a period, CSV per figure), with who may see them."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

import pytest
from sqlalchemy import func, select

from engine.incidents import record_incident
from engine.item_analyses import demo_responses
from engine.item_analysis import analyse, read_responses
from engine.models import Case, CaseLink, ItemAnalysis
from tests.engine.helpers import events
from tests.engine.test_analytics import take_application
from tests.engine.test_appeals_complaints import lodge_complaint
from tests.engine.test_item_analysis import SMALL
from tests.web.test_auth import login
from web import create_app


@pytest.fixture
def client(engine):
    return create_app({"ENGINE": engine, "TESTING": True}).test_client()


def token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def upload(client, responses: bytes, key: bytes | None = None, **fields):
    data = {
        "csrf_token": token(client, "/quality/items"),
        "exam_form": "CWI written 2026-A",
        "scheme": "CWI",
        "responses": (io.BytesIO(responses), "responses.csv"),
        **fields,
    }
    if key is not None:
        data["key"] = (io.BytesIO(key), "key.csv")
    return client.post("/quality/items", data=data, content_type="multipart/form-data")


def stored_count(engine) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(ItemAnalysis))


def rows_of(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


# -- who may see them ---------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["alice", "clerk", "examiner", "decider", "admin"])
def test_item_analysis_is_only_for_quality_managers_and_managers(client, username):
    login(client, username)
    assert client.get("/quality/items").status_code == 403
    assert client.get("/quality/items/1").status_code == 403
    assert client.get("/quality/items/1.csv").status_code == 403


@pytest.mark.parametrize("username", ["alice", "clerk", "reviewer", "decider", "panel"])
def test_analytics_is_only_for_managers_quality_managers_and_admins(client, username):
    login(client, username)
    assert client.get("/analytics").status_code == 403
    assert client.get("/analytics/cases.csv").status_code == 403


def test_anonymous_visitors_are_sent_to_login(client):
    for path in ("/quality/items", "/analytics", "/analytics/decisions.csv"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("username", ["quality", "manager"])
def test_oversight_roles_find_both_pages_in_the_navigation(client, username):
    login(client, username)
    html = client.get("/analytics").get_data(as_text=True)
    assert 'href="/analytics"' in html and 'href="/quality/items"' in html


# -- item analysis ------------------------------------------------------------------------------


def test_an_upload_is_stored_and_shown_with_its_figures_and_charts(client, engine):
    login(client, "quality")
    response = upload(client, SMALL.encode(), pass_mark="2")
    assert response.status_code == 303
    analysis_id = int(response.headers["Location"].rsplit("/", 1)[1])
    html = client.get(f"/quality/items/{analysis_id}").get_data(as_text=True)
    expected = analyse(read_responses(SMALL), pass_mark=2)
    assert "CWI written 2026-A" in html
    assert f"<strong>{expected.kr20:.3f}</strong>" in html
    assert f"<strong>{expected.sem:.2f}</strong>" in html
    assert "<strong>40.0%</strong>" in html  # totals 3, 2, 1, 1, 0: two of five reach 2
    assert "low reliability" in html
    for item in ("i1", "i2", "i3"):
        assert f'data-item="{item}"' in html
    assert html.count("<svg") >= 2
    assert "Items per difficulty band: " in html
    assert html.count('class="threshold"') == 3  # p from 0.2 to 0.9, rpb_rest 0.15
    listing = client.get("/quality/items").get_data(as_text=True)
    assert f'data-analysis="{analysis_id}"' in listing


def test_the_item_table_exports_as_csv_with_the_stored_figures(client, engine):
    login(client, "manager")
    upload(client, SMALL.encode())
    [analysis_id] = _ids(engine)
    rows = rows_of(client.get(f"/quality/items/{analysis_id}.csv"))
    expected = analyse(read_responses(SMALL))
    assert [r["item"] for r in rows] == ["i1", "i2", "i3"]
    for row in rows:
        stats = expected.items[row["item"]]
        assert float(row["p"]) == stats.p
        assert float(row["rpb_rest"]) == stats.rpb_rest
        assert row["flags"] == ";".join(stats.flags)


def test_a_keyed_upload_shows_the_distractors_and_flags_the_miskeyed_item(client, engine):
    login(client, "quality")
    responses, key = demo_responses()
    response = upload(client, responses, key)
    assert response.status_code == 303
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Distractors" in html
    assert re.search(r'<tr class="flagged" data-item="Q13">', html)
    rows = {r["item"]: r for r in rows_of(client.get(response.headers["Location"] + ".csv"))}
    assert "negative_discrimination" in rows["Q13"]["flags"]
    assert rows["Q13"]["options"].count("=") == 4


def test_a_bad_file_is_a_400_naming_the_line_and_stores_nothing(client, engine):
    login(client, "quality")
    response = upload(client, b"candidate,item,score\nc1,i1,1\nc2,i1,yes\n")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "line 3" in html and "score" in html
    assert 'value="CWI written 2026-A"' in html  # the form keeps what was typed
    assert stored_count(engine) == 0


def test_a_missing_file_or_a_wrong_threshold_is_a_400_naming_the_field(client, engine):
    login(client, "quality")
    data = {"csrf_token": token(client, "/quality/items"), "exam_form": "x"}
    response = client.post("/quality/items", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "responses" in response.get_data(as_text=True)
    response = upload(client, SMALL.encode(), min_p="lots")
    assert response.status_code == 400 and "min_p" in response.get_data(as_text=True)
    response = upload(client, SMALL.encode(), max_p="1.5")
    assert response.status_code == 400 and "max_p" in response.get_data(as_text=True)
    assert stored_count(engine) == 0


def test_a_file_over_the_size_limit_is_refused(client, engine, monkeypatch):
    import web.quality

    monkeypatch.setattr(web.quality, "MAX_FILE_BYTES", 100)
    login(client, "quality")
    response = upload(client, SMALL.encode())
    assert response.status_code == 400
    assert "larger than" in response.get_data(as_text=True)
    assert stored_count(engine) == 0


def test_an_unknown_analysis_is_not_found(client):
    login(client, "quality")
    assert client.get("/quality/items/999").status_code == 404


def _ids(engine) -> list[int]:
    with engine.sessions() as session:
        return list(session.scalars(select(ItemAnalysis.id)))


# -- analytics ----------------------------------------------------------------------------------


@pytest.fixture
def decided(engine, clock):
    """Alice's CWI application granted in March, Bob's DPO application refused in April;
    the page is looked at in June."""
    take_application(engine, clock, "alice", "CWI", datetime(2026, 3, 10, 9), 2, "grant")
    take_application(engine, clock, "bob", "DPO", datetime(2026, 4, 5, 9), 4, "refuse")
    clock.set(datetime(2026, 6, 15, 9))


@pytest.mark.parametrize("username", ["manager", "quality", "admin"])
def test_the_analytics_page_shows_the_period_figures(client, decided, username):
    login(client, username)
    html = client.get("/analytics").get_data(as_text=True)
    assert "Jul 2025 – Jun 2026" in html
    assert "Cases started per month: Jul 25 0," in html
    assert "Mar 26 1, Apr 26 1, May 26 0, Jun 26 0" in html
    assert "Certification decisions per month:" in html
    assert re.search(r'data-scheme="CWI"><td>CWI</td><td>1</td><td>0</td><td>100.0%', html)
    assert re.search(r'data-scheme="DPO"><td>DPO</td><td>0</td><td>1</td><td>0.0%', html)
    assert "Median days per step: Check application completeness 3 d" in html
    # nothing overdue, no appeals or complaints: said in words instead of two charts
    assert html.count("<svg") == 4
    assert html.count("Nothing in this period.") == 2


def test_every_analytics_figure_exports_as_csv(client, decided):
    login(client, "manager")
    cases = rows_of(client.get("/analytics/cases.csv"))
    assert {(r["month"], r["scheme"], r["started"], r["completed"]) for r in cases} == {
        ("2026-03", "CWI", "1", "1"),
        ("2026-04", "DPO", "1", "1"),
    }
    decisions = rows_of(client.get("/analytics/decisions.csv?scheme=DPO"))
    assert decisions == [
        {"month": "2026-04", "scheme": "DPO", "granted": "0", "refused": "1", "pass_rate": "0.0000"}
    ]
    times = rows_of(client.get("/analytics/step-times.csv"))
    check = next(r for r in times if r["step"] == "check_completeness")
    assert (check["completed"], check["median_days"]) == ("2", "3.000")
    assert rows_of(client.get("/analytics/overdue-steps.csv")) == []
    assert rows_of(client.get("/analytics/appeals-complaints.csv")) == []
    march = rows_of(client.get("/analytics/cases.csv?from=2026-03&to=2026-03"))
    assert [r["month"] for r in march] == ["2026-03"]


def test_a_wrong_period_or_figure_is_refused_naming_it(client):
    login(client, "manager")
    response = client.get("/analytics?from=2026-02&to=2025-01")
    assert response.status_code == 400 and "&#39;from&#39;" in response.get_data(as_text=True)
    assert client.get("/analytics/cases.csv?to=soon").status_code == 400
    assert client.get("/analytics/everything.csv").status_code == 404


# -- corrective actions raised by hand ----------------------------------------------------------

NEW_ACTION = "/quality/corrective-actions/new"
LATE_REPLIES = "Complaints about exam dates went unanswered for three weeks."


def raise_action(client, **fields):
    return client.post(NEW_ACTION, data={"csrf_token": token(client, NEW_ACTION), **fields})


def corrective_actions(engine) -> list[Case]:
    with engine.sessions() as session:
        return list(session.scalars(select(Case).where(Case.process_id == "corrective_action")))


def test_the_quality_manager_raises_a_corrective_action_from_the_complaints_case_page(
    client, engine
):
    complaint = lodge_complaint(engine, None)
    login(client, "quality")
    page = client.get(f"/cases/{complaint}").get_data(as_text=True)
    link = f"{NEW_ACTION}?source=complaint&amp;reference={complaint}"
    assert link in page
    form = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert '<option value="complaint" selected>' in form
    assert f'name="reference" maxlength="200" value="{complaint}"' in form

    response = raise_action(
        client, source="complaint", reference=str(complaint), description=LATE_REPLIES
    )
    [action] = corrective_actions(engine)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/cases/{action.id}")
    assert engine.case_data(action.id)["nonconformity"] == {
        "source": "complaint",
        "reference": complaint,
        "description": LATE_REPLIES,
    }
    with engine.sessions() as session:
        link_row = session.scalars(select(CaseLink).where(CaseLink.from_case_id == action.id)).one()
    assert (link_row.kind, link_row.to_case_id) == ("raised_from", complaint)
    [raised] = events(engine, case_id=action.id, action="corrective_action_raised")
    assert raised.actor == "quality"
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Analyse the root cause" in shown


def test_a_complaints_officer_raises_one_from_an_incident_or_from_elsewhere(client, engine):
    with engine.unit_of_work() as uow:
        incident = record_incident(uow, "send_notifications", RuntimeError("mail refused"))
        uow.session.flush()
        incident_id = incident.id
    login(client, "complaints")
    response = raise_action(
        client, source="incident", reference=str(incident_id), description=LATE_REPLIES
    )
    assert response.status_code == 303
    response = raise_action(client, source="other", reference="", description=LATE_REPLIES)
    assert response.status_code == 303
    assert [
        engine.case_data(c.id)["nonconformity"]["reference"] for c in corrective_actions(engine)
    ] == [incident_id, None]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({}, "source", "must be one of: complaint, appeal, incident, other"),
        ({"source": "internal_audit", "reference": "1"}, "source", "must be one of"),
        ({"source": "complaint", "reference": ""}, "reference", "give the id of the complaint"),
        ({"source": "complaint", "reference": "twelve"}, "reference", "give the id"),
        ({"source": "appeal", "reference": "999999"}, "reference", "appeal case 999999 does not"),
        ({"source": "incident", "reference": "999999"}, "reference", "incident 999999 does not"),
        ({"source": "other", "description": "bad"}, "description", "at least 10 characters"),
    ],
)
def test_a_wrong_entry_is_a_400_naming_the_field_and_keeping_what_was_typed(
    client, engine, fields, field, message
):
    login(client, "quality")
    typed = {"description": "Typed by the quality manager, kept on error.", **fields}
    response = raise_action(client, **typed)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f"<strong>{field}</strong>" in html and message in html
    assert typed["description"] in html
    if typed.get("reference"):
        assert f'value="{typed["reference"]}"' in html
    assert corrective_actions(engine) == []


@pytest.mark.parametrize("username", ["alice", "clerk", "reviewer", "panel", "owner"])
def test_only_quality_complaints_managers_and_admins_may_raise_one(client, engine, username):
    login(client, username)
    assert client.get(NEW_ACTION).status_code == 403
    response = raise_action(client, source="other", description=LATE_REPLIES)
    assert response.status_code == 403
    assert corrective_actions(engine) == []


def test_the_analytics_page_links_to_the_form_for_those_who_may_raise_one(client):
    login(client, "quality")
    assert f'href="{NEW_ACTION}"' in client.get("/analytics").get_data(as_text=True)
