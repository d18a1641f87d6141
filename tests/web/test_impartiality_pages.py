"""The impartiality pages: my declarations and commitment, the register, the manager's
eligibility panel on the task page, assignment, and the impartiality report (HTML and CSV)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select

from engine import PermissionDenied
from engine.impartiality.candidates import NO_ELIGIBLE_ASSIGNEE, auto_assign
from engine.models import (
    AuditEvent,
    Case,
    Commitment,
    ConflictOfInterest,
    HumanTask,
    User,
    UserRole,
)
from tests.engine.helpers import drive_to_decision, ready_task, start_application
from tests.web.test_auth import csrf_token, login
from web import create_app


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def as_user(client, username: str):
    assert login(client, username).status_code == 302
    return client


def post(client, path: str, data: dict, page: str = "/impartiality/declarations"):
    return client.post(path, data={"csrf_token": csrf_token(client, page), **data})


def audit(engine, action: str) -> list[AuditEvent]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )


def declarations_of(engine, username: str) -> list[ConflictOfInterest]:
    with engine.sessions() as session:
        user_id = session.scalars(select(User.id).where(User.username == username)).one()
        return list(
            session.scalars(
                select(ConflictOfInterest)
                .where(ConflictOfInterest.staff_user_id == user_id)
                .order_by(ConflictOfInterest.id)
            )
        )


def decision_task(engine, examiner: str = "examiner_decider") -> HumanTask:
    case_id = start_application(engine, "alice")
    drive_to_decision(engine, case_id, "alice", examiner=examiner)
    return ready_task(engine, case_id, "decide_certification")


def panel_rows(html: str) -> dict[str, str]:
    section = html.split('id="eligibility"', 1)[1].split("</section>", 1)[0]
    return dict(re.findall(r'data-username="([^"]+)">(.*?)</tr>', section, re.S))


def text(response) -> str:
    return response.get_data(as_text=True)


# -- my declarations ---------------------------------------------------------------------------


def test_staff_member_declares_and_ends_a_conflict_and_both_are_audited(engine, client):
    as_user(client, "decider")
    page = client.get("/impartiality/declarations")
    assert page.status_code == 200
    assert "You have no active declarations" in text(page)
    assert 'href="/impartiality/declarations"' in text(page)  # the nav link

    response = post(
        client,
        "/impartiality/declarations",
        {
            "person": "bob@example.org",
            "relationship": "relative",
            "valid_from": "2026-03-01",
            "note": "my brother-in-law",
        },
    )
    assert response.status_code == 303
    [declared] = declarations_of(engine, "decider")
    assert (declared.relationship, declared.person_id) == ("relative", engine.user("bob").person_id)
    page = text(client.get("/impartiality/declarations"))
    assert "Bob Builder" in page and "my brother-in-law" in page
    [event] = audit(engine, "conflict_declared")
    assert event.actor == "decider" and event.after["declaration_id"] == declared.id

    ended = post(client, f"/impartiality/declarations/{declared.id}/end", {})
    assert ended.status_code == 303
    [row] = declarations_of(engine, "decider")  # never deleted
    assert row.ended_at is not None
    [event] = audit(engine, "conflict_ended")
    assert event.actor == "decider"
    page = text(client.get("/impartiality/declarations"))
    assert "Ended and expired" in page and "ended" in page


def test_a_search_matching_several_people_offers_a_choice(engine, client):
    as_user(client, "decider")
    form = {"person": "example.org", "relationship": "colleague", "valid_from": "2026-03-01"}
    response = post(client, "/impartiality/declarations", form)
    assert response.status_code == 422
    html = text(response)
    assert "people match" in html
    assert "Alice Applicant" in html and 'name="person_id"' in html
    chosen = post(
        client,
        "/impartiality/declarations",
        {**form, "person_id": str(engine.user("chen").person_id)},
    )
    assert chosen.status_code == 303
    [declared] = declarations_of(engine, "decider")
    assert declared.person_id == engine.user("chen").person_id


def test_declaration_errors_are_shown_next_to_their_fields(engine, client):
    as_user(client, "decider")
    response = post(
        client,
        "/impartiality/declarations",
        {"person": "nobody-like-this", "relationship": "friend", "valid_from": "2026-02-30"},
    )
    assert response.status_code == 422
    html = text(response)
    assert 'id="error-person"' in html and "nobody matches" in html
    assert 'id="error-relationship"' in html
    assert 'id="error-valid_from"' in html and "YYYY-MM-DD" in html
    assert 'value="friend"' not in html  # the select only offers the register's relationships

    backwards = post(
        client,
        "/impartiality/declarations",
        {
            "person": "#" + str(engine.user("bob").person_id),
            "relationship": "trained",
            "valid_from": "2026-03-01",
            "valid_until": "2026-02-01",
        },
    )
    assert backwards.status_code == 422
    assert 'id="error-valid_until"' in text(backwards)
    assert declarations_of(engine, "decider") == []


def test_a_staff_member_cannot_end_someone_elses_declaration(engine, client):
    as_user(client, "decider")
    post(
        client,
        "/impartiality/declarations",
        {"person": "bob@example.org", "relationship": "relative", "valid_from": "2026-03-01"},
    )
    [declared] = declarations_of(engine, "decider")
    client.post("/logout", data={"csrf_token": csrf_token(client, "/models")})
    as_user(client, "clerk")
    response = post(client, f"/impartiality/declarations/{declared.id}/end", {})
    assert response.status_code == 303
    assert "not ended" in text(client.get("/impartiality/declarations"))
    assert declarations_of(engine, "decider")[0].ended_at is None
    assert post(client, "/impartiality/declarations/999999/end", {}).status_code == 404


def test_signing_the_commitment_needs_the_confirmation(engine, client):
    as_user(client, "clerk")
    page = text(client.get("/impartiality/declarations"))
    assert "Confidentiality and impartiality commitment" in page
    assert "Text version" in page and "2026-1" in page
    before = len(audit(engine, "commitment_signed"))

    refused = post(client, "/impartiality/commitment", {"text_version": "2026-1"})
    assert refused.status_code == 422
    assert 'id="error-confirm"' in text(refused)
    assert len(audit(engine, "commitment_signed")) == before

    signed = post(client, "/impartiality/commitment", {"text_version": "2026-1", "confirm": "yes"})
    assert signed.status_code == 303
    events = audit(engine, "commitment_signed")
    assert len(events) == before + 1 and events[-1].actor == "clerk"
    with engine.sessions() as session:
        clerk = session.scalars(select(User.id).where(User.username == "clerk")).one()
        latest = session.scalars(
            select(Commitment).where(Commitment.user_id == clerk).order_by(Commitment.id.desc())
        ).first()
    assert latest.expires_on.isoformat() == "2027-03-02"
    assert "02 Mar 2027" in text(client.get("/impartiality/declarations"))


def test_applicants_and_anonymous_visitors_are_kept_out(client):
    assert client.get("/impartiality/declarations").status_code == 302
    as_user(client, "alice")
    assert client.get("/impartiality/declarations").status_code == 403


# -- the register ------------------------------------------------------------------------------


def test_manager_records_a_declaration_on_a_staff_members_behalf(engine, client):
    as_user(client, "manager")
    page = client.get("/impartiality/register")
    assert page.status_code == 200
    assert "Record a declaration on a staff member" in text(page)
    response = post(
        client,
        "/impartiality/register",
        {
            "staff": "decider",
            "person": "Bob Builder",
            "relationship": "employer",
            "valid_from": "2026-03-01",
        },
        page="/impartiality/register",
    )
    assert response.status_code == 303
    [declared] = declarations_of(engine, "decider")
    assert declared.declared_by_id == engine.user("manager").id
    [event] = audit(engine, "conflict_declared")
    assert event.actor == "manager" and "recorded by manager" in event.message

    listed = text(client.get("/impartiality/register?staff=decider&active=1"))
    assert "Dana Decider" in listed and "Bob Builder" in listed and "by manager" in listed
    assert "No declarations match" in text(client.get("/impartiality/register?staff=clerk"))
    assert "No declarations match" in text(client.get("/impartiality/register?active=0"))
    assert "Bob Builder" in text(client.get("/impartiality/register?person=builder"))

    missing_staff = post(
        client,
        "/impartiality/register",
        {"person": "Bob Builder", "relationship": "employer", "valid_from": "2026-03-01"},
        page="/impartiality/register",
    )
    assert missing_staff.status_code == 422
    assert 'id="error-staff"' in text(missing_staff)


def test_register_shows_missing_commitments_and_flagged_tasks(engine, client):
    task = decision_task(engine)
    alice = engine.user("alice").person_id
    with engine.unit_of_work() as uow:
        session = uow.session
        for username in ("decider", "decider2"):
            user = session.scalars(select(User).where(User.username == username)).one()
            session.add(
                ConflictOfInterest(
                    staff_user_id=user.id,
                    person_id=alice,
                    relationship="colleague",
                    valid_from=uow.now.date(),
                    declared_by_id=user.id,
                    declared_at=uow.now,
                )
            )
        session.flush()
        live = session.get(HumanTask, task.id)
        assert (
            auto_assign(
                session, live, session.get(Case, live.case_id), uow.now, uow.audit, "system"
            )
            is None
        )
        assert live.assignment_flag == NO_ELIGIBLE_ASSIGNEE
        # A new staff member who has not signed yet.
        newcomer = User(username="newbie", display_name="Nina Newcomer", created_at=uow.now)
        newcomer.roles = [UserRole(role="clerk")]
        session.add(newcomer)

    as_user(client, "quality")
    html = text(client.get("/impartiality/register"))
    assert "No eligible assignee" in html and f"/tasks/{task.id}" in html
    assert "1 missing or expired" in html and "Nina Newcomer" in html
    assert "Record a declaration" not in html  # the quality manager reads, managers record
    refused = post(
        client,
        "/impartiality/register",
        {"staff": "decider", "person": "bob@example.org", "relationship": "other"},
        page="/impartiality/register",
    )
    assert refused.status_code == 403


def test_staff_without_an_oversight_role_cannot_see_the_register(client):
    as_user(client, "clerk")
    for path in (
        "/impartiality/register",
        "/impartiality/tasks",
        "/impartiality/report",
        "/impartiality/report.csv",
    ):
        assert client.get(path).status_code == 403, path
    assert "Impartiality register" not in text(client.get("/impartiality/declarations"))


# -- eligibility and assignment --------------------------------------------------------------


def test_manager_panel_lists_every_role_holder_eligible_or_barred_with_the_reason(engine, client):
    task = decision_task(engine)
    as_user(client, "manager")
    html = text(client.get(f"/tasks/{task.id}"))
    rows = panel_rows(html)
    assert set(rows) == {"decider", "decider2", "examiner_decider"}
    barred = rows["examiner_decider"]
    assert "barred" in barred and "SOD-DECIDE" in barred and "9.4" in barred
    assert "Max Multirole scored this candidate" in barred
    assert "You " not in barred  # written for the manager, in the third person
    assert "eligible" in rows["decider"] and "Assign" in rows["decider"]
    assert "Assign" not in barred
    assert "2 of 3 holders of the role are eligible" in html


def test_the_panel_is_for_managers_only(engine, client):
    task = decision_task(engine)
    as_user(client, "decider")
    html = text(client.get(f"/tasks/{task.id}"))
    assert 'id="eligibility"' not in html


def test_assigning_to_a_barred_user_is_refused_with_the_reason(engine, client):
    task = decision_task(engine)
    as_user(client, "manager")
    page = f"/tasks/{task.id}"
    refused = post(
        client, f"/impartiality/tasks/{task.id}/assign", {"assignee": "examiner_decider"}, page
    )
    assert refused.status_code == 303 and refused.headers["Location"].endswith(page)
    html = text(client.get(page))
    assert "was not assigned to Max Multirole" in html and "9.4" in html
    assert engine.ready_tasks(task.case_id)[0].assignee_id is None
    [failed] = [e for e in audit(engine, "sod_check_failed") if e.actor == "examiner_decider"]
    assert failed.task_id == task.id

    done = post(client, f"/impartiality/tasks/{task.id}/assign", {"assignee": "decider"}, page)
    assert done.status_code == 303
    assert "assigned to Dana Decider" in text(client.get(page))
    assert engine.ready_tasks(task.case_id)[0].assignee_id == engine.user("decider").id
    assert "assigned" in panel_rows(text(client.get(page)))["decider"]

    assert (
        post(client, "/impartiality/tasks/999999/assign", {"assignee": "decider"}, page).status_code
        == 404
    )
    unknown = post(client, f"/impartiality/tasks/{task.id}/assign", {"assignee": "nobody"}, page)
    assert unknown.status_code == 303
    assert "choose a staff member" in text(client.get(page))


def test_only_managers_may_assign(engine, client):
    task = decision_task(engine)
    as_user(client, "quality")
    response = post(
        client, f"/impartiality/tasks/{task.id}/assign", {"assignee": "decider"}, "/models"
    )
    assert response.status_code == 403


def test_open_tasks_page_shows_who_is_eligible(engine, client):
    task = decision_task(engine)
    as_user(client, "manager")
    html = text(client.get("/impartiality/tasks?role=decision_maker"))
    row = html.split(f"/tasks/{task.id}#eligibility", 1)[1].split("</tr>", 1)[0]
    assert "Dana Decider" in row and "Max Multirole" in row and "SOD-DECIDE" in row
    assert f'id="assignee-{task.id}"' in row
    assert client.get("/impartiality/tasks?role=nonsense").status_code == 400
    assert client.get("/impartiality/tasks?flagged=yes").status_code == 400
    assert "No open staff tasks match" in text(client.get("/impartiality/tasks?flagged=1"))


# -- the report --------------------------------------------------------------------------------


def test_report_lists_blocked_checks_and_declarations_for_the_period(engine, client):
    task = decision_task(engine)
    with pytest.raises(PermissionDenied):
        engine.claim(task.id, "examiner_decider")
    as_user(client, "decider")
    post(
        client,
        "/impartiality/declarations",
        {"person": "bob@example.org", "relationship": "trained", "valid_from": "2026-03-01"},
    )
    client.post("/logout", data={"csrf_token": csrf_token(client, "/models")})
    as_user(client, "quality")

    html = text(client.get("/impartiality/report?from=2026-03-01&to=2026-03-02"))
    assert "impartiality check blocked" in html and "SOD-DECIDE" in html
    assert "conflict of interest declared" in html
    assert "declared a conflict of interest (trained)" in html
    assert "Nothing to report" in text(
        client.get("/impartiality/report?from=2026-04-01&to=2026-04-30")
    )

    response = client.get("/impartiality/report.csv?from=2026-03-01&to=2026-03-02")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert (
        "impartiality-report-2026-03-01-2026-03-02.csv" in response.headers["Content-Disposition"]
    )
    rows = list(csv.DictReader(io.StringIO(text(response))))
    assert list(rows[0]) == ["at", "kind", "actor", "case_id", "task_id", "rules", "detail"]
    blocked = [r for r in rows if r["kind"] == "impartiality check blocked"]
    assert blocked and blocked[0]["actor"] == "examiner_decider"
    assert "SOD-DECIDE" in blocked[0]["rules"] and blocked[0]["task_id"] == str(task.id)
    assert any(
        r["kind"] == "conflict of interest declared" and r["actor"] == "decider" for r in rows
    )


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-13-01",
        "to=yesterday",
        "from=2026-03-10&to=2026-03-01",
        "from=1900-01-01&to=2026-01-01",
        "from=" + "9" * 300,
    ],
)
def test_bad_report_periods_are_400(client, query):
    as_user(client, "manager")
    assert client.get(f"/impartiality/report?{query}").status_code == 400
    assert client.get(f"/impartiality/report.csv?{query}").status_code == 400


def test_bad_register_filters_are_400_and_forms_need_csrf(client):
    as_user(client, "manager")
    assert client.get("/impartiality/register?active=maybe").status_code == 400
    assert client.get("/impartiality/register?staff=nobody").status_code == 400
    no_token = client.post(
        "/impartiality/declarations",
        data={"person": "bob@example.org", "relationship": "other", "valid_from": "2026-03-01"},
    )
    assert no_token.status_code == 400
    assert "the form was not accepted" in text(no_token)
